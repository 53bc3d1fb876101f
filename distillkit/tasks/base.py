"""A task family (classification, segmentation, detection): what differs between them in a run.

The Trainer, ``check``, ``eval`` and the runner call a :class:`Task` for the few things that depend on the
kind of work, and nothing else in the loop does:

* ``to_device(images, targets, device, speed)``: a collated batch onto the device (dense tasks move masks or
  box targets too; lists of variable-size images stay lists);
* ``batch_size(images)``: the number of samples in a batch (for per-sample loss means and images/s);
* ``collate``: the loader's collate function when the loader block names none (``collate_fn``);
* ``evaluate(model, loader, ctx, amp)``: the metrics of a model over a loader, reduced over ranks; each name in
  ``metrics`` becomes ``val_<name>`` in metrics.jsonl, ``primary`` is the default best metric (``max``);
* ``summary(result)``: the one line a person reads (logs, the CLI).

A task is chosen by the config's top-level ``task:`` key (a distillkit addition) or, without it, by the first
registered task whose ``claims(config)`` recognises the config (torchdistill configs name no task: their
models and datasets say it), else classification.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch

from ..data.batch import collate_batch


class Task:
    name: str = "task"
    metrics: Tuple[str, ...] = ()
    primary: str = ""
    supports_mixup: bool = False  # timm's Mixup/CutMix mixes image-level labels only
    collate: Callable = staticmethod(collate_batch)
    default_forward_proc: Optional[str] = None  # a side's forward_proc when it names none (model_side.py)

    @classmethod
    def claims(cls, config) -> bool:
        """Whether a config that names no ``task`` is of this family (its models or datasets say so)."""
        return False

    def to_device(self, images, targets, device: torch.device, speed):
        return speed.to_device(images, device), targets.to(device, non_blocking=True)

    def batch_size(self, images) -> int:
        return len(images)

    def evaluate(self, model, loader, ctx, amp=None) -> Dict[str, float]:
        raise NotImplementedError

    def summary(self, result: Dict[str, float]) -> str:
        return ", ".join(f"{name} {result[name]:.4g}" for name in self.metrics if name in result)
