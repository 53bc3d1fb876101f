"""Semantic segmentation: images and ``(H, W)`` class-index masks (255 ignored), scored by mean IoU and pixel
accuracy over a confusion matrix summed across ranks."""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from ...engine.amp import evaluation_autocast
from ...engine.distributed import all_reduce_sum
from ...registry import register_task
from ...utils import LazyTag
from ..base import Task
from .collate import segmentation_collate
from .metrics import ConfusionMatrix
from .models import SEGMENTATION_MODELS

SEGMENTATION_DATASETS = ("VOCSegmentation", "SegmentationFolder", "SyntheticShapes", "CocoSegmentation")
SEGMENTATION_DATASET_KEYS = ("VOCSegmentation", "coco_dataset", "SegmentationFolder", "SyntheticShapes",
                             "CocoSegmentation")


def segmentation_logits(output) -> torch.Tensor:
    """The logits to score: the ``out`` entry of a torchvision segmentation model's dict."""
    return output["out"] if isinstance(output, dict) else output


def _names_segmentation(config) -> bool:
    models = config.get("models") or {}
    if any(isinstance(b, dict) and b.get("name") in SEGMENTATION_MODELS for b in models.values()):
        return True
    for block in (config.get("datasets") or {}).values():
        if isinstance(block, LazyTag):
            key = str(block.get("key", ""))
            kwargs = (block.get("init") or {}).get("kwargs") or {}
            if key.rpartition(".")[2] in SEGMENTATION_DATASET_KEYS and (
                    "coco_dataset" not in key or kwargs.get("is_segment")):
                return True
        elif isinstance(block, dict):
            splits = (block.get("splits") or {}).values()
            if block.get("type") in SEGMENTATION_DATASETS or (
                    block.get("type") == "cocodetect" and any(s.get("is_segment") for s in splits)):
                return True
    return False


@register_task("segmentation")
class SegmentationTask(Task):
    name = "segmentation"
    metrics = ("miou", "pixel_acc")
    primary = "miou"
    collate = staticmethod(segmentation_collate)

    @classmethod
    def claims(cls, config) -> bool:
        return _names_segmentation(config)

    @torch.no_grad()
    def evaluate(self, model, loader, ctx, amp=None) -> Dict[str, float]:
        """Confusion matrix of ``argmax(out)`` against the masks over ``loader``, summed over ranks."""
        matrix, count = None, torch.zeros((), dtype=torch.int64, device=ctx.device)
        for images, targets, *_ in loader:
            images = images.to(ctx.device, non_blocking=True)
            targets = targets.to(ctx.device, non_blocking=True)
            with evaluation_autocast(amp):
                logits = segmentation_logits(model(images))
            if logits.shape[-2:] != targets.shape[-2:]:  # a model that returns low-resolution logits
                logits = F.interpolate(logits.float(), size=targets.shape[-2:], mode="bilinear", align_corners=False)
            if matrix is None:
                matrix = ConfusionMatrix(logits.shape[1], ctx.device)
            matrix.update(targets, logits.argmax(1))
            count += images.shape[0]
        if matrix is None:
            return {"miou": 0.0, "pixel_acc": 0.0, "count": 0}
        matrix.reduce(ctx)
        return dict(matrix.compute(), count=int(all_reduce_sum(count, ctx).item()))

    def summary(self, result: Dict[str, float]) -> str:
        return (f"mIoU {result['miou']:.2f}%, pixel accuracy {result['pixel_acc']:.2f}% on "
                f"{result.get('count', '?')} images")
