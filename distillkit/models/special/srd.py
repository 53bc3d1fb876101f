"""SRD's model wrapper: pooled features through an optional linear projector and an affine-free BatchNorm.

Miles & Mikolajczyk, "Understanding the Role of the Projector in Knowledge Distillation", AAAI 2024.
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import SpecialModule


def io_spec(spec, owner: str, key: str = "input_module"):
    """``(path, io)`` from a ``{path, io}`` block."""
    if not isinstance(spec, dict) or "path" not in spec:
        raise ConfigError(f"{owner} needs {key}: {{path: MODULE_PATH, io: 'output' | 'input'}}, found {spec!r}.",
                          key_path=f"special.params.{key}")
    return spec["path"], spec.get("io", "output")


def layer_from_kwargs(cls, kwargs: dict, owner: str, key: str) -> nn.Module:
    """``cls(**kwargs)`` with a wrong keyword reported as a config error naming ``key``."""
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{owner}: {key} must be a mapping of {cls.__name__} arguments, found {kwargs!r}.",
                          key_path=f"special.params.{key}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{owner}: {key} does not fit {cls.__name__}: {exc}.",
                          key_path=f"special.params.{key}") from exc


@register_special_module
class SRDModelWrapper(SpecialModule):
    """Params (torchdistill 1.1.5's): ``input_module: {path, io}`` (e.g. ``model.layer4`` output),
    ``norm_kwargs`` (``nn.BatchNorm1d`` arguments, e.g. ``{num_features: 512, eps: 1e-4, affine: False}``)
    and ``linear_kwargs`` (``nn.Linear`` arguments; the student's projector, None on the teacher).

    After the forward, the captured feature is averaged over its last two dims, projected by ``linear``
    when present and normalised by ``norm_layer``; hook ``norm_layer`` to give SRDLoss its output."""

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module: dict = None,
                 norm_kwargs: dict = None, linear_kwargs: Optional[dict] = None):
        super().__init__(model, is_teacher)
        self.input_module_path, self.input_module_io = io_spec(input_module, "SRDModelWrapper")
        self.linear = None if linear_kwargs is None else \
            layer_from_kwargs(nn.Linear, linear_kwargs, "SRDModelWrapper", "linear_kwargs")
        self.norm_layer = layer_from_kwargs(nn.BatchNorm1d, norm_kwargs, "SRDModelWrapper", "norm_kwargs")

    def required_io(self):
        return [(self.input_module_path, self.input_module_io)]

    def post_forward(self, io_dict: dict) -> None:
        z = io_dict[self.input_module_path][self.input_module_io].mean(-1).mean(-1)
        if self.linear is not None:
            z = self.linear(z)
        self.norm_layer(z)
