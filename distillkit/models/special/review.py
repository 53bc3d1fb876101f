"""Knowledge review's student side: attention-based fusion (ABF) of its features, deepest first.

Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021 (Sec. 3.2, Fig. 3).
``Student4KnowledgeReview`` runs one ``AttentionBasedFusion`` per student feature, from the deepest
(``abf_modules.0``, no attention) to the shallowest, each fusing its feature with the residual of
the deeper one; ``HierarchicalContextLoss`` compares each fused output with a teacher feature.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import SpecialModule


class AttentionBasedFusion(nn.Module):
    """``x' = BN(Conv1x1(x))``; with attention, ``(a, b) = sigmoid(Conv1x1([x', up(y)]))`` and
    ``x' = a x' + b up(y)`` (``y``, the deeper residual, upsampled to ``size x size`` by nearest
    neighbour); returns ``(BN(Conv3x3(x')), x')``: the output and the residual for the next ABF."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, uses_attention: bool):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False),
                                   nn.BatchNorm2d(mid_channels))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channels, out_channels, kernel_size=3, stride=1, padding=1,
                                             bias=False), nn.BatchNorm2d(out_channels))
        self.attention_conv = nn.Sequential(nn.Conv2d(mid_channels * 2, 2, kernel_size=1), nn.Sigmoid()) \
            if uses_attention else None
        nn.init.kaiming_uniform_(self.conv1[0].weight, a=1)
        nn.init.kaiming_uniform_(self.conv2[0].weight, a=1)

    def forward(self, x, y=None, size=None):
        x = self.conv1(x)
        if self.attention_conv is not None:
            n, _, height, width = x.shape
            y = F.interpolate(y, (size, size), mode="nearest")
            z = self.attention_conv(torch.cat([x, y], dim=1))
            x = x * z[:, 0].view(n, 1, height, width) + y * z[:, 1].view(n, 1, height, width)
        return self.conv2(x), x


@register_special_module(aliases={"abfs.*.params.in_channel": "in_channels",
                                  "abfs.*.params.mid_channel": "mid_channels",
                                  "abfs.*.params.out_channel": "out_channels", "abfs.*.params": "kwargs"})
class Student4KnowledgeReview(SpecialModule):
    """Params: ``abfs``: a list, shallowest feature first, of ``{path, io, kwargs: {in_channels,
    mid_channels, out_channels}}``; ``sizes``: the fused map size per ABF, deepest first (default
    ``[1, 7, 14, 28, 56]``, ResNet on 224x224).  ``abf_modules.<i>`` (i = 0 deepest) output
    ``(output, residual)``; hook them for ``HierarchicalContextLoss``."""

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, abfs: list = None, sizes: list = None):
        super().__init__(model, is_teacher)
        if not isinstance(abfs, (list, tuple)) or not abfs:
            raise ConfigError("Student4KnowledgeReview needs abfs: a list (shallowest first) of {path, io, kwargs: "
                              f"{{in_channels, mid_channels, out_channels}}}}, found {abfs!r}.", key_path="params.abfs")
        self.sizes = [1, 7, 14, 28, 56] if sizes is None else list(sizes)
        modules, pairs = [], []
        for index, spec in enumerate(abfs):
            missing = [k for k in ("path", "io", "kwargs") if not isinstance(spec, dict) or k not in spec]
            if missing:
                raise ConfigError(f"Student4KnowledgeReview abfs[{index}] lacks {', '.join(missing)}.",
                                  key_path=f"params.abfs.{index}")
            try:
                modules.append(AttentionBasedFusion(uses_attention=index < len(abfs) - 1, **spec["kwargs"]))
            except TypeError as exc:
                raise ConfigError(f"Student4KnowledgeReview abfs[{index}].kwargs: {exc}; AttentionBasedFusion "
                                  f"takes in_channels, mid_channels and out_channels.",
                                  key_path=f"params.abfs.{index}.kwargs") from exc
            pairs.append((spec["io"], spec["path"]))
        self.abf_modules = nn.ModuleList(modules[::-1])
        self.io_path_pairs = pairs[::-1]

    def required_io(self):
        return [(path, io) for io, path in self.io_path_pairs]

    def post_forward(self, io_dict: dict) -> None:
        features = [io_dict[path][io] for io, path in self.io_path_pairs]
        _, residual = self.abf_modules[0](features[0])
        if len(self.sizes) > 1:
            for feature, abf, size in zip(features[1:], self.abf_modules[1:], self.sizes[1:]):
                _, residual = abf(feature, residual, size)
