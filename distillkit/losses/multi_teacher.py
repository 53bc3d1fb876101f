"""Knowledge distillation from several teachers (``models.teachers``), over an ensemble of their outputs."""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .features import check_logit_pair

ENSEMBLES = ("mean", "weighted", "confidence")


@register_loss(term="org")
class MultiTeacherKDLoss(nn.Module):
    """KD from K teachers: ``L = alpha * CE(z_s, y) + beta * T^2 * (1/B) sum_i sum_k w_ik KL(p_ik || q_i)``,

    ``p_ik = softmax(z_k(x_i) / T)``, ``q_i = softmax(z_s(x_i) / T)``; the weights of a sample sum to 1, so for the
    student this is KD towards the weighted average of the teachers' soft targets ``sum_k w_ik p_ik`` (the two
    differ by a constant, the weighted teacher entropies).  ``ensemble``:

    - ``mean``: ``w_k = 1/K`` (AVER; You et al., "Learning from Multiple Teacher Networks", KDD 2017);
    - ``weighted``: ``w_k`` = ``weights[name]`` normalised to sum 1;
    - ``confidence``: CA-MKD's per-sample weights (Zhang, Chen and Wang, "Confidence-Aware Multi-Teacher Knowledge
      Distillation", ICASSP 2022, Eq. 2): ``w_ik = (1 - softmax_k(-log p_k(y_i | x_i))) / (K - 1)``, the softmax
      over teachers of each teacher's cross-entropy on the label (at T = 1), so a teacher that is more confident
      in the true class weighs more.  (CA-MKD's released code also divides the summed loss by K; that constant is
      beta's business here.)  K = 1 gives w = 1.  Only the logit part of CA-MKD (not its feature term).

    ``beta = 1 - alpha`` when omitted; ``reduction``: ``batchmean`` (as above) or ``sum``.  An org term whose
    teacher output is ``{name: logits}``: it reads every teacher (no ``teacher:`` key).
    """

    reads_all_teachers = True

    def __init__(self, temperature: float = 1.0, alpha: float = 0.5, beta: Optional[float] = None,
                 ensemble: str = "mean", weights: Optional[Dict[str, float]] = None, reduction: str = "batchmean"):
        super().__init__()
        if ensemble not in ENSEMBLES:
            raise ConfigError(f"ensemble must be one of {', '.join(ENSEMBLES)}, found {ensemble!r}.",
                              key_path="params.ensemble", candidates=list(ENSEMBLES))
        if (ensemble == "weighted") != bool(weights):
            raise ConfigError("ensemble 'weighted' takes weights: {teacher name: number}, and only it does.",
                              key_path="params.weights")
        if weights and (sum(weights.values()) <= 0 or min(weights.values()) < 0):
            raise ConfigError(f"weights must be >= 0 with a positive sum, found {weights}.", key_path="params.weights")
        if reduction not in ("batchmean", "sum"):
            raise ConfigError(f"reduction must be 'batchmean' or 'sum', found {reduction!r}.",
                              key_path="params.reduction")
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.beta = 1.0 - self.alpha if beta is None else float(beta)
        self.ensemble = ensemble
        self.weights = {str(k): float(v) for k, v in (weights or {}).items()}
        self.reduction = reduction

    def teacher_weights(self, teachers: Dict[str, torch.Tensor], targets) -> torch.Tensor:
        """``(K, B)``: each teacher's weight per sample, in the order of ``teachers``."""
        names = list(teachers)
        batch = next(iter(teachers.values())).shape[0]
        device = next(iter(teachers.values())).device
        if self.ensemble == "mean":
            return torch.full((len(names), batch), 1.0 / len(names), device=device)
        if self.ensemble == "weighted":
            missing = [n for n in names if n not in self.weights]
            if missing:
                raise ConfigError(f"MultiTeacherKDLoss weights name no weight for the teacher(s) {', '.join(missing)}"
                                  f" (teachers: {', '.join(names)}).", key_path="params.weights")
            given = torch.tensor([self.weights[n] for n in names], device=device)
            return (given / given.sum())[:, None].expand(len(names), batch)
        if targets is None or targets.dim() != 1:
            raise ConfigError("ensemble 'confidence' weighs teachers by their cross-entropy on hard labels; this "
                              "batch has none (soft Mixup/CutMix targets?).", key_path="params.ensemble")
        if len(names) == 1:
            return torch.ones(1, batch, device=device)
        losses = torch.stack([F.cross_entropy(teachers[n].float(), targets, reduction="none") for n in names])
        return (1.0 - torch.softmax(losses, dim=0)) / (len(names) - 1)

    def forward(self, student_output, teacher_output, targets=None):
        if not isinstance(teacher_output, dict):
            raise ConfigError("MultiTeacherKDLoss reads several teachers: declare models.teachers: {name: {...}} "
                              "(with one models.teacher_model use KDLoss).", key_path="models.teachers")
        loss = student_output.new_zeros(())
        if self.beta != 0:
            t = self.temperature
            log_q = torch.log_softmax(student_output / t, dim=1)
            weights = self.teacher_weights(teacher_output, targets).to(log_q.dtype)
            total = student_output.new_zeros(())
            for weight, (name, logits) in zip(weights, teacher_output.items()):
                check_logit_pair(student_output, logits, f"MultiTeacherKDLoss (teacher {name!r})")
                kl = F.kl_div(log_q, torch.softmax(logits / t, dim=1), reduction="none").sum(dim=1)
                total = total + (weight * kl).sum()
            if self.reduction == "batchmean":
                total = total / student_output.shape[0]
            loss = loss + self.beta * t * t * total
        if self.alpha != 0 and targets is not None:
            loss = loss + self.alpha * F.cross_entropy(student_output, targets)
        return loss
