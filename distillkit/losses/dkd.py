"""Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation" (DKD), CVPR 2022."""
from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss


def binary_target_probs(logits: torch.Tensor, target_mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """``b = [p_t, 1 - p_t]`` per sample: the softened probability mass of the target class and of the rest."""
    probs = torch.softmax(logits / temperature, dim=1)
    target = (probs * target_mask).sum(1, keepdim=True)
    others = (probs * (1 - target_mask)).sum(1, keepdim=True)
    return torch.cat([target, others], dim=1)


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
              temperature: float):
    """``(TCKD, NCKD)``, each ``T^2 * sum KL / B`` as mdistiller computes them (the target logit of the
    non-target distributions is masked by subtracting 1000)."""
    mask = torch.zeros_like(student_logits).scatter_(1, targets.reshape(-1, 1), 1.0)
    batch = student_logits.shape[0]
    b_s = binary_target_probs(student_logits, mask, temperature)
    b_t = binary_target_probs(teacher_logits, mask, temperature)
    tckd = F.kl_div(torch.log(b_s), b_t, reduction="sum") * temperature ** 2 / batch
    log_p_s = torch.log_softmax(student_logits / temperature - 1000.0 * mask, dim=1)
    p_t = torch.softmax(teacher_logits / temperature - 1000.0 * mask, dim=1)
    nckd = F.kl_div(log_p_s, p_t, reduction="sum") * temperature ** 2 / batch
    return tckd, nckd


@register_loss(term="org")
class DKDLoss(nn.Module):
    """Decoupled KD (Zhao, Cui, Song, Qiu, Liang: "Decoupled Knowledge Distillation", CVPR 2022), as
    mdistiller's ``DKD`` distiller computes it.

    ``KD = TCKD + (1 - p^T_t) NCKD`` decoupled into ``TCKD = KL(b^T || b^S)`` over the binary target /
    non-target masses ``b = [p_t, p_\\t]`` and ``NCKD = KL(p_hat^T || p_hat^S)`` over the non-target classes
    (``p_hat_i = p_i / p_\\t``), both softened by ``T`` and scaled by ``T^2``:

    ``L = ce_weight * CE(z_s, y) + min(e / warmup, 1) * (alpha * TCKD + beta * NCKD)``

    where ``e`` is the 1-based epoch (mdistiller's count).  The epoch comes from ``set_epoch(epoch)``, which a
    trainer calls before each epoch with its 0-based index (``e = epoch + 1``); until then ``e = 1``.
    ``warmup`` of 0 or None turns the ramp off.  mdistiller's defaults: ``alpha=1, beta=8, T=4, warmup=20``
    (CIFAR-100); ImageNet ResNet-34 -> ResNet-18: ``beta=0.5, T=1, warmup=1``.  The teacher's logits are
    detached (mdistiller runs the teacher without gradients; through the -1000 mask its gradient is NaN).
    An org term on the models' logits: called ``(student_output, teacher_output, targets)``.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 warmup: Optional[float] = 20, ce_weight: float = 1.0):
        super().__init__()
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0):
            raise ConfigError(f"DKDLoss warmup is the number of epochs over which the DKD term ramps up "
                              f"(a number >= 0, or None for no ramp); found {warmup!r}.", key_path="params.warmup")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.temperature = float(temperature)
        self.warmup = float(warmup or 0)
        self.ce_weight = float(ce_weight)
        self.epoch: Optional[int] = None

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss the 0-based index of the epoch about to run (the warm-up follows it)."""
        self.epoch = int(epoch)

    @property
    def warmup_factor(self) -> float:
        """``min(e / warmup, 1)`` with ``e`` the 1-based epoch."""
        if self.warmup <= 0:
            return 1.0
        if self.epoch is None:
            warnings.warn("DKDLoss has a warmup but was never told the epoch (set_epoch); using the first "
                          "epoch's weight 1 / warmup.", stacklevel=3)
            self.epoch = 0
        return min((self.epoch + 1) / self.warmup, 1.0)

    def forward(self, student_output, teacher_output, targets):
        if teacher_output is None:
            raise ValueError("DKDLoss needs a teacher output: declare models.teacher_model.")
        if targets is None:
            raise ValueError("DKDLoss needs the labels: its target / non-target split is per ground-truth class.")
        tckd, nckd = dkd_terms(student_output, teacher_output.detach(), targets, self.temperature)
        loss = self.warmup_factor * (self.alpha * tckd + self.beta * nckd)
        if self.ce_weight:
            loss = loss + self.ce_weight * F.cross_entropy(student_output, targets)
        return loss
