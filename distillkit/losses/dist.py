"""DIST and DIST+: matching relations (Pearson correlations) between class predictions.

Huang et al., "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022;
Huang et al., "DIST+: Knowledge Distillation From a Stronger Adaptive Teacher", TPAMI 2025.
"""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_loss
from .functional import pearson_correlation, read_matching_pair
from .tat import ShapeMismatchError


def relation_loss(y_s: torch.Tensor, y_t: torch.Tensor, eps: float) -> torch.Tensor:
    """``1 - mean_i rho(y_s[i], y_t[i])``: one minus the mean row-wise Pearson correlation."""
    return 1 - pearson_correlation(y_s, y_t, eps).mean()


@register_loss(term="sub")
class DISTLoss(nn.Module):
    """DIST (Huang, You, Wang, Qian, Xu: "Knowledge Distillation from A Stronger Teacher", NeurIPS 2022).

    With ``Y^s = softmax(Z^s / tau)``, ``Y^t = softmax(Z^t / tau)`` (``B x C``) and the Pearson
    distance ``d_p(u, v) = 1 - rho_p(u, v)``:

    ``L_inter = tau^2 / B * sum_i d_p(Y^s_{i,:}, Y^t_{i,:})``,
    ``L_intra = tau^2 / C * sum_j d_p(Y^s_{:,j}, Y^t_{:,j})``,
    ``L = beta * L_inter + gamma * L_intra``.

    A sub term: the logits are read from ``io_dict[<side>_module_path][<side>_module_io]`` (hook the
    models' classifier, e.g. ``fc``; torchdistill's ``'.'`` root path is not a hookable path in distillkit).
    """

    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0, eps: float = 1e-8):
        super().__init__()
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.tau = float(tau)
        self.eps = float(eps)

    def read_logits(self, student_io: dict, teacher_io: dict):
        return read_matching_pair(student_io, teacher_io, self.student_module_path, self.student_module_io,
                                  self.teacher_module_path, self.teacher_module_io, type(self).__name__)

    def dist_loss(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        y_s = torch.softmax(student_logits / self.tau, dim=1)
        y_t = torch.softmax(teacher_logits / self.tau, dim=1)
        inter = relation_loss(y_s, y_t, self.eps)
        intra = relation_loss(y_s.t(), y_t.t(), self.eps)
        return self.tau ** 2 * (self.beta * inter + self.gamma * intra)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        return self.dist_loss(*self.read_logits(student_io_dict, teacher_io_dict))


@register_loss(term="sub")
class DISTPlusLoss(DISTLoss):
    """DIST+ (Huang, You, Wang, Qian, Xu: "DIST+: Knowledge Distillation From a Stronger Adaptive Teacher",
    TPAMI 2025): DIST on the logits plus two relations on a feature map ``F`` (``B x C x H x W``).

    ``L = L_DIST(beta, gamma, tau) + iota * R_channel + kappa * L_spatial`` where
    ``R_channel = mean_{b,h,w} rho(F^s_{b,:,h,w}, F^t_{b,:,h,w})`` (the correlation across channels at each
    position, centred per position, ``eps`` added to the denominator) and
    ``L_spatial = 1 - mean_p rho(A^s_{:,p}, A^t_{:,p})`` with ``A = sum_c F_c`` flattened to ``B x HW``
    (each position's correlation across the batch).

    As in torchdistill 1.1.5, ``R_channel`` enters as the correlation itself, not ``1 - correlation``
    (minimising it pushes the channel relations apart), and the docs' roles of the weights differ from the code:
    ``gamma`` weighs DIST's intra-class term, ``iota`` the channel term and ``kappa`` the spatial term. A sub term.
    """

    def __init__(self, student_logit_module_path: str, student_logit_module_io: str,
                 teacher_logit_module_path: str, teacher_logit_module_io: str,
                 student_feature_module_path: str, student_feature_module_io: str,
                 teacher_feature_module_path: str, teacher_feature_module_io: str,
                 beta: float = 1.0, gamma: float = 1.0, iota: float = 1.0, kappa: float = 1.0, tau: float = 1.0,
                 eps: float = 1e-8):
        super().__init__(student_logit_module_path, student_logit_module_io, teacher_logit_module_path,
                         teacher_logit_module_io, beta=beta, gamma=gamma, tau=tau, eps=eps)
        self.student_feature_module_path = student_feature_module_path
        self.student_feature_module_io = student_feature_module_io
        self.teacher_feature_module_path = teacher_feature_module_path
        self.teacher_feature_module_io = teacher_feature_module_io
        self.iota = float(iota)
        self.kappa = float(kappa)

    def channel_relation(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        c_s = f_s - f_s.mean(1, keepdim=True)
        c_t = f_t - f_t.mean(1, keepdim=True)
        covariance = (c_s * c_t).sum(1)
        scale = torch.sqrt(c_s.pow(2).sum(1) * c_t.pow(2).sum(1))
        return (covariance / (scale + self.eps)).mean()

    def spatial_relation(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        a_s, a_t = f_s.sum(1).flatten(1), f_t.sum(1).flatten(1)
        return relation_loss(a_s.t(), a_t.t(), self.eps)

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        loss = self.dist_loss(*self.read_logits(student_io_dict, teacher_io_dict))
        f_s, f_t = read_matching_pair(student_io_dict, teacher_io_dict, self.student_feature_module_path,
                                      self.student_feature_module_io, self.teacher_feature_module_path,
                                      self.teacher_feature_module_io, "DISTPlusLoss", what="feature maps")
        if f_s.dim() < 3:
            raise ShapeMismatchError(f"DISTPlusLoss needs (batch, channels, height, width) feature maps at "
                                     f"{self.student_feature_module_path!r}, found shape {tuple(f_s.shape)}; hook a "
                                     f"convolutional stage (e.g. layer4), not a pooled or linear output.")
        return loss + self.iota * self.channel_relation(f_s, f_t) + self.kappa * self.spatial_relation(f_s, f_t)
