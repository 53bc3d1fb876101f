"""Knowledge review: Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021.
Its attention-based fusion lives in the special module ``Student4KnowledgeReview``
(``distillkit.models.special.review``)."""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..registry import register_loss
from .features import select_features
from .functional import check_reduction
from .tat import ShapeMismatchError


def hierarchical_context_loss(student, teacher, output_sizes, reduction: str = "mean"):
    """``(D(F_s, F_t) + sum_k 2^-k D(P_k F_s, P_k F_t)) / (1 + sum_k 2^-k)`` over the pooled sizes below h."""
    loss = F.mse_loss(student, teacher, reduction=reduction)
    weight = total_weight = 1.0
    for size in output_sizes:
        if size >= student.shape[2]:
            continue
        weight /= 2.0
        loss = loss + weight * F.mse_loss(F.adaptive_avg_pool2d(student, (size, size)),
                                          F.adaptive_avg_pool2d(teacher, (size, size)), reduction=reduction)
        total_weight += weight
    return loss / total_weight


@register_loss(term="sub", aliases={"kernel_sizes": "output_sizes"})
class HierarchicalContextLoss(nn.Module):
    """Hierarchical context loss (HCL) of knowledge review (Chen et al., CVPR 2021, Sec. 3.3).

    The student's fused feature ``F_s`` (the first output of an ``AttentionBasedFusion``) against the teacher's
    ``F_t``: ``D`` is the MSE, ``P_k`` adaptive average pooling to ``k x k`` for each ``k`` in ``output_sizes``
    smaller than the map's height, weighted ``1/2, 1/4, ...`` in order:

    ``L = ( D(F_s, F_t) + sum_i 2^-i D(P_{k_i} F_s, P_{k_i} F_t) ) / (1 + sum_i 2^-i)``.  A sub term.
    """

    def __init__(self, student_module_path: str, student_module_io: str, teacher_module_path: str,
                 teacher_module_io: str, reduction: str = "mean", output_sizes=None):
        super().__init__()
        self.student_module_path = student_module_path
        self.student_module_io = student_module_io
        self.teacher_module_path = teacher_module_path
        self.teacher_module_io = teacher_module_io
        self.reduction = check_reduction(reduction, "HierarchicalContextLoss")
        self.output_sizes = [4, 2, 1] if output_sizes is None else list(output_sizes)

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        fused = select_features(student_io_dict, self.student_module_path, self.student_module_io, "student",
                                "HierarchicalContextLoss")
        teacher = select_features(teacher_io_dict, self.teacher_module_path, self.teacher_module_io, "teacher",
                                  "HierarchicalContextLoss")
        if not isinstance(fused, (tuple, list)) or len(fused) != 2:
            raise ShapeMismatchError(
                f"HierarchicalContextLoss reads the student's {self.student_module_io} of "
                f"{self.student_module_path!r}, which must be an AttentionBasedFusion's (output, residual) pair; "
                f"found {type(fused).__name__}. Point student_module_path at abf_modules.<i> of "
                f"Student4KnowledgeReview with student_module_io 'output'.")
        student = fused[0]
        if student.shape != teacher.shape:
            raise ShapeMismatchError(
                f"HierarchicalContextLoss: the student's fused feature {self.student_module_path!r} is "
                f"{tuple(student.shape)} but the teacher's {self.teacher_module_path!r} is {tuple(teacher.shape)}; "
                f"set that AttentionBasedFusion's out_channels to {teacher.shape[1]} and its size in sizes to the "
                f"teacher map's height.")
        return hierarchical_context_loss(student, teacher, self.output_sizes, self.reduction)
