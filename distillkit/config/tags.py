"""The YAML tags of the torchdistill config format, and numbers as people write them.

* ``!join [a, b, ...]``: the items' strings concatenated (``!join [*root, '/train']``).
* ``!pathjoin [a, b, ...]``: ``os.path.join`` of the items.
* ``!expanduser '~/data'``: the path with ``~`` expanded.
* ``!import_get {key: 'pkg.mod.attr'}`` (or ``!import_get 'pkg.mod.attr'``): that attribute.
* ``!import_call {key: 'pkg.mod.fn', init: {args: [...], kwargs: {...}}}``: the result of calling it.
* ``!import_call_method {package: 'pkg.mod.Class.method', init}``, ``!getattr [object, 'name']``,
  ``!setattr [object, 'name', value]``, ``!call_method {obj, method_name, args, kwargs}`` and
  ``!access_by_index_or_key {data, index_or_key}`` (torchdistill 1.x's).

The import and call tags are *lazy* (:class:`LazyTag`): imported names are checked when the file is read, but
nothing is called until :func:`resolve_tags` builds the value where it is used.

``5e-4`` and ``1e6`` are floats (YAML 1.2), not the strings YAML 1.1 makes of them.
``!include`` is defined where files are loaded (:mod:`distillkit.config.loader`).
"""
from __future__ import annotations

import importlib
import os
import re

import yaml

from ..errors import ConfigError
from ..plugins import example_equivalent
from ..utils import LazyTag


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


def _join(loader, node):
    return "".join(str(item) for item in loader.construct_sequence(node, deep=True))


def _pathjoin(loader, node):
    return os.path.join(*[str(item) for item in loader.construct_sequence(node, deep=True)])


def _expanduser(loader, node):
    return os.path.expanduser(str(loader.construct_scalar(node)))


# torchdistill's own helpers that its 1.x configs call, and distillkit's equivalents (used without torchdistill)
# (the modules of its examples folder: plugins.EXAMPLE_MODULES)
TORCHDISTILL_EQUIVALENTS = {"torchdistill.datasets.util.split_dataset": "distillkit.data.splits.random_split_dataset"}


def _imported(key, package, tag: str, line=None):
    try:
        return import_get(str(key), package)
    except (ImportError, AttributeError, ValueError) as exc:
        if package is None and str(key) in TORCHDISTILL_EQUIVALENTS and isinstance(exc, ModuleNotFoundError):
            return import_get(TORCHDISTILL_EQUIVALENTS[str(key)])
        equivalent = example_equivalent(str(key), exc) if package is None and isinstance(exc, ImportError) else None
        if equivalent is not None:
            return equivalent
        raise ConfigError(f"{tag} could not import {key!r}: {exc}.", line=line) from exc


class ImportGet(dict, LazyTag):
    """``!import_get {key: 'pkg.mod.attr'}``: that object."""
    tag = "!import_get"

    def build(self):
        return _imported(self.get("key"), self.get("package"), self.tag, self.line)


class ImportCall(dict, LazyTag):
    """``!import_call {key: 'pkg.mod.fn', init: {args, kwargs}}``: the result of calling it."""
    tag = "!import_call"

    def build(self):
        init = self.get("init") or {}
        return _imported(self.get("key"), self.get("package"), self.tag, self.line)(
            *(init.get("args") or []), **(init.get("kwargs") or {}))


class ImportCallMethod(dict, LazyTag):
    """``!import_call_method {package: 'pkg.mod.Class.method', init}`` (or ``package``, ``class_name``,
    ``method_name``): the result of calling that class's method (torchdistill 1.x)."""
    tag = "!import_call_method"

    def target(self) -> str:
        if self.get("class_name") and self.get("method_name"):
            return f"{self['package']}.{self['class_name']}.{self['method_name']}"
        return str(self.get("package"))

    def build(self):
        cls_path, _, method = self.target().rpartition(".")
        init = self.get("init") or {}
        method_fn = getattr(_imported(cls_path, None, self.tag, self.line), method)
        return method_fn(*(init.get("args") or []), **(init.get("kwargs") or {}))


class GetAttr(list, LazyTag):
    """``!getattr [object, 'name']``: ``getattr(object, name)`` (torchdistill 1.x: ``weights`` enums)."""
    tag = "!getattr"

    def build(self):
        try:
            return getattr(*self)
        except (AttributeError, TypeError) as exc:
            raise ConfigError(f"!getattr {list(self)!r} failed: {exc}.", line=self.line) from exc


class CallMethod(dict, LazyTag):
    """``!call_method {obj, method_name, args, kwargs, returns_obj}``: ``obj.method_name(*args, **kwargs)`` (or
    ``obj`` itself with ``returns_obj: True``)."""
    tag = "!call_method"

    def build(self):
        result = getattr(self["obj"], self["method_name"])(*(self.get("args") or []), **(self.get("kwargs") or {}))
        return self["obj"] if self.get("returns_obj") else result


class SetAttr(list, LazyTag):
    """``!setattr [object, 'name', value]``: sets the attribute and gives the object."""
    tag = "!setattr"

    def build(self):
        setattr(*self)
        return self[0]


class AccessByIndexOrKey(dict, LazyTag):
    """``!access_by_index_or_key {data, index_or_key}``: ``data[index_or_key]`` (one of the splits a function
    returned, for instance)."""
    tag = "!access_by_index_or_key"

    def build(self):
        try:
            return self["data"][self["index_or_key"]]
        except (KeyError, IndexError, TypeError) as exc:
            raise ConfigError(f"!access_by_index_or_key: {self.get('index_or_key')!r} is not in its data ({exc}).",
                              line=self.line) from exc


def _lazy_constructor(cls):
    def construct(loader, node):
        line = node.start_mark.line + 1
        if isinstance(node, yaml.ScalarNode) and cls in (ImportGet, ImportCall):
            value = cls(key=loader.construct_scalar(node))
        elif isinstance(node, yaml.MappingNode) and issubclass(cls, dict):
            value = cls(loader.construct_mapping(node, deep=True))
        elif isinstance(node, yaml.SequenceNode) and issubclass(cls, list):
            value = cls(loader.construct_sequence(node, deep=True))
        else:
            raise ConfigError(f"{cls.tag} takes {'a list' if issubclass(cls, list) else 'a dotted name or a mapping'}"
                              f", found {node.id}.", line=line)
        value.line = line
        if isinstance(value, (ImportGet, ImportCall)):  # a misspelt name is named at load time, with its line
            _imported(value.get("key"), value.get("package"), cls.tag, line)
        elif isinstance(value, ImportCallMethod):
            _imported(value.target().rpartition(".")[0], None, cls.tag, line)
        return value

    return construct


LAZY_TAGS = (ImportGet, ImportCall, ImportCallMethod, GetAttr, CallMethod, SetAttr, AccessByIndexOrKey)


def represent_lazy(dumper, value):
    """A lazy tag written back as the file wrote it."""
    if isinstance(value, list):
        return dumper.represent_sequence(value.tag, list(value))
    return dumper.represent_mapping(value.tag, dict(value))


# YAML 1.1 wants a dot in a float ("5.0e-4"); YAML 1.2 and Python read "5e-4" and "1e6" as floats.
FLOAT_WITHOUT_DOT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


def make_loader_class(extra_constructors=()):
    """A SafeLoader subclass that knows the tags above (and ``extra_constructors``: ``(tag, fn)`` pairs)."""

    class ConfigLoader(yaml.SafeLoader):
        source_file = None

    ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT_WITHOUT_DOT, list("-+0123456789."))
    lazy = tuple((cls.tag, _lazy_constructor(cls)) for cls in LAZY_TAGS)
    for tag, fn in (("!join", _join), ("!pathjoin", _pathjoin), ("!expanduser", _expanduser)) + lazy + \
            tuple(extra_constructors):
        ConfigLoader.add_constructor(tag, fn)
    return ConfigLoader


def parse_value(text: str):
    """One ``--set`` value, read as the config file would read it (numbers, lists, tags)."""
    loader = make_loader_class()(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
