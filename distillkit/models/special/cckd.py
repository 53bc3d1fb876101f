"""CCKD's embedding: a linear layer on teacher and student features of different widths.

Peng et al., "Correlation Congruence for Knowledge Distillation", ICCV 2019.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from .base import SpecialModule


def frozen_teacher_forward(special: SpecialModule, x):
    """The wrapped model's forward, without an autograd graph on the teacher (torchdistill's behaviour)."""
    if special.is_teacher:
        with torch.no_grad():
            return special.base_model(x)
    return special.base_model(x)


@register_special_module(aliases={"linear_params": "linear_kwargs"})
class Linear4CCKD(SpecialModule):
    """Params: ``input_module: {path, io}`` (e.g. ``model.avgpool``), ``linear_kwargs`` (``nn.Linear``'s:
    in_features, out_features, bias).  ``linear`` maps the flattened feature to the embedding CCKDLoss reads
    (hook ``linear``).  The model is ``model``, on either side; on the teacher it runs without gradients."""

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module: dict = None,
                 linear_kwargs: dict = None):
        super().__init__(model, is_teacher)
        if not isinstance(input_module, dict) or not {"path", "io"} <= set(input_module):
            raise ConfigError(f"Linear4CCKD needs input_module: {{path, io}}, found {input_module!r}.",
                              key_path="special.params.input_module")
        if not isinstance(linear_kwargs, dict):
            raise ConfigError("Linear4CCKD needs linear_kwargs: {in_features, out_features, bias}.",
                              key_path="special.params.linear_kwargs")
        self.input_module_path = input_module["path"]
        self.input_module_io = input_module["io"]
        self.linear = nn.Linear(**linear_kwargs)

    def forward(self, x):
        return frozen_teacher_forward(self, x)

    def required_io(self):
        return [(self.input_module_path, self.input_module_io)]

    def post_forward(self, io_dict: dict) -> None:
        self.linear(torch.flatten(io_dict[self.input_module_path][self.input_module_io], 1))
