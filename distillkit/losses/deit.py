"""Touvron et al., "Training data-efficient image transformers & distillation through attention" (DeiT), ICML 2021."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, ShapeMismatchError
from ..registry import register_loss
from .features import check_logit_pair

_TYPES = ("none", "soft", "hard")
_KL_REDUCTIONS = ("mean", "batchmean")


def soft_cross_entropy(logits, targets, label_smoothing: float = 0.0):
    """Cross-entropy for integer labels (with label smoothing) or for soft targets (Mixup/CutMix), batch mean."""
    if targets.dtype.is_floating_point and targets.dim() == logits.dim():
        return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, targets, label_smoothing=label_smoothing)


@register_loss(term="org")
class DeiTDistillationLoss(nn.Module):
    """DeiT distillation through the distillation token (Touvron et al., 2021).

    The student returns ``(z_cls, z_dist)``; with teacher logits ``z_t``, labels ``y``:

    ``L = (1 - alpha) * CE(z_cls, y) + alpha * L_distill``, where
    soft: ``L_distill = tau^2 * KL(softmax(z_t / tau) || softmax(z_dist / tau))``,
    hard: ``L_distill = CE(z_dist, argmax z_t)``, none: ``L = CE(z_cls, y)``.

    ``kl_reduction='mean'`` is DeiT's own code (the KL summed over the batch and classes,
    divided by the number of logits); ``'batchmean'`` divides by the batch size (timm,
    vit-pytorch).  ``y`` may be integer labels (``label_smoothing`` applies) or soft
    targets from Mixup/CutMix.  An org term.
    """

    def __init__(self, distillation_type: str = "soft", alpha: float = 0.5, tau: float = 1.0,
                 kl_reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if distillation_type not in _TYPES:
            raise ConfigError(f"distillation_type must be one of {_TYPES}, found {distillation_type!r}.",
                              key_path="params.distillation_type")
        if kl_reduction not in _KL_REDUCTIONS:
            raise ConfigError(f"kl_reduction must be one of {_KL_REDUCTIONS}, found {kl_reduction!r}.",
                              key_path="params.kl_reduction")
        self.distillation_type = distillation_type
        self.alpha, self.tau = float(alpha), float(tau)
        self.kl_reduction = kl_reduction
        self.label_smoothing = float(label_smoothing)

    def forward(self, student_output, teacher_output, targets):
        if isinstance(student_output, (tuple, list)):
            class_logits, dist_logits = student_output
        else:
            if self.distillation_type != "none":
                raise ShapeMismatchError("DeiTDistillationLoss needs the student's (class_logits, "
                                         "distillation_logits); the student returned one tensor. Use a distilled "
                                         "ViT (timm:deit_*_distilled_*, distillable_vit) or distillation_type: none.")
            class_logits = dist_logits = student_output
        return deit_distillation_loss(class_logits, dist_logits, teacher_output, targets, self.distillation_type,
                                      self.alpha, self.tau, self.kl_reduction, self.label_smoothing)


def deit_distillation_loss(class_logits, dist_logits, teacher_logits, targets, distillation_type: str = "soft",
                           alpha: float = 0.5, tau: float = 1.0, kl_reduction: str = "mean",
                           label_smoothing: float = 0.0):
    """The loss of :class:`DeiTDistillationLoss` for explicit settings (see its formula)."""
    base = soft_cross_entropy(class_logits, targets, label_smoothing)
    if distillation_type == "none":
        return base
    check_logit_pair(dist_logits, teacher_logits, "DeiTDistillationLoss")
    teacher_logits = teacher_logits.detach()
    if distillation_type == "soft":
        kl = F.kl_div(F.log_softmax(dist_logits / tau, dim=1), F.log_softmax(teacher_logits / tau, dim=1),
                      reduction="sum", log_target=True)
        divisor = dist_logits.numel() if kl_reduction == "mean" else dist_logits.shape[0]
        distill = kl * (tau * tau) / divisor
    else:
        distill = F.cross_entropy(dist_logits, teacher_logits.argmax(dim=1))
    return (1 - alpha) * base + alpha * distill
