"""VarianceBranch4PAD: the student's variance estimator of prime-aware adaptive distillation.

Zhang, Lan, Dai, Zeng, Bai, Chang & Wei, "Prime-Aware Adaptive Distillation", ECCV 2020.
``var_estimator = Sequential(Linear(feat_dim, feat_dim), BatchNorm1d(feat_dim))`` maps the student's
flattened embedding to per-dimension log-variances, read by ``PADL2Loss``.
"""
from __future__ import annotations

import os

from torch import nn

from ...errors import ConfigError
from ...registry import register_special_module
from ..checkpoint import load_model_weights, save_atomic
from .base import SpecialModule


@register_special_module
class VarianceBranch4PAD(SpecialModule):
    """Params: ``input_module: {path, io}`` (the embedding, e.g. ``student_model.avgpool``), ``feat_dim``
    and ``var_estimator_ckpt`` (loaded when the file exists; ``post_epoch_process`` writes it).  Hook
    ``var_estimator`` to put the log-variances in the io_dict."""

    model_attr = "student_model"

    def __init__(self, model: nn.Module, is_teacher: bool = False, input_module: dict = None, feat_dim: int = None,
                 var_estimator_ckpt: str = None):
        super().__init__(model, is_teacher)
        if not isinstance(input_module, dict) or "path" not in input_module or "io" not in input_module:
            raise ConfigError(f"VarianceBranch4PAD needs input_module: {{path, io}} (the embedding the variance "
                              f"is estimated from), found {input_module!r}.", key_path="params.input_module")
        if not isinstance(feat_dim, int) or isinstance(feat_dim, bool) or feat_dim < 1:
            raise ConfigError(f"VarianceBranch4PAD needs feat_dim, the embedding size (a positive integer), "
                              f"found {feat_dim!r}.", key_path="params.feat_dim")
        self.input_module_path = input_module["path"]
        self.input_module_io = input_module["io"]
        self.var_estimator = nn.Sequential(nn.Linear(feat_dim, feat_dim), nn.BatchNorm1d(feat_dim))
        self.ckpt_file_path = var_estimator_ckpt
        if var_estimator_ckpt and os.path.isfile(var_estimator_ckpt):
            load_model_weights(self.var_estimator, var_estimator_ckpt, what="VarianceBranch4PAD var_estimator_ckpt")

    def required_io(self):
        return [(self.input_module_path, self.input_module_io)]

    def post_forward(self, io_dict: dict) -> None:
        self.var_estimator(io_dict[self.input_module_path][self.input_module_io].flatten(1))

    def post_epoch_process(self) -> None:
        """Save the variance estimator's weights to ``var_estimator_ckpt`` (the Trainer calls it on rank 0)."""
        if self.ckpt_file_path:
            save_atomic(self.var_estimator.state_dict(), self.ckpt_file_path)
