"""Loss terms (one file per family) and the GeneralizedCustomLoss that sums them."""
from .build import build_criterion
from .composite import GeneralizedCustomLoss
from .features import UnhookedPathError, select_features
from .kd import KDLoss

__all__ = ["build_criterion", "GeneralizedCustomLoss", "KDLoss", "select_features", "UnhookedPathError"]
