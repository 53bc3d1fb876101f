"""How a group of models (``models.teachers``, ``models.students``) is named and keyed: member names, their
``"<name>:<path>"`` io_dict keys and the ``{name: output}`` of a group.  Low in the layers: the config checks,
the teacher cache and the loss terms read it, and :mod:`distillkit.multi.groups` builds on it."""
from __future__ import annotations

import re

from .errors import ConfigError

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
SEPARATOR = ":"  # io_dict keys of a group: "<name>:<path>"


class TeacherOutputs(dict):
    """``{name: output}`` of a group of models (what a loss term sees as the teacher output)."""


def check_names(names, key_path: str) -> None:
    """Member names become io_dict prefixes and state-dict keys: letters, digits, ``_`` and ``-``."""
    for name in names:
        if not NAME.match(str(name)):
            raise ConfigError(f"the name {name!r} cannot name a model here: use letters, digits, '_' and '-' "
                              f"(it prefixes the model's hooked paths as '{name}{SEPARATOR}<path>').",
                              key_path=f"{key_path}.{name}")


def member_io(io_dict: dict, name: str) -> dict:
    """The part of a group's io_dict that belongs to member ``name``, keyed by its own paths."""
    start = f"{name}{SEPARATOR}"
    return {path[len(start):]: slot for path, slot in io_dict.items() if path.startswith(start)}
