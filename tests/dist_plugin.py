"""Plugins for the distributed tests: a model without BatchNorm and a loss that fails on one rank."""
import os

import torch
from torch import nn

from distillkit import register_loss, register_model


@register_model
def tiny_convnet_no_bn(num_classes: int = 4, seed: int = 7):
    torch.manual_seed(seed)  # same initial weights in every process and every run
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(32, num_classes))


@register_loss
class FailOnRankOne(nn.Module):
    """Cross-entropy, except that rank 1 raises on its second step."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, student_output, teacher_output, targets):
        self.calls += 1
        if os.environ.get("RANK") == "1" and self.calls == 2:
            raise RuntimeError("deliberate failure on rank 1 at step 2")
        return nn.functional.cross_entropy(student_output, targets)


class _WithUnusedHead(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = tiny_convnet_no_bn(num_classes)
        self.unused_head = nn.Linear(4, 4)

    def forward(self, x):
        return self.body(x)


@register_model
def tiny_convnet_unused_head(num_classes: int = 4):
    return _WithUnusedHead(num_classes)


@register_loss
class NanOnThirdCall(nn.Module):
    """Cross-entropy, but NaN on its third call (global step 3)."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, student_output, teacher_output, targets):
        self.calls += 1
        loss = nn.functional.cross_entropy(student_output, targets)
        return loss * float("nan") if self.calls == 3 else loss
