"""Object detection: torchvision's detectors on COCO-format data, scored by COCO mAP (pycocotools).

A batch is a list of image tensors (each its own size) and a list of target dicts; in training the detector
takes both (``forward_proc: forward_batch_target``, the default for a side that runs a detector itself) and
returns its loss dict, which the org term sums (``func2extract_org_loss: extract_org_loss_dict``).  Evaluation
runs the whole detector in eval mode and reports bbox ``map`` (mAP@[.5:.95]), ``map50``, ``map75`` and, for
Mask R-CNN, ``mask_map`` / ``mask_map50``, as fractions (pycocotools' numbers).
"""
from __future__ import annotations

from typing import Dict

import torch

from ...engine.amp import evaluation_autocast
from ...engine.distributed import all_reduce_sum
from ...registry import MODELS, register_task
from ..base import Task
from .coco_eval import coco_ground_truth, evaluate_detections, to_coco_results
from .collate import detection_collate
from ..coco_api import pycocotools
from .shapes import SHAPES_MODELS

DETECTION_DATASET_KEYS = ("coco.dataset.coco_dataset", "distillkit.tasks.coco.coco_dataset")
DETECTION_COLLATE = ("coco_collate_fn",)


def detection_model_names() -> set:
    """torchvision's detection builders and distillkit's detection models."""
    import torchvision.models as tvm
    from torchvision.models import detection

    names = set(tvm.list_models(module=detection)) | set(SHAPES_MODELS)
    return names | {n for n in MODELS.names() if n.startswith(("custom_fasterrcnn", "custom_maskrcnn"))}


def _model_names(config) -> list:
    models = config.get("models") or {}
    return [block.get("name") for block in models.values() if isinstance(block, dict)]


def _dataset_says_detection(block) -> bool:
    if not isinstance(block, dict):
        return False
    if "key" in block:  # 1.x !import_call
        kwargs = ((block.get("init") or {}).get("kwargs") or {})
        return block.get("key") in DETECTION_DATASET_KEYS and not kwargs.get("is_segment")
    splits = (block.get("splits") or {}).values()
    return block.get("type") in ("cocodetect", "ShapesDetection") and not any(
        isinstance(s, dict) and s.get("is_segment") for s in splits)


@register_task("detection")
class DetectionTask(Task):
    name = "detection"
    metrics = ("map", "map50")
    primary = "map"
    supports_mixup = False
    collate = staticmethod(detection_collate)
    default_forward_proc = "forward_batch_target"

    def __init__(self):
        pycocotools()  # a detection run or eval stops at its start with the paragraph naming the extra

    @classmethod
    def claims(cls, config) -> bool:
        names = detection_model_names()
        if any(name in names for name in _model_names(config)):
            return True
        return any(_dataset_says_detection(block) for block in (config.get("datasets") or {}).values())

    def to_device(self, images, targets, device: torch.device, speed):
        images = [image.to(device, non_blocking=True) for image in images]
        targets = [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
                    for k, v in target.items()} for target in targets]
        return images, targets

    @torch.no_grad()
    def evaluate(self, model, loader, ctx, amp=None) -> Dict[str, float]:
        coco_gt = coco_ground_truth(loader.dataset) if ctx.is_main else None
        with_masks, image_ids, results = False, [], []
        for images, targets, *_ in loader:
            images = [image.to(ctx.device, non_blocking=True) for image in images]
            with evaluation_autocast(amp):
                outputs = model(images)
            for target, output in zip(targets, outputs):
                image_id = int(target["image_id"])
                with_masks = with_masks or "masks" in output
                image_ids.append(image_id)
                results.extend(to_coco_results(image_id, output, "masks" in output))
        with_masks = bool(broadcast_any(with_masks, ctx))
        if with_masks and "mask_map" not in self.metrics:
            self.metrics = self.metrics + ("mask_map",)
        return evaluate_detections(image_ids, results, coco_gt, ctx, with_masks)

    def summary(self, result: Dict[str, float]) -> str:
        text = f"bbox mAP@[.5:.95] {result['map']:.4f} mAP@.5 {result['map50']:.4f}"
        if "mask_map" in result:
            text += f", mask mAP@[.5:.95] {result['mask_map']:.4f} mAP@.5 {result['mask_map50']:.4f}"
        return text + f" on {result['count']} images"


def broadcast_any(flag: bool, ctx) -> bool:
    """Whether any rank saw ``flag`` (mask outputs)."""
    return all_reduce_sum(torch.tensor(float(flag), device=ctx.device), ctx).item() > 0
