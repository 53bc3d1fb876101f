"""What the COCO datasets of both dense tasks share: pycocotools (an optional library), the check of the image
folder and annotation file, the "worth training on" test of an image's annotations, and one instance's
``segmentation`` (polygons, an uncompressed or a compressed RLE) rasterised to a mask."""
from __future__ import annotations

import os

import numpy as np

from ..errors import ConfigError, DistillkitError


def pycocotools(purpose: str = "object detection (COCO annotations, instance masks and COCO mAP)",
                extra: str = "detection"):
    """The ``pycocotools`` package with its ``coco``, ``cocoeval`` and ``mask`` modules, or a DistillkitError
    saying what needs it (``purpose``) and naming the extra to install."""
    try:
        import pycocotools.coco  # noqa: F401
        import pycocotools.cocoeval  # noqa: F401
        import pycocotools.mask  # noqa: F401
    except ImportError as exc:
        raise DistillkitError(f"{purpose} needs pycocotools, which is not installed. Install it with pip install "
                              f"'distillkit[{extra}]' (or pip install pycocotools).") from exc
    import pycocotools as package

    return package


def check_coco_paths(img_dir_path: str, ann_file_path: str) -> None:
    """Both exist; otherwise a ConfigError at ``params.<name>`` (placed under the dataset's key by its caller)."""
    for path, what, name in ((img_dir_path, "image folder", "img_dir_path"),
                             (ann_file_path, "annotation file", "ann_file_path")):
        if not os.path.exists(path):
            raise ConfigError(f"the COCO {what} {path!r} does not exist (looked from {os.getcwd()}).",
                              key_path=f"params.{name}", hint="Point it at your copy of COCO (train2017/, val2017/ "
                                                              "and annotations/instances_*.json).")


def has_valid_annotation(annotations) -> bool:
    """torchvision's reference test: some annotation whose box is wider and taller than one pixel."""
    return any(all(side > 1 for side in a["bbox"][2:]) for a in annotations)


def instance_mask(mask_api, segmentation, height: int, width: int) -> np.ndarray:
    """One instance's ``segmentation`` (polygons, an uncompressed or a compressed RLE) as an ``H x W`` uint8
    mask (1 inside); ``mask_api``: ``pycocotools(...).mask``."""
    if isinstance(segmentation, list):
        rles = mask_api.frPyObjects(segmentation, height, width)
        rle = mask_api.merge(rles) if rles else None
    elif isinstance(segmentation.get("counts"), list):  # an uncompressed RLE
        rle = mask_api.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    if rle is None:
        return np.zeros((height, width), dtype=np.uint8)
    return np.asarray(mask_api.decode(rle), dtype=np.uint8).reshape(height, width)
