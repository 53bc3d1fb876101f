"""Prime-aware adaptive distillation: Zhang, Lan, Dai, Zeng, Bai, Chang & Wei, "Prime-Aware Adaptive
Distillation", ECCV 2020.  Its variance branch is the special module ``VarianceBranch4PAD``
(``distillkit.models.special.pad``)."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_loss
from .features import select_features
from .functional import check_reduction, flatten_samples
from .tat import ShapeMismatchError


@register_loss(term="sub")
class PADL2Loss(nn.Module):
    """PAD with the L2 loss (Zhang et al., ECCV 2020, Eq. 6), averaged over the D dimensions as the
    authors' code does.  With embeddings ``f_s, f_t`` and the student's log-variance ``s = log sigma^2``
    (the variance branch's output) for sample ``n``:

    ``L_n = (1/D) sum_d ( (f_t,d - f_s,d)^2 / (eps + exp(s_d)) + s_d )``,

    then the mean (``reduction='mean'``) or sum over the batch.  A sub term.
    """

    def __init__(self, student_embed_module_path: str, teacher_embed_module_path: str,
                 student_embed_module_io: str = "output", teacher_embed_module_io: str = "output",
                 module_path: str = "var_estimator", module_io: str = "output", eps: float = 1e-6,
                 reduction: str = "mean"):
        super().__init__()
        self.student_embed_module_path = student_embed_module_path
        self.teacher_embed_module_path = teacher_embed_module_path
        self.student_embed_module_io = student_embed_module_io
        self.teacher_embed_module_io = teacher_embed_module_io
        self.module_path = module_path
        self.module_io = module_io
        self.eps = eps
        self.reduction = check_reduction(reduction, "PADL2Loss")

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        log_variances = select_features(student_io_dict, self.module_path, self.module_io, "student", "PADL2Loss")
        student = flatten_samples(select_features(student_io_dict, self.student_embed_module_path,
                                                  self.student_embed_module_io, "student", "PADL2Loss"))
        teacher = flatten_samples(select_features(teacher_io_dict, self.teacher_embed_module_path,
                                                  self.teacher_embed_module_io, "teacher", "PADL2Loss"))
        if not (student.shape == teacher.shape == log_variances.shape):
            raise ShapeMismatchError(
                f"PADL2Loss: the student embedding {self.student_embed_module_path!r} {tuple(student.shape)}, the "
                f"teacher embedding {self.teacher_embed_module_path!r} {tuple(teacher.shape)} and the log-variances "
                f"{self.module_path!r} {tuple(log_variances.shape)} must have one shape (flattened per sample); "
                f"set VarianceBranch4PAD's feat_dim to the embedding size and pair embeddings of one size.")
        per_sample = torch.mean((teacher - student).pow(2) / (self.eps + torch.exp(log_variances)) + log_variances,
                                dim=1)
        return per_sample.mean() if self.reduction == "mean" else per_sample.sum()
