"""Load a YAML config: tags, anchors, includes, ``--set`` overrides, validation.

:func:`load_config` returns a :class:`Config`, a plain ``dict`` that also knows
the file it came from and the line of every key, so that later errors can say
"configs/x.yaml, line 42, key 'train.criterion.type': ...".
"""
from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping
from typing import Dict, Iterable, Optional, Tuple

import yaml

from ..errors import ConfigError
from .generation import PathMap, from_1x, is_1x
from .overrides import apply_overrides
from .paths import join_path
from .tags import make_loader_class
from .validate import validate_config

logger = logging.getLogger(__name__)


class Config(dict):
    """A config dict that remembers its source file and the line of each key path."""

    def __init__(self, data=None, file: Optional[str] = None, lines: Optional[Dict[str, int]] = None,
                 generation: str = "0.x", path_map: Optional[PathMap] = None):
        super().__init__(data or {})
        self.file = file
        self.lines = dict(lines or {})
        self.generation = generation  # the torchdistill form the file is written in: 0.x or 1.x
        self.path_map = path_map or PathMap()  # 1.x: engine key paths -> the file's
        self.as_written = self  # the data in the file's own form (with --set applied): what a run records

    def error(self, message: str, key_path: Optional[str] = None, **kwargs) -> ConfigError:
        """A :class:`ConfigError` located at ``key_path`` in this config's file."""
        return self.locate(ConfigError(message, key_path=key_path, **kwargs))

    def locate(self, exc: ConfigError) -> ConfigError:
        """``exc`` with its key path as the file writes it, and the file and line of that key."""
        line = self.line_of(exc.key_path)
        written = self.path_map.user_path(exc.key_path)
        if written != exc.key_path:  # the key's own name too, where the message quotes it ('name' -> 'key')
            engine_name, file_name = exc.key_path.rsplit(".", 1)[-1], written.rsplit(".", 1)[-1]
            exc.message = exc.message.replace(f"{engine_name!r}", f"{file_name!r}")
            exc.key_path = written
        return exc.locate(file=self.file, line=line)

    def line_of(self, key_path: Optional[str]) -> Optional[int]:
        """The line of ``key_path`` (as the file writes it), or of its nearest ancestor that has one."""
        parts = (self.path_map.user_path(key_path) or "").split(".")
        while parts and parts[0]:
            line = self.lines.get(".".join(parts))
            if line is not None:
                return line
            parts.pop()
        return None


MAX_EXPANDED_NODES = 1_000_000  # values a config may hold once its aliases are expanded


def _expanded_sizes(root) -> Dict[int, int]:
    """How many nodes each node stands for once aliases are expanded, computed once per node (linear time)."""
    sizes: Dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value) if isinstance(node, yaml.SequenceNode) else [])
        if children_done or not children:
            sizes[id(node)] = 1 + sum(sizes.get(id(c), 0) for c in children)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
    return sizes


def _key_lines(root, lines: Dict[str, int]) -> None:
    """``{key path: line}`` of every key written in the file; an alias is not walked again."""
    seen = set()
    stack = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            items = [(k.value, v, k) for k, v in node.value if isinstance(k, yaml.ScalarNode)]
        elif isinstance(node, yaml.SequenceNode):
            items = [(index, item, item) for index, item in enumerate(node.value)]
        else:
            continue
        for key, value, mark_node in items:
            path = join_path(prefix, key)
            lines.setdefault(path, mark_node.start_mark.line + 1)
            stack.append((value, path))


def _read_text(path: str) -> str:
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r} (looked from {os.getcwd()}).",
                          hint="Check the path, or run from the directory the path is relative to.")
    with open(path, "rb") as handle:
        data = handle.read()
    nul = data.find(b"\0")
    if nul >= 0:
        raise ConfigError(f"{path!r} is not a text file (it holds a NUL byte at offset {nul}); a config is a "
                          f"YAML text file.", file=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"the file is not valid UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} "
                          f"({exc.reason}). Save it as UTF-8.", file=path, line=line) from exc


def _include_constructor(including: Tuple[str, ...]):
    def include(loader, node):
        relative = loader.construct_scalar(node)
        base = os.path.dirname(os.path.abspath(loader.source_file))
        target = os.path.abspath(os.path.join(base, relative))
        if target in including:
            chain = " -> ".join(list(including[including.index(target):]) + [target])
            raise ConfigError(f"!include {relative!r} includes a file that is already being loaded: {chain}.",
                              line=node.start_mark.line + 1, hint="Remove the !include that closes the cycle.")
        top_folder = os.path.dirname(including[0])
        if os.path.commonpath([top_folder, target]) != top_folder:
            logger.info("config %s includes %s, from outside the config's folder %s", loader.source_file, target,
                        top_folder)
        return load_yaml_file(target, including)[0]

    return include


def load_yaml_file(path: str, including: Tuple[str, ...] = ()) -> Tuple[object, Dict[str, int]]:
    """Parse ``path`` with distillkit's tags; returns (data, {key path: line}).

    ``including``: the files (absolute paths) whose ``!include`` led here, outermost first."""
    text = _read_text(path)
    including = tuple(including) + (os.path.abspath(path),)
    loader_cls = make_loader_class([("!include", _include_constructor(including))])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        lines: Dict[str, int] = {}
        if root is not None:
            size = _expanded_sizes(root)[id(root)]
            if size > MAX_EXPANDED_NODES:
                raise ConfigError(f"the YAML expands to {size:,} values through its aliases (more than "
                                  f"{MAX_EXPANDED_NODES:,}); is an alias (*name) repeated inside the anchor it "
                                  f"refers to, many levels deep?", file=path)
            _key_lines(root, lines)
        loader = loader_cls(text)
        loader.source_file = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"YAML syntax error: {problem}.", file=path, line=line,
                          hint="Check indentation, colons and quotes on that line and the one before.") from exc
    except ConfigError as exc:
        raise exc.locate(file=path)
    except ValueError as exc:  # e.g. an integer of more digits than Python converts (4,300)
        raise ConfigError(f"a value cannot be read: {exc}.", file=path) from exc
    return data, lines


def _read_source(source) -> Tuple[object, Dict[str, int], Optional[str]]:
    """``(data, {key path: line}, file)`` of a config file path, a :class:`Config` (its data as written, copied)
    or a plain dict (copied; no file, so errors name the key path alone)."""
    if isinstance(source, Config):
        return copy.deepcopy(dict(source.as_written)), dict(source.lines), source.file
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source)), {}, None
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"a config is a YAML file path or a dict of sections (datasets, models, train, ...), "
                          f"found {type(source).__name__}.")
    return (*load_yaml_file(os.fspath(source)), os.fspath(source))


def load_config(path, overrides: Iterable[str] = (), validate: bool = True, strict: bool = False) -> Config:
    """Load ``path`` (a YAML file, or a dict in the same form), apply ``--set key.path=value`` overrides, and
    validate (``strict``: refuse keys distillkit does not read, instead of warning about them).

    Raises :class:`ConfigError` naming the file, line and key path of any problem.
    """
    data, lines, path = _read_source(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (datasets, models, train, ...), "
                          f"found {type(data).__name__}.", file=path, line=1)
    config = Config(data, file=path, lines=lines)
    apply_overrides(config, overrides)
    if is_1x(config):
        try:
            data, path_map = from_1x(config)
        except ConfigError as exc:
            raise config.locate(exc)
        written = config
        config = Config(data, file=path, lines=lines, generation="1.x", path_map=path_map)
        config.as_written = written
    if validate:
        validate_config(config, strict)
    return config
