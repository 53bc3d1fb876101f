"""Jeong, Lee, Choi, "Streamlined Knowledge Distillation" (SKD), CVPR 2026: instance and direction terms."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .functional import l2_normalize, read_matching_pair, soft_kl_divergence

MODES = ("paper", "code")


def check_mode(mode: str, owner: str) -> str:
    if mode not in MODES:
        raise ConfigError(f"{owner}: mode must be 'paper' (the paper's equations) or 'code' (the authors' "
                          f"implementation), found {mode!r}.", key_path="params.mode")
    return mode


def below_median(values: torch.Tensor) -> torch.Tensor:
    """``values <= median`` as a float mask; the median is ``torch.quantile(values, 0.5)`` (interpolated)."""
    return (values <= torch.quantile(values, 0.5)).to(values.dtype)


class _SKDTerm(nn.Module):
    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, mode: str):
        super().__init__()
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.mode = check_mode(mode, type(self).__name__)

    def read_logits(self, student_io: dict, teacher_io: dict):
        return read_matching_pair(student_io, teacher_io, self.student_module_path, self.student_module_io,
                                  self.teacher_module_path, self.teacher_module_io, type(self).__name__)


@register_loss(term="sub")
class SKDInstanceLoss(_SKDTerm):
    """SKD's instance-wise term (Jeong, Lee, Choi: "Streamlined Knowledge Distillation", CVPR 2026).

    ``mode='paper'`` (Eq. 1): ``L_INS = KL(softmax(z_t / tau) || softmax(z_s / tau))``, batch mean.
    ``mode='code'`` (the authors' code): ``L_INS = 1/B sum_i m_i tau^2 KL_i`` where ``KL_i`` is sample i's
    KL and ``m_i = [c_i <= median_j c_j]`` with ``c_i = max_k softmax(z_t)_ik`` the teacher's confidence.
    A sub term reading logits (hook the classifier, e.g. ``fc``).
    """

    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, temperature: float = 4.0, mode: str = "paper"):
        super().__init__(student_module_path, student_module_io, teacher_module_path, teacher_module_io, mode)
        self.temperature = float(temperature)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        z_s, z_t = self.read_logits(student_io_dict, teacher_io_dict)
        if self.mode == "paper":
            return soft_kl_divergence(z_s, z_t, self.temperature, "batchmean")
        per_sample = soft_kl_divergence(z_s, z_t, self.temperature, "none").sum(1) * self.temperature ** 2
        confidence = torch.softmax(z_t.detach(), dim=1).amax(dim=1)
        return (per_sample * below_median(confidence)).mean()


@register_loss(term="sub")
class SKDDirectionLoss(_SKDTerm):
    """SKD's direction-wise term (Jeong, Lee, Choi: "Streamlined Knowledge Distillation", CVPR 2026).

    ``G = Z_hat Z_hat^T / s`` with ``Z_hat`` the L2-normalised logits (``B x B`` Gramians), ``D = G_s - G_t``,
    ``Sigma' = cov(D) + lambda I`` (the columns of ``D`` as variables) and
    ``L_DIR = 1/B sum_i sqrt(D_i Sigma'^{-1} D_i^T)``.
    ``mode='paper'`` (Eqs. 3-8): ``s = 1``.  ``mode='code'``: ``s = C`` (the number of classes) and the loss is
    multiplied by the fraction of classes whose batch-summed teacher probability is at most the median.
    ``lambda = tikhonov``.  A sub term reading logits (hook the classifier, e.g. ``fc``).
    """

    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, tikhonov: float = 0.1, mode: str = "paper"):
        super().__init__(student_module_path, student_module_io, teacher_module_path, teacher_module_io, mode)
        self.tikhonov = float(tikhonov)

    def mahalanobis_distance(self, z_s: torch.Tensor, z_t: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        n_s, n_t = l2_normalize(z_s, dim=1), l2_normalize(z_t, dim=1)
        diff = n_s @ n_s.t() / scale - n_t @ n_t.t() / scale
        covariance = torch.cov(diff.t()) + self.tikhonov * torch.eye(diff.shape[1], dtype=diff.dtype,
                                                                     device=diff.device)
        solved = torch.cholesky_solve(diff.t(), torch.linalg.cholesky(covariance))  # Sigma'^{-1} D^T
        return torch.sqrt((diff * solved.t()).sum(1)).mean()

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        z_s, z_t = self.read_logits(student_io_dict, teacher_io_dict)
        if self.mode == "paper":
            return self.mahalanobis_distance(z_s, z_t)
        distance = self.mahalanobis_distance(z_s, z_t, scale=z_s.shape[1])
        class_confidence = F.softmax(z_t.detach(), dim=1).sum(0)
        return distance * below_median(class_confidence).mean()
