"""Detection transforms: each takes and returns ``(image, target)``, moving the boxes (and instance masks) with
the image, as torchvision's detection reference and torchdistill's ``coco`` example do.

``target`` is a dict: ``boxes`` (N x 4, ``x1, y1, x2, y2`` in pixels), ``labels`` (N), optionally ``masks``
(N x H x W, uint8), ``image_id``, ``area``, ``iscrowd``.  Resizing the image to the network's size is the
detection model's own job (torchvision's ``GeneralizedRCNNTransform``), and its predictions come back in the
coordinates of the image the dataset gave.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch
from torch.nn import functional as F
from torchvision.transforms import functional as TF


class DetectionCompose:
    """Apply ``transforms`` in order to ``(image, target)``."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target


class ImageToTensor:
    """A PIL image to a float tensor in [0, 1] (``jpeg_quality``: re-encode it as JPEG first, torchdistill's
    option for studying compression)."""

    def __init__(self, jpeg_quality=None):
        self.jpeg_quality = jpeg_quality

    def __call__(self, image, target):
        if self.jpeg_quality is not None:
            from io import BytesIO

            from PIL import Image

            buffer = BytesIO()
            image.save(buffer, "JPEG", quality=self.jpeg_quality)
            image = Image.open(buffer)
        return TF.to_tensor(image), target


class RandomHorizontalFlip:
    """Flip a tensor image left-right with probability ``prob``; boxes become ``(W - x2, y1, W - x1, y2)``."""

    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def __call__(self, image, target):
        if random.random() < self.prob:
            width = image.shape[-1]
            image = image.flip(-1)
            target = dict(target)
            boxes = target["boxes"].clone()
            boxes[:, [0, 2]] = width - target["boxes"][:, [2, 0]]
            target["boxes"] = boxes
            if "masks" in target:
                target["masks"] = target["masks"].flip(-1)
        return image, target


class Resize:
    """Resize a tensor image to ``size`` (``(h, w)``, or an int for the shorter side); boxes and masks scale
    with it (boxes by the x and y factors, masks by nearest neighbour)."""

    def __init__(self, size):
        self.size = size

    def __call__(self, image, target):
        height, width = image.shape[-2:]
        if isinstance(self.size, int):
            scale = self.size / min(height, width)
            new_h, new_w = round(height * scale), round(width * scale)
        else:
            new_h, new_w = self.size
        image = F.interpolate(image[None], size=(new_h, new_w), mode="bilinear", align_corners=False)[0]
        target = dict(target)
        factors = torch.tensor([new_w / width, new_h / height, new_w / width, new_h / height])
        target["boxes"] = target["boxes"] * factors
        if "area" in target:
            target["area"] = target["area"] * (new_w / width) * (new_h / height)
        if "masks" in target and target["masks"].numel():
            target["masks"] = F.interpolate(target["masks"][None].float(), size=(new_h, new_w),
                                            mode="nearest")[0].to(target["masks"].dtype)
        return image, target
