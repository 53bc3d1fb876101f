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
# packages of torchdistill's examples/torchvision folder that its detection and segmentation configs list under
# ``dependencies`` (see TORCHDISTILL_EQUIVALENTS in config/tags.py for the functions they call)
TORCHDISTILL_EXAMPLE_PACKAGES = ("custom", "coco")


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
            if name in TORCHDISTILL_EXAMPLE_PACKAGES and getattr(exc, "name", None) == name:
                logger.info("%s.%d: %r (torchdistill's examples folder) is not importable; distillkit's "
                            "equivalents of what its configs call are used.", key_path, index, name)
                continue
            raise ConfigError(f"cannot import the plugin module {name!r}: {exc}.", key_path=f"{key_path}.{index}",
                              hint="Make it importable: install it, run from its parent folder, or set PYTHONPATH.") \
                from exc
