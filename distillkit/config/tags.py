"""The YAML tags of the torchdistill config format, and numbers as people write them.

* ``!join [a, b, ...]``: the items' strings concatenated (``!join [*root, '/train']``).
* ``!pathjoin [a, b, ...]``: ``os.path.join`` of the items.
* ``!import_get {key: 'pkg.mod.attr'}`` (or ``!import_get 'pkg.mod.attr'``): that attribute.
* ``!import_call {key: 'pkg.mod.fn', init: {args: [...], kwargs: {...}}}``: the result of calling it.

``5e-4`` and ``1e6`` are floats (YAML 1.2), not the strings YAML 1.1 makes of them.
``!include`` is defined where files are loaded (:mod:`distillkit.config.loader`).
"""
from __future__ import annotations

import importlib
import os
import re

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


# YAML 1.1 wants a dot in a float ("5.0e-4"); YAML 1.2 and Python read "5e-4" and "1e6" as floats.
FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def make_loader_class(extra_constructors=()):
    """A SafeLoader subclass that knows the tags above (and ``extra_constructors``: ``(tag, fn)`` pairs)."""

    class ConfigLoader(yaml.SafeLoader):
        source_file = None

    ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_WITHOUT_DOT, list("-+0123456789."))
    for tag, fn in (("!join", _join), ("!pathjoin", _pathjoin), ("!import_get", _import_get),
                    ("!import_call", _import_call)) + tuple(extra_constructors):
        ConfigLoader.add_constructor(tag, fn)
    return ConfigLoader


def parse_value(text: str):
    """One ``--set`` value, read as the config file would read it (numbers, lists, tags)."""
    loader = make_loader_class()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
