"""The base of special modules: trainable layers that sit beside a model.

A special module wraps its model (as ``self.model``, or under the attribute named by
``model_attr``, e.g. torchdistill's ``student_model``, so a config's hook paths read
``model.layer4`` / ``student_model.layer4`` exactly as they do in torchdistill), runs it
in ``forward``, and in ``post_forward(io_dict)`` runs its own layers on the features the
hooks captured.  Hooks on its own layers (``embed_dict.query``) put their outputs in the
same io_dict.
"""
from __future__ import annotations

from torch import nn


class SpecialModule(nn.Module):
    """Built as ``cls(model, is_teacher, **params)``; the wrapped model lives at ``self.<model_attr>``."""

    model_attr = "model"

    def __init__(self, model: nn.Module, is_teacher: bool = False):
        super().__init__()
        setattr(self, self.model_attr, model)
        self.is_teacher = is_teacher

    @property
    def base_model(self) -> nn.Module:
        """The wrapped model itself: what a checkpoint of this side's model holds."""
        return getattr(self, self.model_attr)

    def forward(self, x, *targets):
        """The model on ``x`` (and the batch's targets, under ``forward_proc: forward_batch_target``)."""
        return self.base_model(x, *targets)

    def required_io(self):
        """``[(path, 'input' | 'output'), ...]`` that ``post_forward`` reads; ModelSide hooks them."""
        return []

    def post_forward(self, io_dict: dict) -> None:
        """Run the extra layers on captured features; default: nothing."""


class FeatureLayers(SpecialModule):
    """A special module whose named layers each run on one hooked feature of the model (TaT's embeddings, DAB's
    connectors, VID's regressors, ICKD's embeddings): after the forward, ``self.<layers_attr>[name]`` runs on
    ``io_dict[path][io]``; hooking ``<layers_attr>.<name>`` puts its output in the io_dict."""

    layers_attr = "layer_dict"

    def __init__(self, model: nn.Module, is_teacher: bool = False):
        super().__init__(model, is_teacher)
        setattr(self, self.layers_attr, nn.ModuleDict())
        self.io_path_pairs = []

    def add_feature_layer(self, name: str, layer: nn.Module, io: str, path: str) -> None:
        getattr(self, self.layers_attr)[name] = layer
        self.io_path_pairs.append((name, io, path))

    def required_io(self):
        return [(path, io) for _, io, path in self.io_path_pairs]

    def post_forward(self, io_dict: dict) -> None:
        layers = getattr(self, self.layers_attr)
        for name, io, path in self.io_path_pairs:
            layers[name](io_dict[path][io])
