"""Miles & Mikolajczyk, "Understanding the Role of the Projector in Knowledge Distillation", AAAI 2024."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_loss
from .functional import read_matching_pair, soft_kl_divergence


@register_loss(term="sub")
class SRDLoss(nn.Module):
    """SRD, the simple recipe of Miles & Mikolajczyk ("Understanding the Role of the Projector in Knowledge
    Distillation", AAAI 2024), as torchdistill 1.1.5 computes it.

    With ``Z_s = BN(W f_s)`` and ``Z_t = BN(f_t)`` (the ``norm_layer`` outputs of :class:`SRDModelWrapper`,
    pooled penultimate features, affine-free BatchNorm, a linear projector ``W`` on the student only):

    ``L = 2 * log(sum |Z_s - Z_t|^alpha) + KL(softmax(z_t / tau) || softmax(z_s / tau))``

    with ``alpha = exponent``, ``tau = temperature`` and the KL reduced by ``reduction`` (no ``tau^2``).
    A sub term: features from ``<side>_feature_module_path`` (``norm_layer``), logits from
    ``<side>_linear_module_path`` (hook the classifier, e.g. ``model.fc``).
    """

    def __init__(self, student_feature_module_path: str, student_feature_module_io: str,
                 teacher_feature_module_path: str, teacher_feature_module_io: str,
                 student_linear_module_path: str, student_linear_module_io: str,
                 teacher_linear_module_path: str, teacher_linear_module_io: str,
                 exponent: float = 1.0, temperature: float = 1.0, reduction: str = "batchmean"):
        super().__init__()
        self.feature_paths = (student_feature_module_path, student_feature_module_io,
                              teacher_feature_module_path, teacher_feature_module_io)
        self.linear_paths = (student_linear_module_path, student_linear_module_io,
                             teacher_linear_module_path, teacher_linear_module_io)
        self.exponent = float(exponent)
        self.temperature = float(temperature)
        self.reduction = reduction

    def forward(self, student_io_dict: dict, teacher_io_dict: dict, targets=None):
        z_s, z_t = read_matching_pair(student_io_dict, teacher_io_dict, *self.feature_paths, "SRDLoss",
                                      what="normalised features")
        feature_loss = torch.log((z_s - z_t).abs().pow(self.exponent).sum())
        logits_s, logits_t = read_matching_pair(student_io_dict, teacher_io_dict, *self.linear_paths, "SRDLoss")
        return 2 * feature_loss + soft_kl_divergence(logits_s, logits_t, self.temperature, self.reduction)
