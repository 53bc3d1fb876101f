"""DenseNet(-BC) for CIFAR (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017): a 3x3 stem,
three dense blocks joined by transitions that halve the channels (compression 0.5) and the resolution, then
BN-ReLU, global average pooling and a linear classifier.

Registered under torchdistill's names: ``densenet`` (``growth_rate``, ``depth``, ``num_init_features``,
``bottleneck`` given), ``densenet_bc_k12_depth100``, ``densenet_bc_k24_depth250``, ``densenet_bc_k40_depth190``,
with its keyword arguments (``num_classes``, ``pretrained``, ``progress``, ``bn_size``, ``drop_rate``,
``memory_efficient``).  The blocks are torchvision's (``torchvision.models.densenet``), as in torchdistill's
``DenseNet4Cifar``, so module paths (``features.denseblock1.denselayer1.conv1``, ...) and state_dict keys
match it and its checkpoints load with ``strict=True``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch.nn.functional as F
from torch import nn
from torchvision.models.densenet import _DenseBlock, _Transition

from ..registry import register_model
from .torchdistill_weights import load_pretrained


class DenseNet4Cifar(nn.Module):
    """``features`` (conv0, denseblock1, transition1, ..., denseblockN, norm5) -> ReLU -> pool -> ``classifier``."""

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (12, 12, 12), num_init_features: int = 64,
                 bn_size: int = 4, drop_rate: float = 0.0, num_classes: int = 10, memory_efficient: bool = False):
        super().__init__()
        self.features = nn.Sequential(OrderedDict(conv0=nn.Conv2d(3, num_init_features, 3, 1, 1, bias=False)))
        channels = num_init_features
        for index, num_layers in enumerate(block_config, start=1):
            self.features.add_module(f"denseblock{index}", _DenseBlock(num_layers, channels, bn_size, growth_rate,
                                                                       drop_rate, memory_efficient))
            channels += num_layers * growth_rate
            if index < len(block_config):
                self.features.add_module(f"transition{index}", _Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        self.classifier = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x):
        x = F.relu(self.features(x), inplace=True)
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model
def densenet(growth_rate: int, depth: int, num_init_features: int = 16, bottleneck: bool = True,
             num_classes: int = 10, pretrained: bool = False, progress: bool = True, bn_size: int = 4,
             drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet4Cifar:
    """torchdistill's ``densenet``: (depth - 4) / 3 layers in all, in three equal blocks; with ``bottleneck``, half
    as many (each layer is a 1x1 and a 3x3 convolution) and ``num_init_features`` = 2 * ``growth_rate``.
    ``pretrained`` loads torchdistill's CIFAR-10/100 weights (published for DenseNet-BC k=12, depth 100)."""
    layers = (depth - 4) // 3
    if bottleneck:
        layers //= 2
        num_init_features = 2 * growth_rate
    model = DenseNet4Cifar(growth_rate, (layers,) * 3, num_init_features, bn_size, drop_rate, num_classes,
                           memory_efficient)
    name = f"{'densenet_bc' if bottleneck else 'densenet'}_k{growth_rate}_depth{depth}"
    return load_pretrained(model, name, num_classes, progress) if pretrained else model


def _register(growth_rate: int, depth: int) -> None:
    def build(num_classes: int = 10, pretrained: bool = False, progress: bool = True, bn_size: int = 4,
              drop_rate: float = 0.0, memory_efficient: bool = False) -> DenseNet4Cifar:
        return densenet(growth_rate, depth, 16, True, num_classes, pretrained, progress, bn_size, drop_rate,
                        memory_efficient)

    build.__name__ = build.__qualname__ = f"densenet_bc_k{growth_rate}_depth{depth}"
    build.__doc__ = f"torchdistill's DenseNet-BC (k={growth_rate}, depth {depth}) for CIFAR."
    register_model(build)


for _k, _depth in ((12, 100), (24, 250), (40, 190)):
    _register(_k, _depth)
