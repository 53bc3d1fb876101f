"""Ahn et al., "Variational Information Distillation for Knowledge Transfer" (VID), CVPR 2019."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_loss
from .functional import check_feature_pairs, iter_feature_pairs
from .tat import ShapeMismatchError


@register_loss(term="sub")
class VIDLoss(nn.Module):
    """Variational information distillation (VID).

    Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge Transfer",
    CVPR 2019.  The student's regressor (``Regressor4VID``) predicts a Gaussian ``N(mu(s), sigma^2)`` of the
    teacher feature ``t`` with one variance per channel; the loss is its negative log-likelihood (Eq. 5,
    without the constant), averaged over all entries, summed over pairs with their weights:

    ``L = sum_pairs w * mean_{n,c,h,w} 1/2 [ (t_nchw - mu_nchw)^2 / sigma_c^2 + log sigma_c^2 ]``.

    ``feature_pairs``: ``{name: {student: {io, path}, teacher: {io, path}, weight}}``; the student path is a
    regressor (its output is ``(mu, sigma^2)``).  ``weight`` may be spelled ``factor`` (torchdistill 0.x).
    ``margin`` is accepted and unused: torchdistill's sample configs pass it and torchdistill ignores it.
    """

    def __init__(self, feature_pairs, margin=None):
        super().__init__()
        check_feature_pairs(feature_pairs, "VIDLoss", "feature_pairs", ("student", "teacher"))
        self.feature_pairs = feature_pairs
        self.margin = margin

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        loss = 0
        for where, weight, (prediction, teacher) in iter_feature_pairs(self.feature_pairs, student_io_dict,
                                                                        teacher_io_dict, "VIDLoss"):
            if not (isinstance(prediction, (tuple, list)) and len(prediction) == 2):
                raise ShapeMismatchError(f"{where}: the student path must be a "
                                         f"Regressor4VID (output (mean, variance)); it gave "
                                         f"{type(prediction).__name__}. Point it at regressor_dict.<name>.")
            mean, variance = prediction
            if mean.shape != teacher.shape:
                raise ShapeMismatchError(f"{where}: the regressor predicts shape {tuple(mean.shape)} but the teacher "
                                         f"feature is {tuple(teacher.shape)}; set the regressor's out_channels to "
                                         f"{teacher.shape[1]} and hook layers of equal spatial size.")
            negative_log_likelihood = 0.5 * ((mean - teacher) ** 2 / variance + torch.log(variance))
            loss = loss + weight * negative_log_likelihood.mean()
        return loss
