"""The base of special modules: trainable layers that sit beside a model.

A special module wraps its model as ``self.model`` (so hook paths read
``model.layer4``), runs it in ``forward``, and in ``post_forward(io_dict)`` runs
its own layers on the features the hooks captured.  Hooks on its own layers
(``embed_dict.query``) put their outputs in the same io_dict.
"""
from __future__ import annotations

from torch import nn


class SpecialModule(nn.Module):
    """Built as ``cls(model=model, is_teacher=bool, **params)``."""

    def __init__(self, model: nn.Module, is_teacher: bool = False):
        super().__init__()
        self.model = model
        self.is_teacher = is_teacher

    def forward(self, x):
        return self.model(x)

    def required_io(self):
        """``[(path, 'input' | 'output'), ...]`` that ``post_forward`` reads; ModelSide hooks them."""
        return []

    def post_forward(self, io_dict: dict) -> None:
        """Run the extra layers on captured features; default: nothing."""
