"""CRD's embedding heads: a linear layer then a normalisation, on teacher and student.

Tian, Krishnan & Isola, "Contrastive Representation Distillation", ICLR 2020.
"""
from __future__ import annotations

import torch
from torch import nn

from ...errors import ConfigError
from ...losses.functional import power_normalize
from ...registry import register_special_module
from .base import SpecialModule
from .cckd import frozen_teacher_forward


class Normalizer4CRD(nn.Module):
    """``z = linear(x)``, then ``z / (sum_d z_d^power)^(1 / power)``."""

    def __init__(self, linear: nn.Module, power: int = 2):
        super().__init__()
        self.linear = linear
        self.power = power

    def forward(self, x):
        return power_normalize(self.linear(x), self.power)


@register_special_module(aliases={"linear_params": "linear_kwargs"})
class Linear4CRD(SpecialModule):
    """Params: ``input_module_path`` (its output is flattened, e.g. ``model.avgpool``), ``linear_kwargs``
    (``nn.Linear``'s), ``power=2``.  Hook ``normalizer`` for CRDLoss's embeddings.  The model is ``model``; on the
    teacher it runs without gradients.  ``empty`` is kept (an empty ``nn.Sequential``) so torchdistill's paths stay
    valid, but the dataset wrapper's indices reach CRDLoss through the criterion's ``supp_dict``, not a hook."""

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module_path: str = None,
                 linear_kwargs: dict = None, power: int = 2):
        super().__init__(model, is_teacher)
        if not input_module_path:
            raise ConfigError("Linear4CRD needs input_module_path (e.g. 'model.avgpool').",
                              key_path="special.params.input_module_path")
        if not isinstance(linear_kwargs, dict):
            raise ConfigError("Linear4CRD needs linear_kwargs: {in_features, out_features, bias}.",
                              key_path="special.params.linear_kwargs")
        self.empty = nn.Sequential()
        self.input_module_path = input_module_path
        self.normalizer = Normalizer4CRD(nn.Linear(**linear_kwargs), power=power)

    def forward(self, x, supp_dict=None):
        if supp_dict is not None:
            self.empty(supp_dict)  # as torchdistill: a hook on 'empty' sees the supp_dict
        return frozen_teacher_forward(self, x)

    def required_io(self):
        return [(self.input_module_path, "output")]

    def post_forward(self, io_dict: dict) -> None:
        self.normalizer(torch.flatten(io_dict[self.input_module_path]["output"], 1))
