"""SSKD's piece beside the model: the self-supervision head.

Xu, Liu, Li, Loy, "Knowledge Distillation Meets Self-Supervision", ECCV 2020.
``SSKDDatasetWrapper`` (distillkit.data.wrappers) turns each sample into 4 views (the image and its
90/180/270-degree rotations); the loader then gives ``(B, 4, C, H, W)`` batches, which
``SSWrapper4SSKD.forward`` flattens to ``(4B, C, H, W)`` (torchdistill's ``forward_batch4sskd``), so rows
``4i .. 4i + 3`` are image ``i``'s views.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from ..checkpoint import load_model_weights, save_atomic
from .base import SpecialModule
from .srd import io_spec

def flatten_views(x: torch.Tensor) -> torch.Tensor:
    """``(B, V, C, H, W) -> (B * V, C, H, W)``; other shapes pass unchanged."""
    return x.reshape(-1, *x.shape[-3:]) if x.dim() == 5 else x


@register_special_module
class SSWrapper4SSKD(SpecialModule):
    """Params (torchdistill 1.1.5's): ``input_module: {path, io}`` (the pooled feature, e.g. ``model.avgpool``
    output), ``feat_dim`` (its size), ``ss_module_ckpt`` (loaded when the file exists; ``post_epoch_process``
    writes it) and ``freezes_ss_module`` (True: the head's parameters are frozen).

    ``ss_module`` = Linear(d, d), ReLU, Linear(d, d) on the flattened feature; hook ``ss_module`` for the
    losses.  ``forward`` flattens ``(B, 4, C, H, W)`` view batches and runs a teacher's model without
    gradients (only its head can learn, in SSKD's first stage)."""

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module: dict = None, feat_dim: int = None,
                 ss_module_ckpt: str = None, freezes_ss_module: bool = False):
        super().__init__(model, is_teacher)
        self.input_module_path, self.input_module_io = io_spec(input_module, "SSWrapper4SSKD")
        if not isinstance(feat_dim, int) or isinstance(feat_dim, bool) or feat_dim <= 0:
            raise ConfigError(f"SSWrapper4SSKD needs feat_dim, the size of the flattened {self.input_module_path!r} "
                              f"{self.input_module_io}, as a positive integer; found {feat_dim!r}.",
                              key_path="special.params.feat_dim")
        self.ss_module = nn.Sequential(nn.Linear(feat_dim, feat_dim), nn.ReLU(inplace=True),
                                       nn.Linear(feat_dim, feat_dim))
        self.ckpt_file_path = ss_module_ckpt
        if ss_module_ckpt and os.path.isfile(ss_module_ckpt):
            load_model_weights(self.ss_module, ss_module_ckpt, what="SSKD ss_module checkpoint")
        if freezes_ss_module:
            self.ss_module.requires_grad_(False)

    def forward(self, x):
        x = flatten_views(x)
        if self.is_teacher:
            with torch.no_grad():
                return self.base_model(x)
        return self.base_model(x)

    def required_io(self):
        return [(self.input_module_path, self.input_module_io)]

    def post_forward(self, io_dict: dict) -> None:
        self.ss_module(torch.flatten(io_dict[self.input_module_path][self.input_module_io], 1))

    def post_epoch_process(self) -> None:
        """Save ``ss_module``'s weights to ``ss_module_ckpt``, as torchdistill does after each epoch (the Trainer
        calls it on rank 0)."""
        if self.ckpt_file_path:
            save_atomic(self.ss_module.state_dict(), self.ckpt_file_path)
