"""Image classification: top-1 / top-5 accuracy, images and integer labels."""
from __future__ import annotations

from typing import Dict

from ..engine.evaluate import evaluate
from ..registry import register_task
from .base import Task


@register_task("classification")
class ClassificationTask(Task):
    name = "classification"
    metrics = ("top1", "top5")
    primary = "top1"
    supports_mixup = True

    def evaluate(self, model, loader, ctx, amp=None) -> Dict[str, float]:
        return evaluate(model, loader, ctx, amp)

    def summary(self, result: Dict[str, float]) -> str:
        return f"top-1 {result['top1']:.2f}% top-5 {result['top5']:.2f}% on {result['count']} images"
