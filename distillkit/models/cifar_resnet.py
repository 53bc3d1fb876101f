"""ResNets for small images (He et al., 2016, Sec. 4.2: depth 6n+2, three stages).

Registered as ``cifar_resnet8``, ``cifar_resnet14``, ``cifar_resnet20``,
``cifar_resnet32``, ``cifar_resnet56``.  Module paths follow torchvision's
ResNets (``conv1, bn1, layer1..layer3, avgpool, fc``) so hook paths read alike.
``width`` multiplies the channels (16, 32, 64).
"""
from __future__ import annotations

from torch import nn

from ..registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, num_classes: int = 10, width: int = 1, in_channels: int = 3):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 32, 56, ...), got {depth}")
        blocks = (depth - 2) // 6
        widths = [16 * width, 32 * width, 64 * width]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        layers, channels = [], widths[0]
        for index, out_channels in enumerate(widths):
            stride = 1 if index == 0 else 2
            stage = [BasicBlock(channels if i == 0 else out_channels, out_channels, stride if i == 0 else 1)
                     for i in range(blocks)]
            layers.append(nn.Sequential(*stage))
            channels = out_channels
        self.layer1, self.layer2, self.layer3 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

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
