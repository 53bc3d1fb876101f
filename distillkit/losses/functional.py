"""Pieces several loss families share, written once: feature normalisation, attention maps,
pairwise distances and similarity matrices.  Pure functions on tensors, no registration."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def flatten_samples(x: torch.Tensor) -> torch.Tensor:
    """``(N, ...) -> (N, D)``: one row per sample."""
    return x.reshape(x.shape[0], -1)


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-12) -> torch.Tensor:
    """``x / max(||x||_2, eps)`` along ``dim`` (``F.normalize``)."""
    return F.normalize(x, p=2, dim=dim, eps=eps)
