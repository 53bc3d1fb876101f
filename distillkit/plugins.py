"""Loading user code: a config's ``imports:`` list and the ``distillkit.plugins`` entry points."""
from __future__ import annotations

import importlib
import logging
import sys
from importlib import metadata

from .errors import ConfigError

logger = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "distillkit.plugins"
_loaded_entry_points = False

# Modules of torchdistill's example scripts (examples/torchvision/: not in its pip package) that its 1.x configs
# import (``dependencies: [custom]``, ``key: 'custom.transform.CustomCompose'``), and distillkit's equivalents, used
# when the config's own copy is not importable.
EXAMPLE_MODULES = {"custom": "distillkit.tasks", "coco": "distillkit.tasks",
                   "custom.transform": "distillkit.tasks.segmentation.transforms",
                   "custom.collator": "distillkit.tasks.segmentation.collate",
                   "custom.sampler": "distillkit.data.grouped_batches",
                   "coco.dataset": "distillkit.tasks.coco", "utils.dataset": "distillkit.engine.poly_lr"}


def example_equivalent(key: str, exc: ImportError):
    """distillkit's equivalent of ``key`` (a module of :data:`EXAMPLE_MODULES` or an attribute of one) when ``exc``
    says that module itself is missing; None otherwise."""
    module_name, _, attr = key.rpartition(".")
    missing = getattr(exc, "name", None) or ""
    for name, target in ((key, None), (module_name, attr)):
        if name in EXAMPLE_MODULES and isinstance(exc, ModuleNotFoundError) and (name + ".").startswith(missing + "."):
            module = importlib.import_module(EXAMPLE_MODULES[name])
            return module if target is None else getattr(module, target, None)
    return None


def load_entry_point_plugins() -> None:
    """Import every installed package's ``distillkit.plugins`` entry point (once per process)."""
    global _loaded_entry_points
    if _loaded_entry_points:
        return
    _loaded_entry_points = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as exc:  # a broken plugin must not hide which one it was
            raise ConfigError(f"the installed plugin {entry_point.name!r} ({entry_point.value}) failed to load: "
                              f"{type(exc).__name__}: {exc}.") from exc


def import_modules(modules, key_path: str = "imports", search_dir: str = None) -> None:
    """Import each module named in a config's ``imports:`` list (the config's folder is searched too)."""
    if search_dir and search_dir not in sys.path:
        sys.path.append(search_dir)
    for index, name in enumerate(modules or []):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if example_equivalent(name, exc) is not None:
                logger.info("%s.%d: %r (torchdistill's examples folder) is not importable; distillkit's "
                            "equivalents of what its configs call are used.", key_path, index, name)
                continue
            raise ConfigError(f"cannot import the plugin module {name!r}: {exc}.", key_path=f"{key_path}.{index}",
                              hint="Make it importable: install it, run from its parent folder, or set PYTHONPATH.") \
                from exc
