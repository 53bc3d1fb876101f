"""Small helpers shared across the package."""
from __future__ import annotations

import copy
import inspect
import logging
import random
from typing import Optional

import numpy as np
import torch

from .errors import ConfigError, nearest_names

logger = logging.getLogger(__name__)


def rename_params(params: dict, aliases: dict, key_path: str) -> dict:
    """``params`` with torchdistill 0.x parameter names changed to the ones ``fn`` takes (1.x's): ``aliases`` maps
    a dotted path to a new name for its last key, ``*`` standing for every entry of a mapping or list
    (``{'connectors.*.conv_params': 'conv2d_kwargs'}``).  Applied in order; a name already present wins."""
    params = copy.deepcopy(params)
    for path, new in aliases.items():
        *parents, old = path.split(".")
        nodes = [params]
        for part in parents:
            children = []
            for node in nodes:
                values = (node.values() if isinstance(node, dict) else node) if part == "*" else \
                    [node.get(part)] if isinstance(node, dict) else []
                children += [child for child in values if isinstance(child, (dict, list))]
            nodes = children
        for node in nodes:
            if isinstance(node, dict) and old in node and new not in node:
                node[new] = node.pop(old)
                logger.info("%s: %s is torchdistill 0.x's name of %s", key_path, path, new)
    return params


class LazyTag:
    """A tag whose value is built when it is used, not when the file is read (torchdistill 1.x builds datasets
    and weights with these): the node stays plain data, so ``--set`` reaches inside it
    (``datasets.<id>.init.kwargs.root``) and a recorded or converted config writes it back as it was.
    :func:`resolve_tags` builds it (the tags: :mod:`distillkit.config.tags`); ``line`` is where it was written."""
    tag = ""
    line = None

    def build(self):
        raise NotImplementedError


def resolve_tags(value, memo: Optional[dict] = None):
    """``value`` with every lazy tag inside built (children first); data without tags is returned as it is.
    ``memo``: built values by node, so that a node reached twice (a YAML alias) is built once, as when the file is
    read by torchdistill."""
    if not has_tags(value):
        return value
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)][1]
    if isinstance(value, LazyTag):
        node = type(value)(value.items()) if isinstance(value, dict) else type(value)(value)
        node.line = value.line
        if isinstance(node, dict):
            node.update({k: resolve_tags(v, memo) for k, v in node.items()})
        else:
            node[:] = [resolve_tags(v, memo) for v in node]
        built = node.build()
    elif isinstance(value, dict):
        built = {k: resolve_tags(v, memo) for k, v in value.items()}
    else:
        built = type(value)(resolve_tags(v, memo) for v in value)
    memo[id(value)] = (value, built)  # the node is kept alive with its value, so that its id is not reused
    return built


def has_tags(value) -> bool:
    """Whether a lazy tag is anywhere inside ``value``."""
    if isinstance(value, LazyTag):
        return True
    if isinstance(value, dict):
        return any(has_tags(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_tags(v) for v in value)
    return False


def call_with_params(fn, params, key_path: str, *args, aliases: Optional[dict] = None):
    """``fn(*args, **params)``; a wrong keyword becomes a ConfigError naming the accepted ones, a ValueError
    of ``fn`` (a bad value) a ConfigError at ``key_path``, and a ConfigError that ``fn`` raised about
    ``params.<name>`` is placed under ``key_path``.  ``aliases``: see :func:`rename_params`."""
    params = rename_params(params or {}, aliases, key_path) if aliases else dict(params or {})
    params = resolve_tags(params)  # !import_call, !getattr, ... are built now, where they are used
    try:
        return fn(*args, **params)
    except ConfigError as exc:
        if exc.key_path is None or exc.key_path == "params" or exc.key_path.startswith("params."):
            parent = key_path.rsplit(".", 1)[0] if key_path.endswith(".params") else key_path
            exc.key_path = f"{parent}.{exc.key_path}" if exc.key_path else key_path
            exc.locate()
        raise
    except ValueError as exc:
        name = getattr(fn, "__name__", repr(fn))
        raise ConfigError(f"{name} refused these params: {exc}", key_path=key_path) from exc
    except TypeError as exc:
        accepted = accepted_params(fn)
        unknown = [k for k in params if accepted is not None and k not in accepted]
        text = str(exc)
        if not unknown and "unexpected keyword" not in text and "required positional" not in text:
            raise
        name = getattr(fn, "__name__", repr(fn))

        close = []
        for key in unknown:
            close += nearest_names(key, accepted or [], n=2)
        message = f"{name} rejected these params: {exc}."
        if accepted is not None:
            message += f" It accepts: {', '.join(sorted(accepted)) or '(no params)'}."
        raise ConfigError(message, key_path=key_path, candidates=close) from exc


def accepted_params(fn):
    """The keyword names ``fn`` accepts, or None when it takes ``**kwargs``."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = []
    for name, param in signature.parameters.items():
        if param.kind == param.VAR_KEYWORD:
            return None
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and name != "self":
            names.append(name)
    return names


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators."""
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)
