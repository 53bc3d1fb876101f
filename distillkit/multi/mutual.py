"""Deep mutual learning (Zhang, Xiang, Hospedales and Lu, "Deep Mutual Learning", CVPR 2018).

K students (``models.students: {name: {...}}``) train together on the same batches.  Student k minimises

    L_k = CE(p_k, y) + 1/(K-1) * sum_{l != k} KL(p_l || p_k)

with the other students' outputs detached.  Here each student's loss is ``train.criterion`` with the other
students as its teachers: their outputs ``{name: logits}`` (detached) and their hooked features
(``"<name>:<path>"``, detached) take the teacher's place, so ``MultiTeacherKDLoss`` with ``alpha: 1, beta: 1,
temperature: 1, ensemble: mean`` is exactly L_k, and with two students KDLoss reads the other one directly.  The
criterion's total is sum_k L_k; since no L_k depends on another student's parameters, one backward pass gives
every student the gradient of its own L_k.  Each student has its own optimizer and scheduler (built from
``train.optimizer`` / ``train.scheduler``), its own DDP wrapper under torchrun, its own best weights in its
``ckpt`` / ``dst_ckpt`` and its own columns in metrics.jsonl (``val_top1/<name>``).
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from ..engine.optim import build_optimizer, build_scheduler
from ..errors import ConfigError
from ..losses import build_criterion
from .groups import SEPARATOR, TeacherOutputs, detached, member_io


class MutualLoss(nn.Module):
    """``sum_k criterion_k(student_k, others)``; terms are named ``<student>/<term>``."""

    def __init__(self, block: dict, key_path: str, names):
        super().__init__()
        self.criteria = nn.ModuleDict({name: build_criterion(block, key_path, teachers=[n for n in names if n != name])
                                       for name in names})

    def forward(self, student_output, teacher_output, student_io: dict, teacher_io: dict, targets, supp_dict=None):
        total, terms = 0.0, {}
        for name, criterion in self.criteria.items():
            others = TeacherOutputs({n: detached(out) for n, out in student_output.items() if n != name})
            others_io = {path: detached(slot) for path, slot in student_io.items()
                         if not path.startswith(f"{name}{SEPARATOR}")}
            loss, own = criterion(student_output[name], others, member_io(student_io, name), others_io, targets,
                                  supp_dict)
            total = total + loss
            terms.update({f"{name}/{term}": value for term, value in own.items()})
        return total, terms


class OptimizerGroup:
    """One optimizer per student behind the optimizer interface the Trainer's step uses."""

    def __init__(self, optimizers: Dict[str, torch.optim.Optimizer]):
        self.optimizers = optimizers

    @property
    def param_groups(self):
        return [group for optimizer in self.optimizers.values() for group in optimizer.param_groups]

    def step(self, closure=None):
        for optimizer in self.optimizers.values():
            optimizer.step()

    def zero_grad(self, set_to_none: bool = True):
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[name])


class SchedulerGroup:
    """One scheduler per student (``step_scheduler`` steps each)."""

    def __init__(self, schedulers: dict):
        self.schedulers = schedulers

    def state_dict(self) -> dict:
        return {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state[name])


def check_mutual(train, teacher) -> None:
    """What deep mutual learning here does not combine with."""
    if teacher is not None:
        raise ConfigError("models.students train from each other; a teacher beside them is not supported.",
                          key_path="models.teachers" if hasattr(teacher, "members") else "models.teacher_model")
    for key, value in (("model_ema", train.model_ema), ("teacher_cache", train.teacher_cache)):
        if value:
            raise ConfigError(f"train.{key} is not supported with models.students (deep mutual learning).",
                              key_path=f"{train.key_path}.{key}")
    if train.optimizer.module_wise_params:
        raise ConfigError("module_wise_params is not supported with models.students: each student gets the "
                          "optimizer of train.optimizer.", key_path=f"{train.optimizer.key_path}.module_wise_params")


def group_optimizers(train, students, world_size: int, scale: bool, steps_per_epoch: int):
    """``(OptimizerGroup, SchedulerGroup or None)``: train.optimizer / train.scheduler built once per student."""
    optimizers = {name: build_optimizer(train.optimizer, [p for p in side.parameters() if p.requires_grad],
                                        world_size, scale) for name, side in students.members.items()}
    schedulers = {name: build_scheduler(train.scheduler, optimizer, train.num_epochs, steps_per_epoch)
                  for name, optimizer in optimizers.items()}
    return OptimizerGroup(optimizers), SchedulerGroup(schedulers) if train.scheduler else None
