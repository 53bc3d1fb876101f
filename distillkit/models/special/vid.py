"""VID's student side: regressors that predict a Gaussian of the teacher's features.

Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge Transfer", CVPR 2019.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import FeatureLayers

REGRESSOR_PARAMS = ("in_channels", "middle_channels", "out_channels", "eps", "init_pred_var")


class Regressor4VID(nn.Module):
    """``mu(s)`` = three 1x1 convs (no bias) with ReLUs between; ``sigma_c^2 = softplus(alpha_c) + eps``, with
    ``alpha`` initialised so that ``sigma^2 = init_pred_var``.  ``forward(s) -> (mu, sigma^2 (1, C, 1, 1))``."""

    def __init__(self, in_channels, middle_channels, out_channels, eps, init_pred_var):
        super().__init__()
        self.regressor = nn.Sequential(
            nn.Conv2d(in_channels, middle_channels, kernel_size=1, stride=1, padding=0, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle_channels, middle_channels, kernel_size=1, stride=1, padding=0, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(middle_channels, out_channels, kernel_size=1, stride=1, padding=0, bias=False),
        )
        if init_pred_var <= eps:
            raise ConfigError(f"Regressor4VID: init_pred_var ({init_pred_var}) must exceed eps ({eps}).")
        inverse_softplus = math.log(math.expm1(init_pred_var - eps))
        self.soft_plus_param = nn.Parameter(torch.full((out_channels,), inverse_softplus))
        self.eps = eps
        self.init_pred_var = init_pred_var

    def forward(self, student_feature_map):
        pred_mean = self.regressor(student_feature_map)
        pred_var = F.softplus(self.soft_plus_param) + self.eps
        return pred_mean, pred_var.view(1, -1, 1, 1)


def regressor_params(name: str, spec: dict) -> dict:
    """The Regressor4VID params of one ``regressors`` entry: under ``kwargs`` (torchdistill 1.1.5's code),
    ``regressor_kwargs`` (its sample config) or beside ``io`` and ``path`` (0.x)."""
    key_path = f"special.params.regressors.{name}"
    if not isinstance(spec, dict) or not {"io", "path"} <= set(spec):
        raise ConfigError(f"regressor {name!r} needs io and path (the student layer it reads) and its params "
                          f"{', '.join(REGRESSOR_PARAMS)}.", key_path=key_path)
    rest = {k: v for k, v in spec.items() if k not in ("io", "path")}
    nested = [k for k in ("kwargs", "regressor_kwargs") if k in rest]
    if len(nested) > 1 or (nested and len(rest) > 1):
        raise ConfigError(f"regressor {name!r}: give its params either under one of kwargs / regressor_kwargs, or "
                          f"beside io and path, not both; found {', '.join(sorted(rest))}.", key_path=key_path)
    params = dict(rest[nested[0]] or {}) if nested else rest
    unknown = sorted(set(params) - set(REGRESSOR_PARAMS))
    missing = [k for k in REGRESSOR_PARAMS if k not in params]
    if unknown or missing:
        raise ConfigError(f"regressor {name!r}: " + "; ".join(
            ([f"unknown params {', '.join(unknown)}"] if unknown else [])
            + ([f"missing {', '.join(missing)}"] if missing else []))
            + f". Regressor4VID takes {', '.join(REGRESSOR_PARAMS)}.", key_path=key_path)
    return params


@register_special_module
class VariationalDistributor4VID(FeatureLayers):
    """Params: ``regressors``: ``{name: {io, path, kwargs: {in_channels, middle_channels, out_channels, eps,
    init_pred_var}}}``; each ``Regressor4VID`` reads ``io_dict[path][io]`` and its ``(mean, variance)`` lands in
    the io_dict at ``regressor_dict.<name>`` when hooked.  The student model is ``student_model``."""

    layers_attr = "regressor_dict"

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, regressors: dict = None):
        super().__init__(model, is_teacher)
        if not isinstance(regressors, dict) or not regressors:
            raise ConfigError("VariationalDistributor4VID needs regressors: {name: {io, path, kwargs: "
                              "{in_channels, middle_channels, out_channels, eps, init_pred_var}}}.",
                              key_path="special.params.regressors")
        for name, spec in regressors.items():
            self.add_feature_layer(name, Regressor4VID(**regressor_params(name, spec)), spec["io"], spec["path"])
