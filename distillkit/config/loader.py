"""Load a YAML config: tags, anchors, includes, ``--set`` overrides, validation.

:func:`load_config` returns a :class:`Config`, a plain ``dict`` that also knows
the file it came from and the line of every key, so that later errors can say
"configs/x.yaml, line 42, key 'train.criterion.type': ...".
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, Optional, Tuple

import yaml

from ..errors import ConfigError
from .overrides import apply_overrides
from .paths import join_path
from .tags import make_loader_class


class Config(dict):
    """A config dict that remembers its source file and the line of each key path."""

    def __init__(self, data=None, file: Optional[str] = None, lines: Optional[Dict[str, int]] = None):
        super().__init__(data or {})
        self.file = file
        self.lines = dict(lines or {})

    def error(self, message: str, key_path: Optional[str] = None, **kwargs) -> ConfigError:
        """A :class:`ConfigError` located at ``key_path`` in this config's file."""
        return ConfigError(message, key_path=key_path, file=self.file, line=self.line_of(key_path), **kwargs)

    def line_of(self, key_path: Optional[str]) -> Optional[int]:
        """The line of ``key_path``, or of its nearest ancestor that has one."""
        parts = (key_path or "").split(".")
        while parts and parts[0]:
            line = self.lines.get(".".join(parts))
            if line is not None:
                return line
            parts.pop()
        return None


def _key_lines(node, prefix: str, lines: Dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                path = join_path(prefix, key_node.value)
                lines.setdefault(path, key_node.start_mark.line + 1)
                _key_lines(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            path = join_path(prefix, index)
            lines.setdefault(path, item.start_mark.line + 1)
            _key_lines(item, path, lines)


def load_yaml_file(path: str) -> Tuple[object, Dict[str, int]]:
    """Parse ``path`` with distillkit's tags; returns (data, {key path: line})."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r} (looked from {os.getcwd()}).",
                          hint="Check the path, or run from the directory the path is relative to.")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    loader_cls = make_loader_class()
    try:
        loader = loader_cls(text)
        loader.source_file = path
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        lines: Dict[str, int] = {}
        _key_lines(yaml.compose(text, Loader=yaml.SafeLoader), "", lines)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"YAML syntax error: {problem}.", file=path, line=line,
                          hint="Check indentation, colons and quotes on that line and the one before.") from exc
    except ConfigError as exc:
        raise exc.locate(file=path)
    return data, lines


def load_config(path: str, overrides: Iterable[str] = (), validate: bool = True) -> Config:
    """Load ``path``, apply ``--set key.path=value`` overrides, and validate.

    Raises :class:`ConfigError` naming the file, line and key path of any problem.
    """
    data, lines = load_yaml_file(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping of sections (datasets, models, train, ...), "
                          f"found {type(data).__name__}.", file=path, line=1)
    config = Config(data, file=path, lines=lines)
    apply_overrides(config, overrides)
    if validate:
        from .validate import validate_config

        validate_config(config)
    return config
