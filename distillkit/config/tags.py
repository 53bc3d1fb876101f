"""The YAML tags of the torchdistill config format, plus ``!include``.

* ``!join [a, b, ...]``: the items' strings concatenated (``!join [*root, '/train']``).
* ``!pathjoin [a, b, ...]``: ``os.path.join`` of the items.
* ``!import_get {key: 'pkg.mod.attr'}`` (or ``!import_get 'pkg.mod.attr'``): that attribute.
* ``!import_call {key: 'pkg.mod.fn', init: {args: [...], kwargs: {...}}}``: the result of calling it.
* ``!include 'other.yaml'``: the other file's content, relative to the including file.
"""
from __future__ import annotations

import importlib
import os

import yaml

from ..errors import ConfigError


def import_get(key: str, package=None):
    """The object at dotted path ``key`` (a module, or an attribute of one)."""
    module_name, _, attr = key.rpartition(".")
    try:
        return importlib.import_module(key, package)
    except ImportError:
        if not module_name:
            raise
    module = importlib.import_module(module_name, package)
    return getattr(module, attr)


def _mark_error(node, message: str) -> ConfigError:
    return ConfigError(message, line=node.start_mark.line + 1)


def _join(loader, node):
    return "".join(str(item) for item in loader.construct_sequence(node, deep=True))


def _pathjoin(loader, node):
    return os.path.join(*[str(item) for item in loader.construct_sequence(node, deep=True)])


def _import_entry(loader, node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        return {"key": loader.construct_scalar(node)}
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise _mark_error(node, f"{node.tag} takes a dotted name or a mapping with 'key'.")


def _import_get(loader, node):
    entry = _import_entry(loader, node)
    try:
        return import_get(entry["key"], entry.get("package"))
    except (ImportError, AttributeError, KeyError) as exc:
        raise _mark_error(node, f"!import_get could not import {entry.get('key')!r}: {exc}.") from exc


def _import_call(loader, node):
    entry = _import_entry(loader, node)
    try:
        fn = import_get(entry["key"], entry.get("package"))
    except (ImportError, AttributeError, KeyError) as exc:
        raise _mark_error(node, f"!import_call could not import {entry.get('key')!r}: {exc}.") from exc
    init = entry.get("init") or {}
    return fn(*(init.get("args") or []), **(init.get("kwargs") or {}))


def _include(loader, node):
    from .loader import load_yaml_file  # local import: loader imports this module

    relative = loader.construct_scalar(node)
    base = os.path.dirname(getattr(loader, "source_file", "") or ".")
    return load_yaml_file(os.path.join(base, relative))[0]


def make_loader_class():
    """A SafeLoader subclass that knows the tags above."""

    class ConfigLoader(yaml.SafeLoader):
        source_file = None

    for tag, fn in (("!join", _join), ("!pathjoin", _pathjoin), ("!import_get", _import_get),
                    ("!import_call", _import_call), ("!include", _include)):
        ConfigLoader.add_constructor(tag, fn)
    return ConfigLoader
