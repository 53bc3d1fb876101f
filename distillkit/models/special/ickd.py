"""ICKD's student side: an embedding that maps the student's channels onto the teacher's.

Liu et al., "Exploring Inter-Channel Correlation for Diversity-Preserved Knowledge Distillation", ICCV 2021.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import FeatureLayers


class ChannelSimilarityEmbed(nn.Module):
    """``conv2d``: 3x3 conv (stride 1, padding 1, no bias), then ``l2norm``: a BatchNorm2d (torchdistill's name)."""

    def __init__(self, in_channels=512, out_channels=128):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.l2norm = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        return self.l2norm(self.conv2d(x))


@register_special_module
class Student4ICKD(FeatureLayers):
    """Params: ``embeddings``: ``{name: {io, path, in_channels, out_channels}}``; each ChannelSimilarityEmbed reads
    ``io_dict[path][io]`` and its output lands at ``embed_dict.<name>`` when hooked.  The model is
    ``student_model``."""

    layers_attr = "embed_dict"

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, embeddings: dict = None):
        super().__init__(model, is_teacher)
        if not isinstance(embeddings, dict) or not embeddings:
            raise ConfigError("Student4ICKD needs embeddings: {name: {io, path, in_channels, out_channels}}.",
                              key_path="special.params.embeddings")
        for name, spec in embeddings.items():
            key_path = f"special.params.embeddings.{name}"
            if not isinstance(spec, dict) or not {"io", "path"} <= set(spec):
                raise ConfigError(f"embedding {name!r} needs io and path (the student layer it reads).",
                                  key_path=key_path)
            params = {k: v for k, v in spec.items() if k not in ("io", "path")}
            unknown = sorted(set(params) - {"in_channels", "out_channels"})
            if unknown:
                raise ConfigError(f"embedding {name!r}: unknown params {', '.join(unknown)}; "
                                  f"ChannelSimilarityEmbed takes in_channels and out_channels.", key_path=key_path)
            self.add_feature_layer(name, ChannelSimilarityEmbed(**params), spec["io"], spec["path"])
