"""``teacher: <name>`` on a loss term: which of several teachers (``models.teachers``) the term reads.

With a group of teachers the teacher output is ``{name: logits}`` and the teacher io_dict is keyed
``"<name>:<path>"`` (multi/groups.py).  :class:`SelectTeacher` hands the wrapped term one teacher's output and
io_dict, so every existing term (KDLoss, FitNets' MSE, ...) works unchanged on any one teacher.  A term that
reads every teacher says so with ``reads_all_teachers = True`` (MultiTeacherKDLoss) and gets them all.
"""
from __future__ import annotations

import inspect
from typing import List, Optional

from torch import nn

from ..errors import ConfigError, nearest_names
from ..members import member_io
from .features import SELF_PATH


def _takes_supp_dict(loss: nn.Module) -> bool:
    try:
        return "supp_dict" in inspect.signature(loss.forward).parameters
    except (TypeError, ValueError):
        return False


def one_teacher_io(teacher_io: dict, name: str) -> dict:
    """Teacher ``name``'s io_dict (its own paths, and its output at ``'.'``) out of the group's."""
    selected = member_io(teacher_io, name)
    outputs = teacher_io.get(SELF_PATH, {}).get("output")
    if isinstance(outputs, dict) and name in outputs:
        selected[SELF_PATH] = {"output": outputs[name]}
    return selected


class SelectTeacher(nn.Module):
    """A loss term on one teacher of several: org terms get ``teacher_output[name]``, sub terms that teacher's
    io_dict."""

    def __init__(self, loss: nn.Module, teacher: str, org: bool):
        super().__init__()
        self.loss = loss
        self.teacher = teacher
        self.org = org
        self.per_output = getattr(loss, "per_output", False)
        self.reads_teacher_features = getattr(loss, "reads_teacher_features", True)
        self.passes_supp_dict = _takes_supp_dict(loss)

    def forward(self, student, teacher, targets, supp_dict: Optional[dict] = None):
        extra = {"supp_dict": supp_dict} if self.passes_supp_dict else {}
        if self.org:
            return self.loss(student, teacher[self.teacher] if isinstance(teacher, dict) else teacher, targets)
        return self.loss(student, one_teacher_io(teacher, self.teacher), targets, **extra)


def select_teacher(loss: nn.Module, name: Optional[str], teachers: Optional[List[str]], key_path: str,
                   org: bool) -> nn.Module:
    """``loss`` reading the teacher a term names (``<key_path>.teacher``); ``teachers``: the names of
    ``models.teachers`` (None with a single ``models.teacher_model``, where terms are used as they are)."""
    where = f"{key_path}.teacher"
    if teachers is None:
        if name is not None:
            raise ConfigError(f"'teacher: {name}' chooses one of several teachers, but this config has no "
                              f"models.teachers (a single models.teacher_model is read by every term).",
                              key_path=where, hint="Remove the key, or declare models.teachers: {name: {...}}.")
        return loss
    if getattr(loss, "reads_all_teachers", False):
        if name is not None:
            raise ConfigError(f"{type(loss).__name__} reads every teacher; 'teacher: {name}' would hide the "
                              f"others.", key_path=where, hint="Remove the key (or use KDLoss on that teacher).")
        return loss
    if name is None:
        if len(teachers) == 1:
            name = teachers[0]
        elif not getattr(loss, "reads_teacher", True):
            return loss
        else:
            raise ConfigError(f"there are {len(teachers)} teachers ({', '.join(teachers)}) and this term does not "
                              f"say which one it reads.", key_path=where,
                              hint=f"Add 'teacher: {teachers[0]}' beside its criterion, or use MultiTeacherKDLoss "
                                   f"(it reads them all).")
    elif name not in teachers:
        raise ConfigError(f"unknown teacher {name!r}; the teachers are {', '.join(teachers)} (models.teachers).",
                          key_path=where, candidates=nearest_names(str(name), teachers) or teachers)
    return SelectTeacher(loss, name, org)
