"""Wide ResNets for CIFAR (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016): WRN-depth-k, depth 6n+4,
three stages of pre-activation blocks (BN-ReLU-conv, dropout between the two 3x3 convolutions) with 16k, 32k
and 64k channels.

Registered under torchdistill's names: ``wide_resnet`` (``depth``, ``k`` given), ``wide_resnet40_4``,
``wide_resnet28_10``, ``wide_resnet16_8``, with its keyword arguments (``dropout_p``, ``num_classes``,
``pretrained``, ``progress``, ``norm_layer``: the final norm's).  Module paths and state_dict keys are those of
torchdistill's ``WideResNet4Cifar``, so its checkpoints load with ``strict=True``.
"""
from __future__ import annotations

from typing import Callable, Optional

from torch import nn

from ..registry import register_model
from .torchdistill_weights import load_pretrained


class WideBasicBlock(nn.Module):
    """BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3, plus a shortcut (a 1x1 convolution where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, dropout_p: float, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.dropout = nn.Dropout(p=dropout_p)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut.append(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False))

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(self.dropout(out))))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """WRN-``depth``-``k``: conv1, layer1..layer3, then bn1-relu, global average pooling and fc."""

    def __init__(self, depth: int, k: int, dropout_p: float = 0.0, num_classes: int = 10,
                 norm_layer: Optional[Callable[[int], nn.Module]] = None):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"the depth of a Wide ResNet must be 6n+4 (16, 28, 40, ...), got {depth}")
        blocks = (depth - 4) // 6
        widths = [16 * k, 32 * k, 64 * k]
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        layers, channels = [], 16
        for index, out_channels in enumerate(widths):
            stride = 1 if index == 0 else 2
            layers.append(nn.Sequential(*[WideBasicBlock(channels if i == 0 else out_channels, out_channels,
                                                         dropout_p, stride if i == 0 else 1)
                                          for i in range(blocks)]))
            channels = out_channels
        self.layer1, self.layer2, self.layer3 = layers
        self.bn1 = (norm_layer or nn.BatchNorm2d)(channels)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.fc(self.avgpool(self.relu(self.bn1(x))).flatten(1))


@register_model
def wide_resnet(depth: int, k: int, dropout_p: float = 0.3, num_classes: int = 10, pretrained: bool = False,
                progress: bool = True, norm_layer: Optional[Callable[[int], nn.Module]] = None) -> WideResNet:
    """torchdistill's ``wide_resnet``: WRN-``depth``-``k``; ``pretrained`` loads torchdistill's CIFAR-10/100
    weights (published for WRN-40-4, WRN-28-10 and WRN-16-8)."""
    model = WideResNet(depth, k, dropout_p, num_classes, norm_layer)
    return load_pretrained(model, f"wide_resnet{depth}_{k}", num_classes, progress) if pretrained else model


def _register(depth: int, k: int) -> None:
    def build(dropout_p: float = 0.3, num_classes: int = 10, pretrained: bool = False, progress: bool = True,
              norm_layer: Optional[Callable[[int], nn.Module]] = None) -> WideResNet:
        return wide_resnet(depth, k, dropout_p, num_classes, pretrained, progress, norm_layer)

    build.__name__ = build.__qualname__ = f"wide_resnet{depth}_{k}"
    build.__doc__ = f"torchdistill's WRN-{depth}-{k} for CIFAR."
    register_model(build)


for _depth, _k in ((40, 4), (28, 10), (16, 8)):
    _register(_depth, _k)
