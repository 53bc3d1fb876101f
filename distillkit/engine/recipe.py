"""Training-recipe parts taken from timm: Mixup/CutMix and a model EMA.

``train.mixup``: the keyword arguments of ``timm.data.Mixup`` (``mixup_alpha``,
``cutmix_alpha``, ``prob``, ``switch_prob``, ``mode``, ``label_smoothing``,
``num_classes``).  The mixed images go to the teacher and the student alike; the
targets become soft (use a loss that takes soft targets: DeiTDistillationLoss,
KDLoss or CrossEntropyLoss).  ``train.model_ema``: ``{decay, warmup}`` for
``timm.utils.ModelEmaV3``, updated after every optimizer step and evaluated
every epoch (``val_top1_ema`` in metrics.jsonl).
"""
from __future__ import annotations

from typing import Optional

from torch import nn

from ..utils import call_with_params


def build_mixup(block: Optional[dict], key_path: str = "train.mixup"):
    if not block or block.get("enabled") is False:
        return None
    from timm.data import Mixup

    params = {k: v for k, v in block.items() if k != "enabled"}
    return call_with_params(Mixup, params, key_path)


def build_ema(block: Optional[dict], model: nn.Module, key_path: str = "train.model_ema"):
    if not block or block.get("enabled") is False:
        return None
    from timm.utils import ModelEmaV3

    params = {k: v for k, v in block.items() if k != "enabled"}
    return call_with_params(ModelEmaV3, params, key_path, model)
