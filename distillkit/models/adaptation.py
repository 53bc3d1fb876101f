"""Adaptation modules: layers that torchdistill 0.x configs insert into a side's ``sequential`` as ``+name``
(``adaptations: {name: {type, params}}``), e.g. FitNets' regressor.  Looked up in ``ADAPTATIONS``, then
``torch.nn`` (``MaxPool2d``, ...)."""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ..registry import register_adaptation


@register_adaptation
class ConvReg(nn.Sequential):
    """FitNets' convolutional regressor as torchdistill builds it (Romero et al., "FitNets: Hints for Thin Deep
    Nets", ICLR 2015; the CRD code's ``ConvReg``): ``conv`` (Conv2d with bias) -> ``bn`` -> ``relu`` (optional)."""

    def __init__(self, num_input_channels: int, num_output_channels: int, kernel_size, stride, padding,
                 uses_relu: bool = True):
        layers = OrderedDict(conv=nn.Conv2d(num_input_channels, num_output_channels, kernel_size=kernel_size,
                                            stride=stride, padding=padding),
                             bn=nn.BatchNorm2d(num_output_channels))
        if uses_relu:
            layers["relu"] = nn.ReLU(inplace=True)
        super().__init__(layers)
