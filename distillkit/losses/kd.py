"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .features import check_logit_pair


@register_loss(term="org")
class KDLoss(nn.Module):
    """Knowledge distillation (Hinton et al., 2015), torchdistill's ``KDLoss`` semantics.

    ``L = alpha * CE(z_s, y) + beta * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``

    with ``beta = 1 - alpha`` when omitted.  ``reduction`` applies to the KL term
    (``'batchmean'``: summed over classes, averaged over samples); the CE term
    uses ``'mean'`` for ``'batchmean'`` and ``reduction`` otherwise.  Extra
    keywords (``label_smoothing``, ...) go to the cross-entropy.  Without
    targets only the KL term is returned (weighted by ``beta * T^2``).
    An org term: called ``(student_output, teacher_output, targets)``.
    """

    def __init__(self, temperature: float, alpha: float, beta: Optional[float] = None,
                 reduction: str = "batchmean", **ce_kwargs):
        super().__init__()
        self.temperature = float(temperature)
        self.alpha = float(alpha if alpha is not None else 0.0)
        self.beta = 1.0 - self.alpha if beta is None else float(beta)
        if reduction not in ("batchmean", "mean", "sum"):
            raise ConfigError(f"reduction must be 'batchmean', 'mean' or 'sum', found {reduction!r}.",
                              key_path="params.reduction")
        self.reduction = reduction
        ce_reduction = "mean" if reduction == "batchmean" else reduction
        self.cross_entropy = nn.CrossEntropyLoss(reduction=ce_reduction, **ce_kwargs)

    def forward(self, student_output, teacher_output, targets=None):
        loss = student_output.new_zeros(())
        if self.beta != 0:
            check_logit_pair(student_output, teacher_output, "KDLoss")
            t = self.temperature
            kl = F.kl_div(torch.log_softmax(student_output / t, dim=1), torch.softmax(teacher_output / t, dim=1),
                          reduction=self.reduction)
            loss = loss + self.beta * t * t * kl
        if self.alpha != 0 and targets is not None:
            loss = loss + self.alpha * self.cross_entropy(student_output, targets)
        return loss
