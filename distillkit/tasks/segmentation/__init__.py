"""Semantic segmentation: joint transforms, datasets (Pascal VOC through torchvision, COCO, a folder pair,
generated shapes), models, the confusion-matrix metrics and the task (see :mod:`.task`)."""
from . import coco, collate, folder, models, synthetic, transforms  # noqa: F401  (registrations)
from .metrics import ConfusionMatrix
from .task import SegmentationTask

__all__ = ["ConfusionMatrix", "SegmentationTask"]
