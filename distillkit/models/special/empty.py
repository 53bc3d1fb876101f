"""EmptyModule: a side that skips its model and passes the input through (torchdistill's ``EmptyModule``).

Useful in multi-stage training when one stage needs no teacher or student forward pass (e.g. the
paraphraser-training stage of factor transfer, where only the teacher runs).
"""
from __future__ import annotations

from torch import nn

from ...registry import register_special_module
from .base import SpecialModule


@register_special_module
class EmptyModule(SpecialModule):
    """No params.  ``forward(x)`` returns ``x`` (several positional inputs: the tuple) without running the
    model, which stays wrapped (as ``model``) only so that this side's checkpoint still holds its weights."""

    def __init__(self, model: nn.Module, is_teacher: bool = False):
        super().__init__(model, is_teacher)

    def forward(self, *args):
        return args[0] if len(args) == 1 else args
