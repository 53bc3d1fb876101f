"""Object detection (COCO-format data, torchvision detectors, COCO mAP): see :mod:`.task`."""
from . import coco_dataset, collate, head_rcnn, models, shapes  # noqa: F401  (registrations)
from .task import DetectionTask

__all__ = ["DetectionTask"]
