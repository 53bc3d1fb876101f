"""KTAAD's student side: a feature adapter and an affinity adapter on one student feature map.

He, Shen, Tian, Gong, Sun & Yan, "Knowledge Adaptation for Efficient Semantic Segmentation", CVPR 2019.
"""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import SpecialModule


def _adapter_kwargs(config, name: str, required, optional=()):
    key_path = f"special.params.{name}"
    if not isinstance(config, dict):
        raise ConfigError(f"{name} must be a dict with {', '.join(required)}, found {config!r}.", key_path=key_path)
    missing = [k for k in required if k not in config]
    unknown = sorted(set(config) - set(required) - set(optional))
    if missing or unknown:
        raise ConfigError(f"{name} takes {', '.join(list(required) + list(optional))}; "
                          + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                      + ([f"unknown {', '.join(unknown)}"] if unknown else [])) + ".",
                          key_path=key_path)
    return {k: dict(config.get(k) or {}) for k in list(required) + list(optional)}


@register_special_module(aliases={
    "feature_adapter_params.conv": "conv_kwargs", "feature_adapter_params.bn": "bn_kwargs",
    "feature_adapter_params.relu": "relu_kwargs", "feature_adapter_params": "feature_adapter_config",
    "affinity_adapter_params.conv": "conv_kwargs", "affinity_adapter_params": "affinity_adapter_config"})
class Student4KTAAD(SpecialModule):
    """Params: ``input_module_path`` (the student feature map both adapters read, its output),
    ``feature_adapter_config: {conv_kwargs, bn_kwargs, relu_kwargs}`` -> ``feature_adapter`` = Conv2d, BatchNorm2d,
    ReLU; ``affinity_adapter_config: {conv_kwargs}`` -> ``affinity_adapter`` = Conv2d.  Hook ``feature_adapter`` and
    ``affinity_adapter`` for KTALoss and AffinityLoss.  The model is ``student_model``."""

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module_path: str = None,
                 feature_adapter_config: dict = None, affinity_adapter_config: dict = None):
        super().__init__(model, is_teacher)
        if not input_module_path:
            raise ConfigError("Student4KTAAD needs input_module_path (e.g. 'student_model.backbone').",
                              key_path="special.params.input_module_path")
        self.input_module_path = input_module_path
        feature = _adapter_kwargs(feature_adapter_config, "feature_adapter_config", ("conv_kwargs", "bn_kwargs"),
                                  ("relu_kwargs",))
        affinity = _adapter_kwargs(affinity_adapter_config, "affinity_adapter_config", ("conv_kwargs",))
        self.feature_adapter = nn.Sequential(nn.Conv2d(**feature["conv_kwargs"]),
                                             nn.BatchNorm2d(**feature["bn_kwargs"]), nn.ReLU(**feature["relu_kwargs"]))
        self.affinity_adapter = nn.Sequential(nn.Conv2d(**affinity["conv_kwargs"]))

    def required_io(self):
        return [(self.input_module_path, "output")]

    def post_forward(self, io_dict: dict) -> None:
        feature_map = io_dict[self.input_module_path]["output"]
        self.feature_adapter(feature_map)
        self.affinity_adapter(feature_map)
