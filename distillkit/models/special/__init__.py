"""Special modules: trainable parts that sit beside a teacher or student model."""
from .base import SpecialModule

__all__ = ["SpecialModule"]
