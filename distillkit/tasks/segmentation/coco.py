"""COCO-layout semantic segmentation: instance polygons / RLEs rasterised into one class map per image.

As torchvision's segmentation reference (and torchdistill's ``coco_dataset(is_segment=True)``) build it:
annotations of the listed ``categories`` are kept and renumbered by their position in the list (torchdistill's
20 Pascal VOC classes of COCO by default, background 0), instance masks are merged by taking the largest class
index per pixel, and pixels covered by more than one instance become the ignore index 255.  The json is read with
plain ``json``; polygons and RLEs are decoded with ``pycocotools.mask`` (``pip install pycocotools``).
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ...registry import register_dataset
from ..coco_api import check_coco_paths, has_valid_annotation, instance_mask, pycocotools
from .base import JointTransformDataset
from .transforms import IGNORE_INDEX

# COCO category ids of the 20 Pascal VOC classes, in VOC's order (index 0: background)
VOC_CATEGORIES = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)


def class_map(annotations: Sequence[dict], height: int, width: int) -> np.ndarray:
    """The uint8 class map of remapped annotations: max class per pixel, 255 where instances overlap."""
    if not annotations:
        return np.zeros((height, width), dtype=np.uint8)
    mask_api = pycocotools("COCO segmentation (masks from polygons and RLEs)", "coco").mask
    masks = np.stack([instance_mask(mask_api, a["segmentation"], height, width).astype(bool) for a in annotations])
    classes = np.asarray([a["category_id"] for a in annotations], dtype=np.uint8)
    target = (masks * classes[:, None, None]).max(axis=0).astype(np.uint8)
    target[masks.sum(axis=0) > 1] = IGNORE_INDEX
    return target


@register_dataset
class CocoSegmentation(JointTransformDataset):
    """``(image, class map)`` pairs from a COCO instances json (``images``, ``annotations``), images in
    ``img_dir_path``; ``annotated_only`` drops images without a valid annotation (of any category, as
    torchdistill does); ``transforms`` is a joint transform (``CustomCompose``), by default ``CustomToTensor``."""

    def __init__(self, img_dir_path: str, ann_file_path: str, annotated_only: bool = False, transforms=None,
                 categories: Optional[Sequence[int]] = VOC_CATEGORIES, transform=None):
        img_dir_path, ann_file_path = os.path.expanduser(img_dir_path), os.path.expanduser(ann_file_path)
        check_coco_paths(img_dir_path, ann_file_path)
        with open(ann_file_path) as f:
            data = json.load(f)
        super().__init__(transforms, transform)
        self.root = img_dir_path
        self.images = {image["id"]: image for image in data.get("images", [])}
        per_image = defaultdict(list)
        for annotation in data.get("annotations", []):
            per_image[annotation["image_id"]].append(annotation)
        self.ids = sorted(self.images)
        if annotated_only:
            self.ids = [i for i in self.ids if has_valid_annotation(per_image[i])]
        remap = {c: index for index, c in enumerate(categories)} if categories is not None else None
        self.annotations = {i: [dict(a, category_id=remap[a["category_id"]]) if remap else a
                                for a in per_image[i] if remap is None or a["category_id"] in remap]
                            for i in self.ids}

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        image_id = self.ids[index]
        info = self.images[image_id]
        image = Image.open(os.path.join(self.root, info["file_name"])).convert("RGB")
        width, height = image.size
        target = Image.fromarray(class_map(self.annotations[image_id], height, width))
        return self.apply(image, target)
