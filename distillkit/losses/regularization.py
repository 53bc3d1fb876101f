"""Norms of captured features used as penalties (torchdistill's ``RegularizationLoss``)."""
from __future__ import annotations

from torch import nn

from ..registry import register_loss
from .features import select_features


@register_loss(term="sub", aliases={"io": "io_type"})
class RegularizationLoss(nn.Module):
    """A norm penalty on one captured tensor ``z``; no paper of its own (torchdistill's generic term, e.g. an
    L1 activation-sparsity penalty):

    ``L = ||vec(z)||_p`` over the whole batch (``torch.Tensor.norm(p)``).

    ``module_path`` / ``io_type`` name the tensor, on the teacher when ``is_from_teacher``.  A sub term.
    """

    def __init__(self, module_path: str, io_type: str = "output", is_from_teacher: bool = False, p=1):
        super().__init__()
        self.module_path = module_path
        self.io_type = io_type
        self.is_from_teacher = bool(is_from_teacher)
        self.norm_p = p

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        side = "teacher" if self.is_from_teacher else "student"
        io_dict = teacher_io_dict if self.is_from_teacher else student_io_dict
        return select_features(io_dict, self.module_path, self.io_type, side, "RegularizationLoss").norm(p=self.norm_p)
