"""Feature-map transfer by attention and by flow: AT (Zagoruyko & Komodakis, 2017), FSP (Yim et al., 2017)."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_loss
from .functional import attention_map, check_feature_pairs, fsp_matrix, iter_feature_pairs
from .tat import ShapeMismatchError


@register_loss(term="sub")
class ATLoss(nn.Module):
    """Attention transfer: Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the
    Performance of Convolutional Neural Networks via Attention Transfer", ICLR 2017.

    With ``Q^j = vec(F(A^j)) / ||vec(F(A^j))||_2`` for the j-th pair of feature maps ``A`` (N samples):

    * ``mode='paper'`` (Eq. 2): ``F(A) = sum_c A_c^2``, ``L = sum_j w_j (1/N) sum_n ||Q_S^j - Q_T^j||_2``;
    * ``mode='code'`` (the authors' code): ``F(A) = mean_c A_c^2``,
      ``L = sum_j w_j mean_{n, s} (Q_S^j - Q_T^j)^2``.

    ``at_pairs``: ``{name: {student: {io, path}, teacher: {io, path}, weight}}``.  A sub term.
    """

    def __init__(self, at_pairs: dict, mode: str = "code"):
        super().__init__()
        if mode not in ("code", "paper"):
            raise ConfigError(f"ATLoss mode must be 'code' (the authors' implementation) or 'paper' (Eq. 2), "
                              f"found {mode!r}.", key_path="params.mode")
        self.at_pairs = check_feature_pairs(at_pairs, "ATLoss", "at_pairs", ("student", "teacher"))
        self.mode = mode

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        total, batch_size = 0.0, None
        reduction = "sum" if self.mode == "paper" else "mean"
        for where, weight, (student, teacher) in iter_feature_pairs(self.at_pairs, student_io_dict, teacher_io_dict,
                                                                     "ATLoss"):
            if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
                raise ShapeMismatchError(
                    f"{where}: attention maps need the same batch and spatial size, but the student's is "
                    f"{tuple(student.shape)} and the teacher's is {tuple(teacher.shape)}; pair layers of equal "
                    f"resolution.")
            diff = attention_map(student, reduction) - attention_map(teacher, reduction)
            term = torch.norm(diff, dim=1).sum() if self.mode == "paper" else diff.pow(2).mean()
            total = total + weight * term
            if batch_size is None:
                batch_size = student.shape[0]
        return total / batch_size if self.mode == "paper" else total


@register_loss(term="sub")
class FSPLoss(nn.Module):
    """Flow of solution procedure: Yim, Joo, Bae & Kim, "A Gift From Knowledge Distillation: Fast
    Optimization, Network Minimization and Transfer Learning", CVPR 2017.

    ``G_ij(x) = sum_s F1_i(x; s) F2_j(x; s) / (h w)`` between two maps of a network (the larger one
    max-pooled to the smaller size), and, as torchdistill computes it (N samples),
    ``L = (1/N) sum_pairs w sum_n sum_j ||G^S_{:, j}(x_n) - G^T_{:, j}(x_n)||_2``.

    ``fsp_pairs``: ``{name: {student_first, student_second, teacher_first, teacher_second: {io, path},
    weight}}``.  A sub term.
    """

    def __init__(self, fsp_pairs: dict):
        super().__init__()
        self.fsp_pairs = check_feature_pairs(fsp_pairs, "FSPLoss", "fsp_pairs",
                                     ("student_first", "student_second", "teacher_first", "teacher_second"))

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        total, batch_size = 0.0, None
        keys = ("student_first", "student_second", "teacher_first", "teacher_second")
        for where, weight, tensors in iter_feature_pairs(self.fsp_pairs, student_io_dict, teacher_io_dict, "FSPLoss",
                                                         keys):
            student_first, student_second, teacher_first, teacher_second = tensors
            student = fsp_matrix(student_first, student_second)
            teacher = fsp_matrix(teacher_first, teacher_second)
            if student.shape != teacher.shape:
                raise ShapeMismatchError(
                    f"{where}: the student's FSP matrix is {tuple(student.shape)} (batch, channels of student_first, "
                    f"channels of student_second) but the teacher's is {tuple(teacher.shape)}; pair layers with the "
                    f"same channel counts.")
            total = total + weight * (student - teacher).norm(dim=1).sum()
            if batch_size is None:
                batch_size = student_first.shape[0]
        return total / batch_size
