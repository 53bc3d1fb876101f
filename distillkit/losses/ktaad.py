"""He et al., "Knowledge Adaptation for Efficient Semantic Segmentation" (KTAAD), CVPR 2019.

Both terms belong to KTAAD's second stage: the teacher's knowledge translator is the encoder of a
paraphraser trained in the first stage (``Teacher4FactorTransfer``); the student's adapters come from
``Student4KTAAD``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_loss
from .functional import check_reduction, l2_normalize
from .relational import read_student_teacher
from .tat import ShapeMismatchError


def check_same_shape(student, teacher, where: str, fix: str) -> None:
    if student.shape != teacher.shape:
        raise ShapeMismatchError(f"{where}: student features {tuple(student.shape)} and teacher features "
                                 f"{tuple(teacher.shape)} must have the same shape; {fix}")


@register_loss(term="sub")
class KTALoss(nn.Module):
    """Knowledge translation and adaptation (KTA).

    He, Shen, Tian, Gong, Sun & Yan, "Knowledge Adaptation for Efficient Semantic Segmentation", CVPR 2019.
    With the teacher's translated knowledge ``T(F_t)`` and the student's adapted feature ``A(F_s)``, each
    flattened per sample and divided by its L_q norm,

    ``L = || A(F_s) / ||A(F_s)||_q - T(F_t) / ||T(F_t)||_q ||_p``

    per sample, averaged over the batch (``reduction='mean'``) or summed (``'sum'``); for ``p = 1`` the
    mean runs over all entries (torchdistill's ``l1_loss``), i.e. the per-sample L1 norm divided by
    ``chw`` as well.
    """

    def __init__(self, p=1, q=2, reduction="mean", knowledge_translator_path="paraphraser",
                 feature_adapter_path="feature_adapter"):
        super().__init__()
        check_reduction(reduction, "KTALoss")
        self.norm_p = p
        self.norm_q = q
        self.reduction = reduction
        self.knowledge_translator_path = knowledge_translator_path
        self.feature_adapter_path = feature_adapter_path

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        adapted, translated = read_student_teacher(student_io_dict, teacher_io_dict, self.feature_adapter_path,
                                                   "output", self.knowledge_translator_path, "output", "KTALoss")
        adapted, translated = adapted.flatten(1), translated.flatten(1)
        check_same_shape(adapted, translated, "KTALoss", "set the feature adapter's conv out_channels (and "
                                                         "stride) to match the paraphraser's encoder output.")
        adapted = F.normalize(adapted, p=self.norm_q, dim=1)
        translated = F.normalize(translated, p=self.norm_q, dim=1)
        if self.norm_p == 1:
            return F.l1_loss(adapted, translated, reduction=self.reduction)
        distances = torch.linalg.vector_norm(adapted - translated, ord=self.norm_p, dim=1)
        return distances.mean() if self.reduction == "mean" else distances.sum()


@register_loss(term="sub")
class AffinityLoss(nn.Module):
    """Affinity distillation of KTAAD.

    He, Shen, Tian, Gong, Sun & Yan, "Knowledge Adaptation for Efficient Semantic Segmentation", CVPR 2019.
    For each channel c, with ``a_c`` the channel's ``hw`` positions L2-normalised, the affinity
    ``A_c = a_c a_c^T / hw``; per sample the loss sums ``||A^s_c - A^t_c||_F`` over channels, then averages
    over the batch (``reduction='mean'``) or sums (``'sum'``), as torchdistill computes it.

    For unit vectors ``||s s^T - t t^T||_F = ||s - t|| ||s + t|| / sqrt(2)`` exactly, which this uses in place
    of the ``(hw, hw)`` matrices: memory ``O(b c hw)`` instead of ``O(b hw^2)`` per channel, and no cancellation
    when student and teacher agree.
    """

    def __init__(self, student_module_path, teacher_module_path, student_module_io="output",
                 teacher_module_io="output", reduction="mean"):
        super().__init__()
        check_reduction(reduction, "AffinityLoss")
        self.student_module_path = student_module_path
        self.teacher_module_path = teacher_module_path
        self.student_module_io = student_module_io
        self.teacher_module_io = teacher_module_io
        self.reduction = reduction

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        student, teacher = read_student_teacher(student_io_dict, teacher_io_dict, self.student_module_path,
                                                self.student_module_io, self.teacher_module_path,
                                                self.teacher_module_io, "AffinityLoss")
        student, teacher = student.flatten(2), teacher.flatten(2)
        check_same_shape(student, teacher, "AffinityLoss", "set the affinity adapter's conv out_channels to the "
                                                           "teacher's channels and match the spatial size.")
        positions = student.shape[2]
        s, t = l2_normalize(student, dim=2), l2_normalize(teacher, dim=2)
        per_channel = torch.linalg.vector_norm(s - t, dim=2) * torch.linalg.vector_norm(s + t, dim=2)
        per_sample = per_channel.sum(dim=1) / (math.sqrt(2) * positions)
        return per_sample.mean() if self.reduction == "mean" else per_sample.sum()
