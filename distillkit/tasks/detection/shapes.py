"""A generated detection dataset and two small detectors for demos and tests: nothing is downloaded.

``ShapesDetection``: ``num_images`` RGB images of ``image_size`` pixels (a seeded noisy background), each with
1 .. ``max_objects`` filled shapes: squares (label 1), discs (2) and triangles (3), in random colours and sizes.
The boxes are the shapes' exact pixel extents, and an instance mask comes with each; ``coco`` holds the same
ground truth as a pycocotools index (what COCO mAP is scored against).

``shapes_fasterrcnn``: torchvision's ``FasterRCNN`` on a plain convolutional backbone (``width`` channels,
``depth`` 3x3 layers after a two-step stride-4 stem, output at 1/4 resolution with ``out_channels``), one feature
map, anchors of 8-32 px, ``min_size = max_size = image_size`` and small RPN/RoI sample counts (it trains on a
CPU): a teacher (wide, deep) and a student (narrow, shallow) whose ``backbone`` outputs have the same shape, so
feature distillation needs no adapter.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from ...errors import ConfigError
from ...registry import register_dataset, register_model
from .coco_eval import coco_index
from ..coco_api import pycocotools
from .transforms import DetectionCompose, RandomHorizontalFlip

SHAPE_NAMES = ("square", "disc", "triangle")
SHAPES_MODELS = ("shapes_fasterrcnn",)


def _shape_mask(kind: int, cx: float, cy: float, radius: float, size: int) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    if kind == 1:
        return (np.abs(xs - cx) <= radius) & (np.abs(ys - cy) <= radius)
    if kind == 2:
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= radius ** 2
    # an upright isosceles triangle: apex at the top, base at the bottom
    top, bottom = cy - radius, cy + radius
    half = radius * (ys - top) / (2 * radius)
    return (ys >= top) & (ys <= bottom) & (np.abs(xs - cx) <= half)


@register_dataset("ShapesDetection")
class ShapesDetection(torch.utils.data.Dataset):
    """Params: ``num_images``, ``image_size``, ``max_objects``, ``seed``, ``random_horizontal_flip`` (a
    probability, for training), ``with_masks``."""

    num_classes = 4  # background + 3 shapes

    def __init__(self, num_images: int = 64, image_size: int = 64, max_objects: int = 3, seed: int = 0,
                 random_horizontal_flip=None, with_masks: bool = True, root=None, transform=None):
        if image_size < 32:
            raise ConfigError(f"ShapesDetection image_size is at least 32, found {image_size!r}.",
                              key_path="params.image_size")
        rng = np.random.default_rng(int(seed))
        self.image_size, self.with_masks = int(image_size), with_masks
        self.samples = []
        for index in range(int(num_images)):
            image = rng.integers(0, 60, size=(image_size, image_size, 3)).astype(np.uint8)
            masks, labels = [], []
            for _ in range(int(rng.integers(1, max_objects + 1))):
                kind = int(rng.integers(1, 4))
                radius = float(rng.uniform(image_size / 10, image_size / 5))
                cx, cy = rng.uniform(radius, image_size - radius, size=2)
                mask = _shape_mask(kind, cx, cy, radius, image_size)
                for earlier in masks:  # later shapes cover earlier ones
                    earlier &= ~mask
                image[mask] = rng.integers(120, 256, size=3)
                masks.append(mask)
                labels.append(kind)
            keep = [k for k, m in enumerate(masks) if m.sum() > 4]
            self.samples.append((image, [masks[k] for k in keep], [labels[k] for k in keep], index + 1))
        self.flip = DetectionCompose([RandomHorizontalFlip(random_horizontal_flip)]) \
            if random_horizontal_flip else None
        self._coco = None

    def __len__(self) -> int:
        return len(self.samples)

    def _target(self, index: int) -> dict:
        _, masks, labels, image_id = self.samples[index]
        boxes = []
        for mask in masks:
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        target = {"boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                  "labels": torch.as_tensor(labels, dtype=torch.int64), "image_id": torch.tensor([image_id]),
                  "area": torch.as_tensor([float(m.sum()) for m in masks]),
                  "iscrowd": torch.zeros(len(masks), dtype=torch.int64)}
        if self.with_masks:
            size = self.image_size
            target["masks"] = torch.as_tensor(np.stack(masks) if masks else np.zeros((0, size, size)),
                                              dtype=torch.uint8)
        return target

    def image_wh(self, index: int):
        """``(width, height)`` of sample ``index`` (aspect-ratio grouping)."""
        return self.image_size, self.image_size

    def __getitem__(self, index: int):
        image = torch.as_tensor(self.samples[index][0]).permute(2, 0, 1).float() / 255.0
        target = self._target(index)
        if self.flip is not None:
            image, target = self.flip(image, target)
        return image, target

    @property
    def coco(self):
        """The ground truth as a pycocotools index (unflipped)."""
        if self._coco is None:
            mask_api = pycocotools().mask
            images, annotations = [], []
            for index in range(len(self)):
                target = self._target(index)
                image_id = int(target["image_id"])
                images.append({"id": image_id, "width": self.image_size, "height": self.image_size})
                for k, (box, label) in enumerate(zip(target["boxes"].tolist(), target["labels"].tolist())):
                    entry = {"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                             "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                             "area": float(target["area"][k]), "iscrowd": 0}
                    if self.with_masks:
                        entry["segmentation"] = mask_api.encode(np.asfortranarray(target["masks"][k].numpy()))
                    annotations.append(entry)
            categories = [{"id": k + 1, "name": name} for k, name in enumerate(SHAPE_NAMES)]
            self._coco = coco_index({"images": images, "annotations": annotations, "categories": categories})
        return self._coco


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> list:
    return [nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class ShapesBackbone(nn.Sequential):
    """stem (two stride-2 convs to ``width``), ``depth`` more 3x3 convs, ``out`` (1x1 to ``out_channels``)."""

    def __init__(self, width: int, depth: int, out_channels: int):
        layers = OrderedDict(stem=nn.Sequential(*_conv(3, width // 2, 2), *_conv(width // 2, width, 2)))
        for k in range(depth):
            layers[f"layer{k + 1}"] = nn.Sequential(*_conv(width, width))
        layers["out"] = nn.Conv2d(width, out_channels, 1)
        super().__init__(layers)
        self.out_channels = out_channels


@register_model
def shapes_fasterrcnn(num_classes: int = 4, width: int = 32, depth: int = 2, out_channels: int = 32,
                      image_size: int = 64, **kwargs):
    """A small Faster R-CNN for :class:`ShapesDetection` (see the module docstring); ``kwargs`` go to
    ``FasterRCNN``."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign

    anchors = AnchorGenerator(sizes=((8, 16, 32),), aspect_ratios=((0.5, 1.0, 2.0),))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=1)
    defaults = dict(min_size=image_size, max_size=image_size, rpn_pre_nms_top_n_train=200, rpn_pre_nms_top_n_test=100,
                    rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=50, box_batch_size_per_image=32,
                    box_detections_per_img=20)
    defaults.update(kwargs)
    return FasterRCNN(ShapesBackbone(width, depth, out_channels), None, rpn_anchor_generator=anchors,
                      box_roi_pool=pool, box_head=TwoMLPHead(out_channels * 49, 128),
                      box_predictor=FastRCNNPredictor(128, num_classes), **defaults)
