"""Lin et al., "Knowledge Distillation via the Target-aware Transformer" (TaT), CVPR 2022."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..errors import ShapeMismatchError
from ..registry import register_loss
from .features import select_features


def check_qkvt(q, k, v, t, heads: int, where: str) -> None:
    """Shapes TaT's attention needs: q, k (b, c, h, w) alike, v with q's positions, t shaped like v."""
    shapes = {"query": q, "key": k, "value": v, "teacher": t}
    for name, tensor in shapes.items():
        if tensor.dim() != 4:
            raise ShapeMismatchError(f"{where}: the {name} must be a (batch, channels, height, width) map, "
                                     f"found shape {tuple(tensor.shape)}.")
    if q.shape != k.shape:
        raise ShapeMismatchError(f"{where}: student query {tuple(q.shape)} and teacher key {tuple(k.shape)} must "
                                 f"have the same shape; set the query Embed's out_channels to the teacher's channels.")
    if v.shape[0] != q.shape[0] or v.shape[2:] != q.shape[2:]:
        raise ShapeMismatchError(f"{where}: value {tuple(v.shape)} must share batch and spatial size with the "
                                 f"query {tuple(q.shape)}.")
    if t.shape != v.shape:
        raise ShapeMismatchError(f"{where}: the attention output has the value's shape {tuple(v.shape)} but the "
                                 f"teacher feature is {tuple(t.shape)}; set the value Embed's out_channels to "
                                 f"{t.shape[1]}.")
    for name, tensor in (("query/key", q), ("value", v)):
        if tensor.shape[1] % heads:
            raise ShapeMismatchError(f"{where}: {tensor.shape[1]} {name} channels do not divide into heads={heads}.")


def target_aware_attention(q, k, v, heads: int):
    """``out_i = sum_j softmax_j(<q_i, k_j>) v_j`` per head, channels split head-major ``(h d)``; no 1/sqrt(d)."""
    height, width = v.shape[2:]
    q, k, v = (rearrange(x, "b (h d) x y -> b h (x y) d", h=heads) for x in (q, k, v))
    weights = torch.einsum("bhid,bhjd->bhij", q, k).softmax(dim=-1)
    out = torch.einsum("bhij,bhjd->bhid", weights, v)
    return rearrange(out, "b h (x y) d -> b (h d) x y", x=height, y=width)


def iter_pairs(feature_pairs: dict, student_io, teacher_io, heads: int, loss_name: str):
    """Yield ``(factor, q, k, v, t)`` per feature pair, shapes checked."""
    for name, pair in feature_pairs.items():
        where = (f"{loss_name} pair {name!r} (student paths {pair['student']['path']}, "
                 f"teacher paths {pair['teacher']['path']})")
        (q, v), (t, k) = read_pair(student_io, teacher_io, pair, where)
        check_qkvt(q, k, v, t, heads, where)
        yield float(pair.get("factor", 1)), q, k, v, t


def read_pair(student_io, teacher_io, pair: dict, where: str):
    """``(q, v), (t, k)`` from a feature pair: student paths [feature, query, value], teacher [feature, key]."""
    student = select_features(student_io, pair["student"]["path"], pair["student"].get("io", "output"),
                              "student", where)
    teacher = select_features(teacher_io, pair["teacher"]["path"], pair["teacher"].get("io", "output"),
                              "teacher", where)
    if not (isinstance(student, list) and len(student) == 3 and isinstance(teacher, list) and len(teacher) == 2):
        raise ShapeMismatchError(f"{where}: student path must list [feature, query, value] and teacher path "
                                 f"[feature, key], as in TaT's config.")
    return (student[1], student[2]), (teacher[0], teacher[1])


@register_loss(term="sub")
class MaskedFM(nn.Module):
    """TaT feature matching (Lin et al., CVPR 2022), as the released code computes it.

    For each pair, with student query ``q`` and value ``v`` and teacher key ``k``
    (usually the teacher feature itself) and teacher feature ``f^t``, per head:

    ``f^s'_i = sum_j softmax_j(<q_i, k_j>) v_j``  (no 1/sqrt(d)),
    ``L = sum_pairs factor * MSE_mean(f^s', f^t)``.

    ``heads`` splits the channels head-major (``(h d)``).  A sub term.
    """

    def __init__(self, feature_pairs: dict, heads: int = 1):
        super().__init__()
        self.feature_pairs = feature_pairs
        self.heads = int(heads)

    def forward(self, student_io, teacher_io, targets=None):
        total = 0.0
        for factor, q, k, v, t in iter_pairs(self.feature_pairs, student_io, teacher_io, self.heads, "MaskedFM"):
            total = total + factor * F.mse_loss(target_aware_attention(q, k, v, self.heads), t)
        return total
