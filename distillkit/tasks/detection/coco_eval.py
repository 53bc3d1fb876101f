"""COCO mAP of a detector's predictions, computed by pycocotools' ``COCOeval`` (as torchvision's detection
reference and torchdistill's ``coco`` example do).

Predictions (torchvision's eval-mode output: ``boxes`` x1y1x2y2 in the dataset image's pixels, ``scores``,
``labels``, Mask R-CNN's ``masks`` N x 1 x H x W probabilities) become COCO results (``bbox`` as x, y, w, h;
masks thresholded at 0.5 and run-length encoded); every rank's results are gathered, rank 0 scores them against
the ground truth on the images that were evaluated, and the numbers are broadcast.
"""
from __future__ import annotations

import contextlib
import copy
import io
from typing import Dict, Iterable, List

import numpy as np
import torch

from ...engine.distributed import DistContext, broadcast_object, gather_objects
from ..coco_api import pycocotools

# COCOeval.stats: [0] mAP@[.5:.95], [1] mAP@.5, [2] mAP@.75, [3..5] small/medium/large, [6..11] recalls
STAT_NAMES = {"map": 0, "map50": 1, "map75": 2}


def to_coco_results(image_id: int, output: dict, with_masks: bool) -> List[dict]:
    """One image's prediction dict as COCO result entries."""
    boxes = output["boxes"].detach().float().cpu()
    if boxes.numel() == 0:
        return []
    xywh = torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()
    scores, labels = output["scores"].detach().float().cpu().tolist(), output["labels"].detach().cpu().tolist()
    results = [{"image_id": image_id, "category_id": int(label), "bbox": box, "score": float(score)}
               for box, score, label in zip(xywh, scores, labels)]
    if with_masks and "masks" in output:
        mask_api = pycocotools().mask
        masks = (output["masks"].detach().cpu() > 0.5).squeeze(1).numpy().astype(np.uint8)
        for result, mask in zip(results, masks):
            rle = mask_api.encode(np.asfortranarray(mask))
            rle["counts"] = rle["counts"].decode("utf-8")
            result["segmentation"] = rle
    return results


def coco_index(dataset: dict):
    """A pycocotools ``COCO`` built from a dict ``{images, annotations, categories}`` (quietly)."""
    coco = pycocotools().coco.COCO()
    coco.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_ground_truth(dataset):
    """The pycocotools index of a dataset: its own ``coco`` (COCO json datasets, under Subsets), else one built
    from its samples' targets (torchvision reference's ``convert_to_coco_api``: boxes of the transformed
    images)."""
    base = dataset
    while isinstance(base, torch.utils.data.Subset):
        base = base.dataset
    if getattr(base, "coco", None) is not None:
        return base.coco
    images, annotations, categories = [], [], set()
    for index in range(len(dataset)):
        image, target = dataset[index][:2]
        image_id = int(target["image_id"])
        images.append({"id": image_id, "height": int(image.shape[-2]), "width": int(image.shape[-1])})
        boxes = target["boxes"].float()
        for k, (box, label) in enumerate(zip(boxes.tolist(), target["labels"].tolist())):
            width, height = box[2] - box[0], box[3] - box[1]
            entry = {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                     "bbox": [box[0], box[1], width, height], "iscrowd": 0,
                     "area": float(target["area"][k]) if "area" in target else width * height}
            if "masks" in target:
                rle = pycocotools().mask.encode(np.asfortranarray(target["masks"][k].numpy().astype(np.uint8)))
                entry["segmentation"] = rle
            annotations.append(entry)
            categories.add(int(label))
    return coco_index({"images": images, "annotations": annotations,
                       "categories": [{"id": c} for c in sorted(categories)]})


def coco_stats(coco_gt, results: List[dict], image_ids: Iterable[int], iou_type: str = "bbox") -> np.ndarray:
    """``COCOeval(...).stats`` (12 numbers) of ``results`` on ``image_ids``; no results at all scores 0."""
    if not results:
        return np.zeros(12)
    tools = pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        evaluator = tools.cocoeval.COCOeval(coco_gt, coco_dt, iou_type)
        evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats)


def summarize_results(coco_gt, results: List[dict], image_ids, with_masks: bool) -> Dict[str, float]:
    """``{map, map50, map75[, mask_map, mask_map50], count}`` (fractions, as pycocotools prints them; an
    undefined -1 becomes 0)."""
    ids = sorted(set(int(i) for i in image_ids))
    stats = coco_stats(coco_gt, results, ids, "bbox")
    summary = {name: max(float(stats[i]), 0.0) for name, i in STAT_NAMES.items()}
    if with_masks:
        mask_results = [r for r in results if "segmentation" in r]
        mask_stats = coco_stats(coco_gt, mask_results, ids, "segm")
        summary.update(mask_map=max(float(mask_stats[0]), 0.0), mask_map50=max(float(mask_stats[1]), 0.0))
    summary["count"] = len(ids)
    return summary


def evaluate_detections(image_ids: List[int], results: List[dict], coco_gt, ctx: DistContext,
                        with_masks: bool) -> Dict[str, float]:
    """Gather every rank's ``(image_ids, results)``, score on rank 0, broadcast the summary."""
    gathered = gather_objects((image_ids, results), ctx)
    summary = None
    if ctx.is_main:
        all_ids = [i for ids, _ in gathered for i in ids]
        all_results = [r for _, rs in gathered for r in rs]
        summary = summarize_results(coco_gt, all_results, all_ids, with_masks)
    return broadcast_object(summary, ctx)
