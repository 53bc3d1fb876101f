"""Loss terms (one file per family) and the GeneralizedCustomLoss that sums them."""
from .build import build_criterion
from .composite import GeneralizedCustomLoss
from .features import UnhookedPathError, select_features
from .deit import DeiTDistillationLoss
from .kd import KDLoss
from .tat import MaskedFM, ShapeMismatchError
from .tat_seg import TaTSegmentationLoss

__all__ = ["build_criterion", "GeneralizedCustomLoss", "KDLoss", "DeiTDistillationLoss", "MaskedFM", "TaTSegmentationLoss",
           "select_features", "UnhookedPathError", "ShapeMismatchError"]
