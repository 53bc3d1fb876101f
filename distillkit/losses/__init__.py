"""Loss terms, one file per family, and the GeneralizedCustomLoss that sums them.

Every module of this package is imported here, so a new family is one new file whose
classes register themselves with ``@register_loss(term='org' | 'sub')``.
"""
import importlib
import pkgutil

from .build import build_criterion
from .composite import GeneralizedCustomLoss
from .features import UnhookedPathError, select_features

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

from .deit import DeiTDistillationLoss  # noqa: E402
from .kd import KDLoss  # noqa: E402
from .tat import MaskedFM, ShapeMismatchError  # noqa: E402
from .tat_seg import TaTSegmentationLoss  # noqa: E402

__all__ = ["build_criterion", "GeneralizedCustomLoss", "KDLoss", "DeiTDistillationLoss", "MaskedFM",
           "TaTSegmentationLoss", "select_features", "UnhookedPathError", "ShapeMismatchError"]
