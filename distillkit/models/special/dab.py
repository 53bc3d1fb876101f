"""Connector4DAB: the student's connectors of activation-boundary distillation.

Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed by Hidden
Neurons", AAAI 2019.  Each connector is ``Conv2d(**conv2d_kwargs)`` then, when ``bn2d_kwargs`` is given and
not empty, ``BatchNorm2d(**bn2d_kwargs)``; it maps a student feature onto the teacher's channels.  As a
FitNets regressor (Romero et al., ICLR 2015) the same module serves hint training.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import FeatureLayers


def build_connector(conv2d_kwargs: dict, bn2d_kwargs: dict = None, where: str = "connector",
                    key_path: str = None) -> nn.Sequential:
    """``Sequential(Conv2d(**conv2d_kwargs)[, BatchNorm2d(**bn2d_kwargs)])``."""
    try:
        layers = [nn.Conv2d(**conv2d_kwargs)]
        if bn2d_kwargs:
            layers.append(nn.BatchNorm2d(**bn2d_kwargs))
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}; conv2d_kwargs are torch.nn.Conv2d's parameters (in_channels, "
                          f"out_channels, kernel_size, stride, padding, bias, ...) and bn2d_kwargs BatchNorm2d's "
                          f"(num_features, ...).", key_path=key_path) from exc
    return nn.Sequential(*layers)


@register_special_module(aliases={"connectors.*.conv_params": "conv2d_kwargs", "connectors.*.bn_params": "bn2d_kwargs"})
class Connector4DAB(FeatureLayers):
    """Params: ``connectors: {name: {io, path, conv2d_kwargs, bn2d_kwargs (optional)}}``; ``path`` is a hook
    path on this module (``student_model.layer1``).  Connector outputs reach the io_dict when
    ``connector_dict.<name>`` is hooked."""

    layers_attr = "connector_dict"

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, connectors: dict = None):
        super().__init__(model, is_teacher)
        if not isinstance(connectors, dict) or not connectors:
            raise ConfigError("Connector4DAB needs connectors: {name: {io, path, conv2d_kwargs, bn2d_kwargs}}, "
                              f"found {connectors!r}.", key_path="params.connectors")
        for name, spec in connectors.items():
            missing = [k for k in ("io", "path", "conv2d_kwargs") if k not in (spec or {})]
            if missing:
                raise ConfigError(f"Connector4DAB connector {name!r} lacks {', '.join(missing)}.",
                                  key_path=f"params.connectors.{name}")
            connector = build_connector(spec["conv2d_kwargs"], spec.get("bn2d_kwargs"),
                                        f"Connector4DAB connector {name!r}", f"params.connectors.{name}")
            self.add_feature_layer(name, connector, spec["io"], spec["path"])
