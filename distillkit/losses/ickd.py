"""Liu et al., "Exploring Inter-Channel Correlation for Diversity-Preserved Knowledge Distillation" (ICKD),
ICCV 2021."""
from __future__ import annotations

from torch import nn

from ..registry import register_loss
from .functional import check_feature_pairs, iter_feature_pairs, normalized_gram
from .tat import ShapeMismatchError


def channel_correlation_distance(student, teacher):
    """``sum_{n,i,j} (G^s_nij - G^t_nij)^2 / (c b^2)`` with ``G_n`` the row-normalised channel Gram matrix of
    sample n, ``(b, c, h, w)``; the spatial sizes of student and teacher may differ."""
    batch, channels = student.shape[0], student.shape[1]
    difference = normalized_gram(student.reshape(batch, channels, -1)) \
        - normalized_gram(teacher.reshape(batch, channels, -1))
    return difference.pow(2).sum() / (channels * batch * batch)


@register_loss(term="sub")
class ChSimLoss(nn.Module):
    """Inter-channel correlation (ICKD).

    Liu, Huang, Lin, Xie, Wang, Chang & Liang, "Exploring Inter-Channel Correlation for Diversity-Preserved
    Knowledge Distillation", ICCV 2021.  For a feature map ``F`` (student: through ``ChannelSimilarityEmbed``)
    flattened to ``(c, hw)`` per sample, the inter-channel correlation ``G = F F^T`` with each row
    L2-normalised; per pair,

    ``L = w * sum_n ||G^s_n - G^t_n||_F^2 / (c b^2)``

    (the normalisation of the authors' code, which torchdistill keeps), summed over ``feature_pairs``:
    ``{name: {student: {io, path}, teacher: {io, path}, weight}}`` (``weight`` may be spelled ``factor``).
    """

    def __init__(self, feature_pairs):
        super().__init__()
        check_feature_pairs(feature_pairs, "ChSimLoss", "feature_pairs", ("student", "teacher"))
        self.feature_pairs = feature_pairs

    def forward(self, student_io_dict, teacher_io_dict, targets=None):
        loss = 0
        for where, weight, (student, teacher) in iter_feature_pairs(self.feature_pairs, student_io_dict,
                                                                     teacher_io_dict, "ChSimLoss"):
            if student.dim() < 3 or student.shape[:2] != teacher.shape[:2]:
                raise ShapeMismatchError(f"{where}: student features {tuple(student.shape)} and teacher features "
                                         f"{tuple(teacher.shape)} must be (batch, channels, ...) maps with the same "
                                         f"batch and channels; set the ChannelSimilarityEmbed's out_channels to "
                                         f"{teacher.shape[1] if teacher.dim() > 1 else '?'}.")
            loss = loss + weight * channel_correlation_distance(student, teacher)
        return loss
