"""torchdistill's COCO entry points, shared by the two dense tasks: ``coco_dataset`` (1.x: its examples'
``coco.dataset.coco_dataset``) and the 0.x dataset type ``cocodetect``.  ``is_segment: True`` gives the
semantic-segmentation dataset (:class:`~distillkit.tasks.segmentation.coco.CocoSegmentation`), otherwise the
detection one (:func:`~distillkit.tasks.detection.coco_dataset.coco_detection_dataset`)."""
from __future__ import annotations

import logging

from ..errors import ConfigError
from ..registry import register_dataset
from .detection.coco_dataset import coco_detection_dataset
from .segmentation.coco import CocoSegmentation

logger = logging.getLogger(__name__)


@register_dataset
def coco_dataset(img_dir_path, ann_file_path, annotated_only=False, random_horizontal_flip=None, is_segment=False,
                 transforms=None, jpeg_quality=None):
    """torchdistill's ``coco_dataset(img_dir_path, ann_file_path, annotated_only, random_horizontal_flip,
    is_segment, transforms, jpeg_quality)``."""
    if is_segment:
        return CocoSegmentation(img_dir_path, ann_file_path, annotated_only, transforms)
    return coco_detection_dataset(img_dir_path, ann_file_path, annotated_only, random_horizontal_flip, transforms,
                                  jpeg_quality)


def cocodetect_split(split_block: dict, key_path: str, build_transform):
    """torchdistill 0.x's ``type: 'cocodetect'`` split: ``images``, ``annotations``, ``annotated_only``,
    ``random_horizontal_flip``, ``is_segment``, ``jpeg_quality`` and (segmentation) ``transforms_params``, joint
    steps composed by ``CustomCompose``."""
    missing = [k for k in ("images", "annotations") if k not in split_block]
    if missing:
        raise ConfigError(f"a cocodetect split needs {' and '.join(missing)} (the image folder and the "
                          f"instances json).", key_path=f"{key_path}.{missing[0]}")
    is_segment = bool(split_block.get("is_segment", False))
    if "transform_params" in split_block and is_segment:
        raise ConfigError("a cocodetect split reads transforms_params (joint image and mask steps), not "
                          "transform_params: torchdistill 0.x ignores this key too, and the untransformed PIL images "
                          "then fail in its coco_seg_collate_fn.", key_path=f"{key_path}.transform_params",
                          hint="Rename the key to transforms_params.")
    if "transform_params" in split_block:
        logger.warning("%s.transform_params is not read by a cocodetect detection split (nor by torchdistill 0.x): "
                       "the detection transforms are random_horizontal_flip and jpeg_quality.", key_path)
    if split_block.get("transforms_params") and not is_segment:
        raise ConfigError("transforms_params of a detection cocodetect split is not supported: distillkit builds "
                          "torchdistill's default detection transforms (random_horizontal_flip, jpeg_quality).",
                          key_path=f"{key_path}.transforms_params")
    transforms = build_transform(split_block.get("transforms_params"), f"{key_path}.transforms_params",
                                 compose="CustomCompose") if is_segment else None
    try:
        return coco_dataset(split_block["images"], split_block["annotations"],
                            bool(split_block.get("annotated_only", False)), split_block.get("random_horizontal_flip"),
                            is_segment, transforms, split_block.get("jpeg_quality"))
    except ConfigError as exc:
        if exc.key_path and exc.key_path.startswith("params."):
            name = exc.key_path[len("params."):]
            exc.key_path = f"{key_path}." + {"img_dir_path": "images", "ann_file_path": "annotations"}.get(name, name)
            exc.locate()
        raise


@register_dataset("cocodetect")
def cocodetect(img_dir_path, ann_file_path, annotated_only=False, random_horizontal_flip=None, is_segment=False,
               transforms=None, jpeg_quality=None):
    """torchdistill 0.x's ``cocodetect`` type; its split blocks are read by :func:`cocodetect_split`."""
    return coco_dataset(img_dir_path, ann_file_path, annotated_only, random_horizontal_flip, is_segment, transforms,
                        jpeg_quality)


cocodetect.split_builder = cocodetect_split
