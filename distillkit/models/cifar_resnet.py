"""ResNets for small images (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, Sec. 4.2:
depth 6n+2, three stages of 16, 32 and 64 channels).

One class, two name families:

* distillkit's ``cifar_resnet8``, ``cifar_resnet14``, ``cifar_resnet20``, ``cifar_resnet32``,
  ``cifar_resnet56`` (``width`` multiplies the channels, ``in_channels`` sets the input's);
* torchdistill's ``resnet`` (``depth`` given), ``resnet20``, ``resnet32``, ``resnet44``, ``resnet56``,
  ``resnet110``, ``resnet1202``, with its keyword arguments (``num_classes``, ``pretrained``, ``progress``,
  ``zero_init_residual``, ``norm_layer``).  Module paths and state_dict keys are torchdistill's
  ``ResNet4Cifar``'s (``conv1, bn1, layer1..layer3, avgpool, fc``, torchvision's block layout), so its
  checkpoints load with ``strict=True``.  ``avgpool`` averages globally: on 32x32 inputs the same as
  torchdistill's ``AvgPool2d(8)``.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from torch import nn

from ..registry import register_model
from .torchdistill_weights import load_pretrained


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (1x1 convolution + norm where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = norm_layer(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = norm_layer(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            norm_layer(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, num_classes: int = 10, width: int = 1, in_channels: int = 3,
                 zero_init_residual: bool = False, norm_layer: Optional[Callable[[int], nn.Module]] = None):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, 56, ...), got {depth}")
        norm_layer = norm_layer or nn.BatchNorm2d
        blocks = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = norm_layer(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers, channels = [], widths[0]
        for index, out_channels in enumerate(widths):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1,
                                norm_layer) for i in range(blocks)]
            layers.append(nn.Sequential(*stage))
            channels = out_channels
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:  # each block starts as the identity (Goyal et al., 2017)
            for module in self.modules():
                if isinstance(module, BasicBlock) and getattr(module.bn2, "weight", None) is not None:
                    nn.init.zeros_(module.bn2.weight)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _register(depth: int) -> None:
    def build(num_classes: int = 10, width: int = 1, in_channels: int = 3) -> CifarResNet:
        return CifarResNet(depth, num_classes, width, in_channels)

    build.__name__ = f"cifar_resnet{depth}"
    build.__doc__ = f"ResNet-{depth} for small images (6n+2 layers, three stages)."
    register_model(build)


for _depth in (8, 14, 20, 32, 56):
    _register(_depth)


@register_model
def resnet(depth: int, num_classes: int = 10, pretrained: bool = False, progress: bool = True,
           zero_init_residual: bool = False, norm_layer: Optional[Callable[[int], nn.Module]] = None,
           groups: int = 1, width_per_group: int = 64,
           replace_stride_with_dilation: Optional[Sequence[bool]] = None) -> CifarResNet:
    """torchdistill's ``resnet``: a CIFAR ResNet of ``depth`` (6n+2); ``pretrained`` loads torchdistill's
    CIFAR-10 weights (published for depths 20, 32, 44, 56, 110).  ``groups``, ``width_per_group`` and
    ``replace_stride_with_dilation`` are taken for torchdistill's signature; torchvision's BasicBlock, which
    torchdistill builds on, allows only their defaults."""
    if groups != 1 or width_per_group != 64 or any(replace_stride_with_dilation or ()):
        raise ValueError("the basic block supports only groups=1, width_per_group=64 and no dilation")
    model = CifarResNet(depth, num_classes, zero_init_residual=zero_init_residual, norm_layer=norm_layer)
    return load_pretrained(model, f"resnet{depth}", num_classes, progress) if pretrained else model


def _register_torchdistill(depth: int) -> None:
    def build(num_classes: int = 10, pretrained: bool = False, progress: bool = True,
              zero_init_residual: bool = False, norm_layer: Optional[Callable[[int], nn.Module]] = None,
              groups: int = 1, width_per_group: int = 64,
              replace_stride_with_dilation: Optional[Sequence[bool]] = None) -> CifarResNet:
        return resnet(depth, num_classes, pretrained, progress, zero_init_residual, norm_layer, groups,
                      width_per_group, replace_stride_with_dilation)

    build.__name__ = build.__qualname__ = f"resnet{depth}"
    build.__doc__ = f"torchdistill's ResNet-{depth} for CIFAR ({(depth - 2) // 6} blocks a stage)."
    register_model(build)


for _depth in (20, 32, 44, 56, 110, 1202):
    _register_torchdistill(_depth)
