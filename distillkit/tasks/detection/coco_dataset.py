"""COCO-format detection datasets: an image folder and an ``instances_*.json`` file.

:func:`coco_dataset` has torchdistill's signature (its ``coco.dataset.coco_dataset`` of the examples folder in
1.x, ``type: cocodetect`` splits in 0.x): ``img_dir_path``, ``ann_file_path``, ``annotated_only`` (drop images
without a usable box, for training), ``random_horizontal_flip`` (a probability), ``is_segment``, ``transforms``
and ``jpeg_quality``.  A sample is ``(image tensor, target)`` with the target of
:mod:`distillkit.tasks.detection.transforms`; crowd annotations are left out, boxes are clamped to the image and
empty ones dropped (torchvision's detection reference does the same).
"""
from __future__ import annotations

import os

import torch
from PIL import Image

from ..coco_api import check_coco_paths, has_valid_annotation, instance_mask, pycocotools
from .transforms import DetectionCompose, ImageToTensor, RandomHorizontalFlip


def annotations_to_target(annotations, image_id: int, height: int, width: int, with_masks: bool) -> dict:
    """COCO annotations of one image -> ``{boxes (x1y1x2y2), labels, [masks], image_id, area, iscrowd}``."""
    annotations = [a for a in annotations if not a.get("iscrowd", 0)]
    boxes = torch.as_tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    boxes[:, 0::2].clamp_(min=0, max=width)
    boxes[:, 1::2].clamp_(min=0, max=height)
    keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0])
    target = {"boxes": boxes[keep],
              "labels": torch.as_tensor([a["category_id"] for a in annotations], dtype=torch.int64)[keep],
              "image_id": torch.tensor([image_id]),
              "area": torch.as_tensor([float(a.get("area", 0.0)) for a in annotations])[keep],
              "iscrowd": torch.zeros(int(keep.sum()), dtype=torch.int64)}
    if with_masks:
        mask_api = pycocotools().mask
        masks = [torch.as_tensor(instance_mask(mask_api, a["segmentation"], height, width)) for a in annotations]
        target["masks"] = (torch.stack(masks) if masks else torch.zeros((0, height, width), dtype=torch.uint8))[keep]
    return target


class CocoDetectionDataset(torch.utils.data.Dataset):
    """Images of ``img_dir_path`` with the annotations of ``ann_file_path`` (COCO json); ``coco`` is the
    pycocotools index, what the evaluator scores against.  ``transforms`` (default: to a tensor) take and return
    ``(image, target)``."""

    def __init__(self, img_dir_path: str, ann_file_path: str, transforms=None, annotated_only: bool = False,
                 with_masks: bool = None):
        img_dir_path, ann_file_path = os.path.expanduser(img_dir_path), os.path.expanduser(ann_file_path)
        check_coco_paths(img_dir_path, ann_file_path)
        coco_api = pycocotools().coco
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
            self.coco = coco_api.COCO(ann_file_path)
        self.root = img_dir_path
        self.transforms = transforms if transforms is not None else DetectionCompose([ImageToTensor()])
        self.ids = sorted(self.coco.imgs)
        if annotated_only:
            self.ids = [i for i in self.ids if has_valid_annotation(self.coco.imgToAnns.get(i, []))]
        if with_masks is None:
            with_masks = any("segmentation" in a for a in self.coco.anns.values())
        self.with_masks = with_masks

    def __len__(self) -> int:
        return len(self.ids)

    def image_wh(self, index: int):
        """``(width, height)`` of sample ``index`` from the annotation file (for aspect-ratio grouping)."""
        info = self.coco.imgs[self.ids[index]]
        return info["width"], info["height"]

    def __getitem__(self, index: int):
        image_id = self.ids[index]
        info = self.coco.imgs[image_id]
        image = Image.open(os.path.join(self.root, info["file_name"])).convert("RGB")
        target = annotations_to_target(self.coco.imgToAnns.get(image_id, []), image_id, image.height, image.width,
                                       self.with_masks)
        return self.transforms(image, target)


def default_transforms(random_horizontal_flip=None, jpeg_quality=None) -> DetectionCompose:
    """torchdistill's detection transforms: to a tensor, then (training) a random horizontal flip."""
    steps = [ImageToTensor(jpeg_quality)]
    if random_horizontal_flip is not None:
        steps.append(RandomHorizontalFlip(random_horizontal_flip))
    return DetectionCompose(steps)


def coco_detection_dataset(img_dir_path, ann_file_path, annotated_only=False, random_horizontal_flip=None,
                           transforms=None, jpeg_quality=None) -> CocoDetectionDataset:
    """The detection form of torchdistill's ``coco_dataset`` (``is_segment: False``; see distillkit.tasks.coco)."""
    if transforms is None:
        transforms = default_transforms(random_horizontal_flip, jpeg_quality)
    return CocoDetectionDataset(img_dir_path, ann_file_path, transforms, annotated_only=annotated_only)
