"""Distillation of activation boundaries: Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of
Activation Boundaries Formed by Hidden Neurons", AAAI 2019.  Its connectors are the special module
``Connector4DAB`` (``distillkit.models.special.dab``)."""
from __future__ import annotations

import torch
from torch import nn

from ..registry import register_loss
from .functional import check_feature_pairs, check_reduction, iter_feature_pairs
from .tat import ShapeMismatchError


def alternative_activation_loss(source: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """``sum ( (s + m)^2 [s > -m][t <= 0] + (s - m)^2 [s <= m][t > 0] )``: the hinge form of Eq. 5."""
    below = (source + margin).pow(2) * ((source > -margin) & (target <= 0)).to(source.dtype)
    above = (source - margin).pow(2) * ((source <= margin) & (target > 0)).to(source.dtype)
    return (below + above).abs().sum()


@register_loss(term="sub")
class AltActTransferLoss(nn.Module):
    """Activation-boundary transfer (Heo et al., AAAI 2019), the alternative loss of Eq. 5.

    For the student's connector output ``r(s)`` and the teacher's pre-activation map ``t`` of each pair,
    with margin ``mu`` and indicator ``rho(t) = [t > 0]``:

    ``L = sum_pairs w * || rho(t) . (mu - r(s))_+^2 + (1 - rho(t)) . (mu + r(s))_+^2 ||_1``,

    divided by the batch size when ``reduction='mean'`` (summed otherwise).
    ``feature_pairs``: ``{name: {student: {io, path}, teacher: {io, path}, weight}}``.  A sub term.
    """

    def __init__(self, feature_pairs: dict, margin: float, reduction: str):
        super().__init__()
        self.feature_pairs = check_feature_pairs(feature_pairs, "AltActTransferLoss", "feature_pairs",
                                                 ("student", "teacher"))
        self.margin = margin
        self.reduction = check_reduction(reduction, "AltActTransferLoss")

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        total, batch_size = 0.0, None
        for where, weight, (student, teacher) in iter_feature_pairs(self.feature_pairs, student_io_dict,
                                                                     teacher_io_dict, "AltActTransferLoss"):
            if student.shape != teacher.shape:
                raise ShapeMismatchError(
                    f"{where}: the student's feature is {tuple(student.shape)} but the teacher's is "
                    f"{tuple(teacher.shape)}; give the student a "
                    f"Connector4DAB connector whose conv2d_kwargs.out_channels is {teacher.shape[1]} and read "
                    f"its output (connector_dict.<name>).")
            total = total + weight * alternative_activation_loss(student, teacher, self.margin)
            if batch_size is None:
                batch_size = student.shape[0]
        return total / batch_size if self.reduction == "mean" else total
