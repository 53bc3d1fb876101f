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
    """``step(loss)``: backward; every ``grad_accum_step``-th call also unscale, clip to ``clip_grad_norm`` (when
    set), optimizer step and zero_grad.

    With ``grad_accum_step`` N > 1 each loss is divided by N before its backward, as torchdistill does
    (``optimizer.grad_accum_step``), so N batches of size B give the gradient of one batch of N x B.  The count
    runs on across epochs (torchdistill's ``stage_grad_count``); gradients accumulated but not yet applied are part
    of :meth:`state_dict`, so a resume goes on with them.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, scaler=None, clip_grad_norm: Optional[float] = None,
                 grad_accum_step: int = 1):
        self.optimizer = optimizer
        self.scaler = scaler
        self.clip_grad_norm = clip_grad_norm
        self.grad_accum_step = max(int(grad_accum_step), 1)
        self.pending = 0  # backward passes since the last optimizer step
        self.zero_grad()

    def _parameters(self):
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _clip(self) -> None:
        if self.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(self._parameters(), float(self.clip_grad_norm))

    def __call__(self, loss: torch.Tensor) -> bool:
        """Backward ``loss``; returns whether the optimizer stepped."""
        if self.grad_accum_step > 1:
            loss = loss / self.grad_accum_step
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        self.pending += 1
        if self.pending < self.grad_accum_step:
            return False
        self.pending = 0
        if self.scaler is None:
            self._clip()
            self.optimizer.step()
        else:
            self.scaler.unscale_(self.optimizer)
            self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.zero_grad()
        return True

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.pending:
            state["accumulated"] = {"count": self.pending, "grads": [
                None if p.grad is None else p.grad.detach().clone() for p in self._parameters()]}
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        accumulated = state.get("accumulated")
        self.pending = int(accumulated["count"]) if accumulated else 0
        self.zero_grad()
        if accumulated:
            for parameter, grad in zip(self._parameters(), accumulated["grads"]):
                parameter.grad = None if grad is None else grad.to(parameter.device)


def step_scheduler(scheduler, count: int, per_iteration: bool, metric=None) -> None:
    """Step ``scheduler`` after ``count`` epochs (``per_iteration`` False) or optimizer steps (True).

    ``ReduceLROnPlateau`` is told ``metric`` (a number, or a function giving it, called only then);
    a timm scheduler is told ``count`` (``step`` per epoch,
    ``step_update`` per iteration); any other scheduler is stepped once."""
    if scheduler is None:
        return
    if hasattr(scheduler, "schedulers"):  # one per student (deep mutual learning: multi/mutual.py)
        for member in scheduler.schedulers.values():
            step_scheduler(member, count, per_iteration, metric)
    elif isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric() if callable(metric) else metric)
    elif hasattr(scheduler, "step_update"):  # timm
        if per_iteration:
            scheduler.step_update(count)
        else:
            scheduler.step(count)
    else:
        scheduler.step()
