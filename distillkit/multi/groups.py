"""Several models on one side of distillation: the teachers of ``models.teachers``, the students of
``models.students`` (deep mutual learning).

A :class:`SideGroup` holds one :class:`~distillkit.model_side.ModelSide` per name and has ModelSide's call
shape: ``forward(x)`` returns ``(outputs, io_dict)`` where ``outputs`` is a :class:`TeacherOutputs` (a dict
``{name: output}``) and ``io_dict`` holds every member's hooked tensors under ``"<name>:<path>"``.  A loss term
reads one member through ``teacher: <name>`` (losses/teacher_select.py), or all of them (MultiTeacherKDLoss).
"""
from __future__ import annotations

from typing import Dict, List

import torch
from torch import nn
from torch.utils._pytree import tree_map

from ..config.schema import SideSettings
from ..engine.distributed import wrap_side
from ..errors import ConfigError, nearest_names
from ..members import SEPARATOR, TeacherOutputs, check_names, member_io  # noqa: F401  (re-exported)
from ..model_side import ModelSide


def member_settings(names: List[str], defaults: SideSettings, blocks, key_path: str) -> Dict[str, SideSettings]:
    """Each member's side settings: ``<key_path>.<name>`` over the common block ``defaults`` (``train.teacher`` /
    ``train.student``); a name that is no member is refused."""
    blocks = blocks or {}
    for name in blocks:
        if name not in names:
            raise ConfigError(f"{name!r} is not one of the models declared ({', '.join(names)}).",
                              key_path=f"{key_path}.{name}", candidates=nearest_names(str(name), names) or names)
    return {name: SideSettings.parse({**(defaults.raw or {}), **(blocks.get(name) or {})}, f"{key_path}.{name}")
            for name in names}


def prefixed(name: str, io_dict: dict) -> dict:
    return {f"{name}{SEPARATOR}{path}": slot for path, slot in io_dict.items()}


def detached(value):
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, value)


class SideGroup(nn.Module):
    """Named ModelSides run one after the other on the same batch (see the module docstring)."""

    has_special = False
    special = None

    def __init__(self, sides: Dict[str, ModelSide], is_teacher: bool, settings: Dict[str, SideSettings]):
        super().__init__()
        self.members = nn.ModuleDict(sides)
        self.is_teacher = is_teacher
        self.settings = settings
        self.__dict__["forwards"] = dict(sides)  # each member, DDP-wrapped by wrap() under torchrun
        self.__dict__["_models"] = nn.ModuleDict({name: side.model for name, side in sides.items()})

    @property
    def names(self) -> List[str]:
        return list(self.members)

    @property
    def model(self) -> nn.Module:
        """Every member's whole model, by name (what a run checkpoint's ``model`` holds)."""
        return self._models

    @property
    def root(self) -> nn.Module:
        return self

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    @property
    def capture(self):
        return _Captures([side.capture for side in self.members.values()])

    def train(self, mode: bool = True):
        self.training = mode
        for side in self.members.values():
            side.train(mode)
        return self

    def wrap(self, ctx) -> "SideGroup":
        """Wrap each trainable member for distributed training with its own settings (one DDP per member)."""
        self.__dict__["forwards"] = {name: wrap_side(side, ctx, self.settings[name])
                                     for name, side in self.members.items()}
        return self

    def forward(self, x, supp_dict=None, targets=None):
        outputs, io_dict = TeacherOutputs(), {}
        for name, forward in self.forwards.items():
            outputs[name], member = forward(x, targets=targets)
            io_dict.update(prefixed(name, member))
        return outputs, io_dict


class _Captures:
    def __init__(self, captures):
        self.captures = captures

    def remove(self) -> None:
        for capture in self.captures:
            capture.remove()


def wrap_any(side, ctx, settings: SideSettings):
    """A side wrapped for distributed training: a group member by member, a ModelSide by ``settings``."""
    return side.wrap(ctx) if isinstance(side, SideGroup) else wrap_side(side, ctx, settings)


def model_sides(side) -> Dict[str, ModelSide]:
    """``{name: ModelSide}`` of a side: a group's members, or ``{'': side}`` (nothing for None)."""
    if side is None:
        return {}
    return dict(side.members) if isinstance(side, SideGroup) else {"": side}
