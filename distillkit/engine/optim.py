"""Optimizers and learning-rate schedulers from ``train.optimizer`` / ``train.scheduler``.

Names resolve one way, through :meth:`Registry.resolve`: distillkit's ``OPTIMIZERS`` /
``SCHEDULERS`` registries (a plugin's ``@register_optimizer``), then ``torch.optim`` /
``torch.optim.lr_scheduler``, and for schedulers ``timm:<name>`` (timm's
``create_scheduler_v2``: cosine, step, ... with ``warmup_epochs``, ``warmup_lr``, ``min_lr``).
"""
from __future__ import annotations

import functools
import inspect
import logging
from typing import Optional

import torch
from torch.optim import lr_scheduler

from ..config.schema import OptimizerSettings, SchedulerSettings, TypedBlock
from ..errors import ConfigError
from ..hooks import find_module
from ..registry import OPTIMIZERS, SCHEDULERS
from ..utils import call_with_params
from . import poly_lr  # noqa: F401  (registers poly_lr_scheduler)

logger = logging.getLogger(__name__)
TIMM_SCHEDULERS = ("cosine", "tanh", "step", "multistep", "plateau", "poly")


def _classes(namespace, base):
    names = [n for n in dir(namespace) if not n.startswith("_")]
    return {n: getattr(namespace, n) for n in names
            if inspect.isclass(getattr(namespace, n)) and issubclass(getattr(namespace, n), base)
            and getattr(namespace, n) is not base}


_TORCH_OPTIMIZERS = _classes(torch.optim, torch.optim.Optimizer)
_TORCH_SCHEDULERS = {n: c for n, c in vars(lr_scheduler).items()
                     if inspect.isclass(c) and (n.endswith("LR") or n == "ReduceLROnPlateau") and not n.startswith("_")}


def _timm_scheduler(name: str):
    if not name.startswith("timm:") or name[len("timm:"):] not in TIMM_SCHEDULERS:
        return None
    from timm.scheduler import create_scheduler_v2  # timm is imported only for timm schedulers

    def create(optimizer, **params):
        return create_scheduler_v2(optimizer, name[len("timm:"):], **params)[0]

    return functools.wraps(create_scheduler_v2)(create)


def build_optimizer(settings: TypedBlock, parameters, world_size: int, scale_lr: bool) -> torch.optim.Optimizer:
    """The optimizer over ``parameters``; ``scale_lr`` multiplies ``lr`` by the world size."""
    cls = OPTIMIZERS.resolve(settings.type, key_path=f"{settings.key_path}.type",
                             fallbacks=(("torch.optim", (_TORCH_OPTIMIZERS.get, lambda: list(_TORCH_OPTIMIZERS))),))
    params = dict(settings.params)
    lr = params.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0):
        raise ConfigError(f"expected a learning rate > 0, found {lr!r}.", key_path=f"{settings.key_path}.params.lr")
    if scale_lr and "lr" in params:
        params["lr"] = float(params["lr"]) * world_size
    if not parameters:
        raise ConfigError("nothing to optimize: every parameter of the student (and its special module) is frozen.",
                          key_path="train.student.requires_grad")
    return call_with_params(cls, params, f"{settings.key_path}.params", parameters)


def module_wise_groups(settings: OptimizerSettings, student, teacher, world_size: int, scale_lr: bool) -> list:
    """torchdistill's ``optimizer.module_wise_params``: one parameter group per listed module (of the student's
    side, or the teacher's with ``is_teacher``), with its own params; only these modules are optimized."""
    groups = []
    for index, entry in enumerate(settings.module_wise_params):
        path = f"{settings.key_path}.module_wise_params.{index}"
        if not isinstance(entry, dict) or not isinstance(entry.get("module"), str):
            raise ConfigError("each entry needs 'module' (a module path) and optionally 'params' and 'is_teacher'.",
                              key_path=path)
        side = teacher if entry.get("is_teacher") else student
        if side is None:
            raise ConfigError("is_teacher: True, but there is no teacher.", key_path=f"{path}.is_teacher")
        group = dict(entry.get("params") or {})
        if scale_lr and "lr" in group:
            group["lr"] = float(group["lr"]) * world_size
        module = find_module(side.root, entry["module"], f"{path}.module")
        group["params"] = [p for p in module.parameters() if p.requires_grad]
        groups.append(group)
    return groups


def build_scheduler(settings: Optional[SchedulerSettings], optimizer, num_epochs: int, steps_per_epoch: int):
    """The scheduler, or None; a timm scheduler stepped per iteration counts optimizer steps."""
    if settings is None:
        return None
    fallbacks = (("torch.optim.lr_scheduler", (_TORCH_SCHEDULERS.get, lambda: list(_TORCH_SCHEDULERS))),
                 ("timm (timm:<name>)", (_timm_scheduler, lambda: [f"timm:{n}" for n in TIMM_SCHEDULERS])))
    cls = SCHEDULERS.resolve(settings.type, key_path=f"{settings.key_path}.type", fallbacks=fallbacks)
    params = dict(settings.params)
    if settings.type == "poly_lr_scheduler" and params.get("num_iterations") in (None, "None"):
        params["num_iterations"] = max(1, steps_per_epoch)  # torchdistill 0.x's scripts fill it in likewise
    if settings.type.startswith("timm:"):
        params.setdefault("num_epochs", num_epochs)
        if settings.scheduling_step > 0:  # per iteration: timm is told the optimizer steps done
            params.setdefault("step_on_epochs", False)
            params.setdefault("updates_per_epoch", max(1, steps_per_epoch))
    return call_with_params(cls, params, f"{settings.key_path}.params", optimizer)
