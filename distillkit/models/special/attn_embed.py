"""TaT's AttnEmbed: the query/key/value embeddings of Target-aware Transformer distillation.

Lin et al., "Knowledge Distillation via the Target-aware Transformer", CVPR 2022.
As in the released code: on the teacher every embedding is the identity (the key
is the teacher feature itself); on the student ``query`` and ``value`` are each
``Embed`` = 3x3 conv (stride 1, padding 1, no bias) + BatchNorm, no activation.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import FeatureLayers


class Embed(nn.Sequential):
    """``Conv2d(in, out, k, stride 1, padding k // 2, bias=False)`` then ``BatchNorm2d(out)``; k is 3 or 1."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3):
        if kernel_size not in (1, 3):
            raise ConfigError(f"Embed kernel_size must be 3 (TaT) or 1, found {kernel_size!r}.")
        super().__init__(nn.Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=kernel_size // 2,
                                   bias=False), nn.BatchNorm2d(out_channels))


@register_special_module
class AttnEmbed(FeatureLayers):
    """Params: ``embedings`` (the seed's spelling) or ``embeddings``: ``{name: {io, path, in_channels,
    out_channels, kernel_size=3, learnable=False}}``.  Student names must contain ``query`` or ``value``;
    ``learnable: true`` on the teacher makes that embedding an Embed instead of the identity (the learnable
    key of TaT's segmentation variant, usually with ``kernel_size: 1``).  Outputs land in the io_dict at
    ``embed_dict.<name>`` when hooked."""

    layers_attr = "embed_dict"

    def __init__(self, model: nn.Module, is_teacher: bool = False, embedings: dict = None,
                 embeddings: dict = None):
        super().__init__(model, is_teacher)
        specs = embeddings if embeddings is not None else embedings
        if not specs:
            raise ConfigError("AttnEmbed needs 'embedings' (or 'embeddings'): {name: {io, path, in_channels, "
                              "out_channels}}.", key_path="special.params.embedings")
        for name, spec in specs.items():
            missing = [k for k in ("io", "path", "in_channels", "out_channels") if k not in (spec or {})]
            if missing:
                raise ConfigError(f"AttnEmbed embedding {name!r} lacks {', '.join(missing)}.",
                                  key_path=f"special.params.embedings.{name}")
            self.add_feature_layer(name, self._embedding(name, spec), spec["io"], spec["path"])

    def _embedding(self, name: str, spec: dict) -> nn.Module:
        kernel = int(spec.get("kernel_size", 3))
        if self.is_teacher:
            return Embed(spec["in_channels"], spec["out_channels"], kernel) if spec.get("learnable") else nn.Identity()
        if "query" in name or "value" in name:
            return Embed(spec["in_channels"], spec["out_channels"], kernel)
        raise ConfigError(f"student embedding {name!r}: TaT's student side has 'query' and 'value' embeddings "
                          f"(names containing query or value).", key_path=f"special.params.embedings.{name}")
