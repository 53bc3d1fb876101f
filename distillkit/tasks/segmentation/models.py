"""Segmentation models: torchvision's builders resolve by name (``deeplabv3_resnet50``, ``fcn_resnet101``,
``lraspp_mobilenet_v3_large``, ...; torchdistill 0.x's ``pretrained`` / ``pretrained_backbone`` params are mapped
by :mod:`distillkit.models.builder`), and ``tiny_fcn``, a small FCN that trains on a CPU in seconds (demos, tests).

Every model returns torchvision's ``OrderedDict(out=..., aux=...)`` of full-resolution logits.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.fcn import FCN, FCNHead

from ...registry import register_model


def _stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False), nn.BatchNorm2d(out_channels),
                         nn.ReLU(inplace=True), nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


@register_model
def tiny_fcn(num_classes: int = 21, width: int = 16, aux_loss: bool = False) -> nn.Module:
    """torchvision's FCN on a 3-stage conv backbone (output stride 8: ``layer3`` has ``4 * width`` channels, the
    aux head reads ``layer2``); heads are torchvision's ``FCNHead``."""
    backbone = nn.Sequential(OrderedDict(layer1=_stage(3, width, 2), layer2=_stage(width, 2 * width, 2),
                                         layer3=_stage(2 * width, 4 * width, 2)))
    return_layers = {"layer3": "out", "layer2": "aux"} if aux_loss else {"layer3": "out"}
    return FCN(IntermediateLayerGetter(backbone, return_layers), FCNHead(4 * width, num_classes),
               FCNHead(2 * width, num_classes) if aux_loss else None)


SEGMENTATION_MODELS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large", "fcn_resnet50",
                       "fcn_resnet101", "lraspp_mobilenet_v3_large", "tiny_fcn")
