"""Bottleneck-injected classifiers of head network distillation (HND / GHND).

Matsubara, Baidya, Callegaro, Levorato, Restuccia: "Distilled Split Deep Neural Networks for Edge-Assisted
Real-Time Systems" (HotEdgeVideo 2019) and "Head Network Distillation: Splitting Distilled Deep Neural
Networks for Resource-Constrained Edge Computing Systems" (IEEE Access 2020).

The head of a torchvision classifier (its first stages) is replaced by a small encoder-decoder with a
narrow ``bottleneck_channel``-wide layer; the rest of the network is kept.  Module names and order follow
torchdistill 0.3.3's ``custom_*`` models (``torchdistill/models/custom/bottleneck/classification``), so
its checkpoints and hook paths (``bottleneck``, ``layer3``, ``features.denseblock3``, ...) fit.
torchdistill 1.x no longer defines them (its configs load sc2bench's through torch.hub).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import register_model


def conv_bn_relu_stack(bottleneck_channel: int, widths: Sequence[int], paddings: Sequence[int],
                       stem_padding: int) -> list:
    """The 0.x head: stem (conv 7x7/2, BN, ReLU, max-pool 3/2, BN, ReLU), the 2x2/2 bottleneck conv, then 2x2
    convs widening to ``widths`` (each followed by BN + ReLU except the last)."""
    layers = [nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3 * stem_padding, bias=False), nn.BatchNorm2d(64),
              nn.ReLU(inplace=True), nn.MaxPool2d(kernel_size=3, stride=2, padding=stem_padding),
              nn.BatchNorm2d(64), nn.ReLU(inplace=True),
              nn.Conv2d(64, bottleneck_channel, kernel_size=2, stride=2, padding=1, bias=False),
              nn.BatchNorm2d(bottleneck_channel), nn.ReLU(inplace=True)]
    channels = bottleneck_channel
    for index, (width, padding) in enumerate(zip(widths, paddings)):
        layers.append(nn.Conv2d(channels, width, kernel_size=2, stride=1, padding=padding, bias=False))
        if index < len(widths) - 1:
            layers += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        channels = width
    return layers


class Bottleneck(nn.Module):
    """``decoder(decompressor(compressor(encoder(x))))``: the layer list split at ``bottleneck_idx``."""

    def __init__(self, layers: list, bottleneck_idx: int, compressor=None, decompressor=None):
        super().__init__()
        if not 0 < bottleneck_idx < len(layers):
            raise ConfigError(f"bottleneck_idx splits the head's {len(layers)} layers into encoder and decoder, so it "
                              f"lies in 1..{len(layers) - 1}; found {bottleneck_idx!r}.",
                              key_path="params.bottleneck_idx")
        self.encoder = nn.Sequential(*layers[:bottleneck_idx])
        self.decoder = nn.Sequential(*layers[bottleneck_idx:])
        self.compressor = compressor
        self.decompressor = decompressor

    def forward(self, x):
        z = self.encoder(x)
        if self.compressor is not None:
            z = self.compressor(z)
        if self.decompressor is not None:
            z = self.decompressor(z)
        return self.decoder(z)


def bottleneck4resnet(bottleneck_channel=12, bottleneck_idx=7, compressor=None, decompressor=None) -> Bottleneck:
    """Replaces ResNet's conv1 .. layer2: 512 channels at 1/8 of the input size."""
    layers = conv_bn_relu_stack(bottleneck_channel, [512, 512, 512, 512], [1, 1, 0, 0], stem_padding=1)
    return Bottleneck(layers + [nn.AvgPool2d(kernel_size=2, stride=1)], bottleneck_idx, compressor, decompressor)


def bottleneck4densenet(bottleneck_channel=12, bottleneck_idx=7, compressor=None, decompressor=None) -> Bottleneck:
    """Replaces DenseNet's features up to transition2: 256 channels at 1/16 of the input size."""
    layers = conv_bn_relu_stack(bottleneck_channel, [512, 512, 256, 256, 256], [1, 1, 0, 0, 0], stem_padding=1)
    return Bottleneck(layers + [nn.AvgPool2d(kernel_size=2, stride=2)], bottleneck_idx, compressor, decompressor)


def bottleneck4inception3(bottleneck_channel=12, bottleneck_idx=7, compressor=None, decompressor=None) -> Bottleneck:
    """Replaces Inception-v3's stem up to maxpool2: 192 channels, 35x35 for a 299x299 input.

    Only at Inception's own input size does the head's output fit the teacher's ``maxpool2``: the head's
    paddings (7x7/2 conv with none, 2x2 convs with 1, 1, 0, 0) shrink a side s to 35 for s = 299 but to 26 for
    s = 224, where the teacher's stem gives 25.  torchdistill 0.3.3 builds this same head, so its HND / GHND
    sample configs, written with 224x224 crops, stop there too (MSELoss: 26 vs 25); train with 299x299 crops
    (torchvision's Inception-v3 recipe: RandomResizedCrop 299; Resize 342, CenterCrop 299)."""
    layers = conv_bn_relu_stack(bottleneck_channel, [256, 256, 192], [1, 0, 0], stem_padding=0)
    return Bottleneck(layers + [nn.AvgPool2d(kernel_size=2, stride=1)], bottleneck_idx, compressor, decompressor)


def _processors(compressor, decompressor):
    for name, value in (("compressor", compressor), ("decompressor", decompressor)):
        if value is not None:
            raise ConfigError(f"{name}: distillkit's head-network models run without the 0.x bottleneck "
                              f"processors (Quantizer, JpegCompressor, ...); leave {name} empty.",
                              key_path=f"params.{name}")
    return None, None


def _torchvision(builder_name: str, params: dict) -> nn.Module:
    import torchvision.models as tvm

    pretrained = params.pop("pretrained", None)
    if pretrained is not None and "weights" not in params:
        params["weights"] = "DEFAULT" if pretrained else None
    return getattr(tvm, builder_name)(**params)


class CustomResNet(nn.Sequential):
    """``bottleneck`` followed by the torchvision ResNet children named in ``short_module_names`` (in the
    ResNet's order), with a ``flatten`` inserted before ``fc``."""

    def __init__(self, bottleneck: nn.Module, short_module_names: Sequence[str], org_resnet: nn.Module):
        keep = set(short_module_names)
        modules = OrderedDict(bottleneck=bottleneck)
        for name, child in org_resnet.named_children():
            if name in keep:
                if name == "fc":
                    modules["flatten"] = nn.Flatten(1)
                modules[name] = child
        super().__init__(modules)


class CustomDenseNet(nn.Module):
    """``features`` = ``bottleneck`` then the DenseNet feature blocks named in ``short_feature_names``;
    then ReLU, global average pooling and the DenseNet's ``classifier``."""

    def __init__(self, bottleneck: nn.Module, short_feature_names: Sequence[str], org_densenet: nn.Module):
        super().__init__()
        keep = set(short_feature_names) - {"classifier"}
        modules = OrderedDict(bottleneck=bottleneck)
        modules.update((name, child) for name, child in org_densenet.features.named_children() if name in keep)
        self.features = nn.Sequential(modules)
        self.relu = nn.ReLU(inplace=True)
        self.adaptive_avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = org_densenet.classifier

    def forward(self, x):
        z = self.adaptive_avgpool(self.relu(self.features(x)))
        return self.classifier(torch.flatten(z, 1))


class CustomInception3(nn.Sequential):
    """``bottleneck`` then the Inception-v3 children named in ``short_module_names``, in its order; the
    max-pools between stem convolutions are put back where two kept stem convs met around one, and
    ``adaptive_avgpool``, ``dropout`` (p=0.5) and ``flatten`` go before ``fc``."""

    def __init__(self, bottleneck: nn.Module, short_module_names: Sequence[str], org_model: nn.Module):
        keep = set(short_module_names)
        modules = OrderedDict(bottleneck=bottleneck)
        last = None
        for name, child in org_model.named_children():
            if name not in keep:
                continue
            if (last, name) == ("Conv2d_2b_3x3", "Conv2d_3b_1x1"):
                modules["maxpool1"] = nn.MaxPool2d(kernel_size=3, stride=2)
                last = "maxpool1"
            elif (last, name) == ("Conv2d_4a_3x3", "Mixed_5b"):
                modules["maxpool2"] = nn.MaxPool2d(kernel_size=3, stride=2)
                last = "maxpool2"
            elif name == "fc":
                modules["adaptive_avgpool"] = nn.AdaptiveAvgPool2d((1, 1))
                modules["dropout"] = nn.Dropout()
                modules["flatten"] = nn.Flatten(1)
            modules[name] = child
            last = name
        super().__init__(modules)


RESNET_TAIL = ("layer3", "layer4", "avgpool", "fc")
DENSENET_TAIL = ("denseblock3", "transition3", "denseblock4", "norm5")
INCEPTION_TAIL = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                  "Mixed_7a", "Mixed_7b", "Mixed_7c", "fc")


@register_model
def custom_resnet152(bottleneck_channel: int = 12, bottleneck_idx: int = 7, compressor=None, decompressor=None,
                     short_module_names: Optional[Sequence[str]] = None, **torchvision_params) -> CustomResNet:
    """torchvision's ResNet-152 with conv1 .. layer2 replaced by a bottleneck head; other params go to
    ``torchvision.models.resnet152`` (``pretrained: True`` selects its default weights)."""
    bottleneck = bottleneck4resnet(bottleneck_channel, bottleneck_idx, *_processors(compressor, decompressor))
    return CustomResNet(bottleneck, short_module_names or RESNET_TAIL, _torchvision("resnet152", torchvision_params))


def _custom_densenet(builder: str, bottleneck_channel, bottleneck_idx, compressor, decompressor,
                     short_feature_names, params) -> CustomDenseNet:
    bottleneck = bottleneck4densenet(bottleneck_channel, bottleneck_idx, *_processors(compressor, decompressor))
    return CustomDenseNet(bottleneck, short_feature_names or DENSENET_TAIL, _torchvision(builder, params))


@register_model
def custom_densenet169(bottleneck_channel: int = 12, bottleneck_idx: int = 7, compressor=None, decompressor=None,
                       short_feature_names: Optional[Sequence[str]] = None, **torchvision_params) -> CustomDenseNet:
    """torchvision's DenseNet-169 with its features up to transition2 replaced by a bottleneck head."""
    return _custom_densenet("densenet169", bottleneck_channel, bottleneck_idx, compressor, decompressor,
                            short_feature_names, torchvision_params)


@register_model
def custom_densenet201(bottleneck_channel: int = 12, bottleneck_idx: int = 7, compressor=None, decompressor=None,
                       short_feature_names: Optional[Sequence[str]] = None, **torchvision_params) -> CustomDenseNet:
    """torchvision's DenseNet-201 with its features up to transition2 replaced by a bottleneck head."""
    return _custom_densenet("densenet201", bottleneck_channel, bottleneck_idx, compressor, decompressor,
                            short_feature_names, torchvision_params)


@register_model
def custom_inception_v3(bottleneck_channel: int = 12, bottleneck_idx: int = 7, compressor=None, decompressor=None,
                        short_module_names: Optional[Sequence[str]] = None, **torchvision_params) -> CustomInception3:
    """torchvision's Inception-v3 with its stem (up to maxpool2) replaced by a bottleneck head, for 299x299
    inputs (see ``bottleneck4inception3``).  ``aux_logits`` and ``transform_input`` go to torchvision but do not
    act here: ``AuxLogits`` is not among the default kept modules, and the forward is the plain sequence of the
    kept modules (no input transform)."""
    bottleneck = bottleneck4inception3(bottleneck_channel, bottleneck_idx, *_processors(compressor, decompressor))
    return CustomInception3(bottleneck, short_module_names or INCEPTION_TAIL,
                            _torchvision("inception_v3", torchvision_params))
