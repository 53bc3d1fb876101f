"""Small helpers shared across the package."""
from __future__ import annotations

import inspect
import random

import numpy as np
import torch

from .errors import ConfigError, nearest_names


def call_with_params(fn, params, key_path: str, *args):
    """``fn(*args, **params)``; a wrong keyword becomes a ConfigError naming the accepted ones."""
    params = dict(params or {})
    try:
        return fn(*args, **params)
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
