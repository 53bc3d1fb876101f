"""TaT for large feature maps (Lin et al., CVPR 2022, Sec. 3.3: segmentation)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..registry import register_loss
from .tat import ShapeMismatchError, iter_pairs, target_aware_attention


def _per_sample_mse(a, b):
    return (a - b).pow(2).flatten(1).mean(1)


def patch_group_loss(q, k, v, t, grid: Sequence[int], group_size: int, where: str = "patch-group"):
    """Per-sample patch-group TaT loss, shape (batch,).

    The maps are cut into an ``n x m`` grid of patches (raster order); each run of
    ``group_size`` patches is concatenated along channels into one head, and
    attention runs over the positions of a patch within that head.  ``H % n`` and
    ``W % m`` must be 0, and ``n * m % group_size`` too (else ShapeMismatchError).
    """
    n, m = int(grid[0]), int(grid[1])
    height, width = q.shape[2:]
    if height % n or width % m:
        raise ShapeMismatchError(f"{where}: a {height}x{width} map does not split into a {n}x{m} patch grid; "
                                 f"choose patch_grid dividing the map (or resize the features).")
    if (n * m) % group_size:
        raise ShapeMismatchError(f"{where}: {n * m} patches do not split into groups of {group_size}.")

    def grouped(x):  # (b, c, n*ph, m*pw) -> (b, groups, g*c, ph, pw)
        x = rearrange(x, "b c (n ph) (m pw) -> b (n m) c ph pw", n=n, m=m)
        return rearrange(x, "b (G g) c ph pw -> b G (g c) ph pw", g=group_size)

    q, k, v, t = (grouped(x) for x in (q, k, v, t))
    batch, groups = q.shape[:2]
    flat = [rearrange(x, "b G c ph pw -> (b G) c ph pw") for x in (q, k, v, t)]
    out = target_aware_attention(flat[0], flat[1], flat[2], heads=1)
    return _per_sample_mse(out.reshape(batch, -1), flat[3].reshape(batch, -1))


def anchor_point_loss(q, k, v, t, anchor_grid: Sequence[int], heads: int = 1):
    """Per-sample anchor-point TaT loss, shape (batch,): q, k, v and t are average-pooled to the anchor grid
    (``adaptive_avg_pool2d``: bins of unequal size where the map does not divide evenly), then attend globally."""
    pooled = [F.adaptive_avg_pool2d(x, tuple(int(a) for a in anchor_grid)) for x in (q, k, v, t)]
    out = target_aware_attention(pooled[0], pooled[1], pooled[2], heads)
    return _per_sample_mse(out, pooled[3])


@register_loss(term="sub")
class TaTSegmentationLoss(nn.Module):
    """TaT for large maps (Lin et al., CVPR 2022): patch-group and anchor-point distillation.

    ``L = alpha * mean_b(beta * L_pg(b) + gamma * L_anchor(b))`` summed over ``feature_pairs``
    (each times its ``factor``), with per-sample MSE means.  ``L_pg`` attends within groups of
    ``group_size`` patches of a ``patch_grid`` (see :func:`patch_group_loss`); ``L_anchor`` attends
    globally over maps pooled to ``anchor_grid`` with ``heads`` heads.  A sub term; pairs are read
    as in MaskedFM (student [feature, query, value], teacher [feature, key]).
    """

    def __init__(self, feature_pairs: dict, patch_grid=(4, 4), group_size: int = 4, anchor_grid=(4, 4),
                 heads: int = 1, alpha: float = 1.0, beta: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.feature_pairs = feature_pairs
        self.patch_grid, self.group_size, self.anchor_grid = tuple(patch_grid), int(group_size), tuple(anchor_grid)
        self.heads, self.alpha, self.beta, self.gamma = int(heads), float(alpha), float(beta), float(gamma)

    def forward(self, student_io, teacher_io, targets=None):
        total = 0.0
        where = "TaTSegmentationLoss"
        for factor, q, k, v, t in iter_pairs(self.feature_pairs, student_io, teacher_io, self.heads, where):
            per_sample = torch.zeros(q.shape[0], device=q.device, dtype=torch.float32)
            if self.beta:
                per_sample = per_sample + self.beta * patch_group_loss(q, k, v, t, self.patch_grid,
                                                                       self.group_size, where)
            if self.gamma:
                per_sample = per_sample + self.gamma * anchor_point_loss(q, k, v, t, self.anchor_grid, self.heads)
            total = total + factor * self.alpha * per_sample.mean()
        return total
