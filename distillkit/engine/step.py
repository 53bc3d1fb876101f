"""The optimizer step and the scheduler step, each owned by one function or object.

:class:`OptimizerStep` does what follows a loss: backward (scaled by a GradScaler for
float16), unscaling, gradient clipping and the optimizer step, as timm's ``NativeScaler``
does.  :func:`step_scheduler` steps a scheduler of any family (``torch.optim.lr_scheduler``,
``ReduceLROnPlateau``, timm) per epoch or per iteration.
"""
from __future__ import annotations

from typing import Optional

import torch


class OptimizerStep:
    """``step(loss)``: backward, unscale, clip to ``clip_grad_norm`` (when set), optimizer step."""

    def __init__(self, optimizer: torch.optim.Optimizer, scaler=None, clip_grad_norm: Optional[float] = None):
        self.optimizer = optimizer
        self.scaler = scaler
        self.clip_grad_norm = clip_grad_norm

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _clip(self) -> None:
        if self.clip_grad_norm:
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, float(self.clip_grad_norm))

    def __call__(self, loss: torch.Tensor) -> None:
        if self.scaler is None:
            loss.backward()
            self._clip()
            self.optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        self._clip()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


def step_scheduler(scheduler, count: int, per_iteration: bool, metric=None) -> None:
    """Step ``scheduler`` after ``count`` epochs (``per_iteration`` False) or optimizer steps (True).

    ``ReduceLROnPlateau`` is told ``metric`` (a number, or a function giving it, called only then);
    a timm scheduler is told ``count`` (``step`` per epoch,
    ``step_update`` per iteration); any other scheduler is stepped once."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric() if callable(metric) else metric)
    elif hasattr(scheduler, "step_update"):  # timm
        if per_iteration:
            scheduler.step_update(count)
        else:
            scheduler.step(count)
    else:
        scheduler.step()
