"""``--set key.path=value`` overrides; values are parsed as YAML (``3`` is an int)."""
from __future__ import annotations

from typing import Iterable

import yaml

from ..errors import ConfigError, nearest_names
from .paths import split_path
from .schema import is_known_key
from .tags import parse_value


def parse_override(text: str):
    """``'train.num_epochs=3'`` -> ``(['train', 'num_epochs'], 3)``."""
    key, sep, raw = str(text).partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"an override must look like key.path=value, found {text!r}.",
                          key_path="--set", hint="Example: --set train.num_epochs=3")
    try:
        value = parse_value(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return split_path(key.strip()), value


def apply_overrides(config: dict, overrides: Iterable) -> None:
    """Set each override in place: a ``'key.path=value'`` text (the value parsed as YAML) or a ``(key path,
    value)`` pair (the value as it is, from Python). A missing key close to an existing one is a typo: error."""
    for item in overrides or ():
        if isinstance(item, tuple):
            (key, value), shown = item, f"the override {item[0]}={item[1]!r}"
            parts = split_path(key)
        else:
            parts, value = parse_override(item)
            shown = f"--set {item!r}"
        node = config
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"{shown}: {where!r} is not an index of the list there "
                                      f"(length {len(node)}).", key_path=".".join(parts[:depth]))
                index = int(part)
                if last:
                    node[index] = value
                else:
                    node = node[index]
                continue
            if not isinstance(node, dict):
                raise ConfigError(f"{shown}: {'.'.join(parts[:depth])!r} holds a "
                                  f"{type(node).__name__}, not a mapping.", key_path=".".join(parts[:depth]))
            if part not in node and not is_known_key(parts[: depth + 1]):
                close = [c for c in nearest_names(part, node.keys(), n=3) if c != part]
                if close:
                    raise ConfigError(f"{shown}: there is no key {part!r} here.", key_path=where,
                                      candidates=close, hint="Fix the spelling, or the override creates a new key.")
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
