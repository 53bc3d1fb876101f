"""Joint image + mask transforms under torchdistill's names (``CustomRandomResize``, ...).

Each step is called ``step(image, target) -> (image, target)`` on a PIL image and a PIL mask (``CustomToTensor``
turns them into a float image and an int64 mask).  Masks are resized with nearest neighbour, padded with the
ignore index 255, and every random draw is the one torchdistill makes (``random.randint`` for the resize,
``random.random`` for the flip, ``RandomCrop.get_params`` for the crop), so a seeded run sees the same views.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from ...registry import register_transform

IGNORE_INDEX = 255


def pad_if_smaller(image, size: int, fill=0):
    """Pad the right and bottom of ``image`` up to ``size`` where its shorter side is smaller."""
    width, height = image.size
    if min(width, height) >= size:
        return image
    return F.pad(image, [0, 0, max(size - width, 0), max(size - height, 0)], fill=fill)


@register_transform
class CustomCompose:
    """The steps in order, each on ``(image, target)``."""

    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, image, target):
        for step in self.transforms:
            image, target = step(image, target)
        return image, target

    def __repr__(self):
        return f"{type(self).__name__}({self.transforms})"


@register_transform
class CustomRandomResize:
    """Resize the shorter side (or both, ``square``) to ``random.randint(min_size, max_size)``; the mask by nearest
    neighbour.  ``jpeg_quality`` re-encodes the image as JPEG first (torchdistill's option)."""

    def __init__(self, min_size: int, max_size: int = None, square: bool = False, jpeg_quality: int = None):
        self.min_size, self.max_size = int(min_size), int(min_size if max_size is None else max_size)
        self.square, self.jpeg_quality = bool(square), jpeg_quality

    def __call__(self, image, target):
        if self.jpeg_quality is not None:
            from io import BytesIO

            from PIL import Image

            buffer = BytesIO()
            image.save(buffer, "JPEG", quality=self.jpeg_quality)
            image = Image.open(buffer)
        size = random.randint(self.min_size, self.max_size)
        size = [size, size] if self.square else size
        return F.resize(image, size), F.resize(target, size, interpolation=InterpolationMode.NEAREST)


@register_transform
class CustomRandomHorizontalFlip:
    """Flip image and mask together with probability ``p``."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def __call__(self, image, target):
        if random.random() < self.p:
            return F.hflip(image), F.hflip(target)
        return image, target


@register_transform
class CustomRandomCrop:
    """A ``size x size`` crop at the same place in both; smaller inputs are padded first (mask with 255)."""

    def __init__(self, size: int):
        self.size = int(size)

    def __call__(self, image, target):
        image = pad_if_smaller(image, self.size)
        target = pad_if_smaller(target, self.size, fill=IGNORE_INDEX)
        top, left, height, width = T.RandomCrop.get_params(image, (self.size, self.size))
        return F.crop(image, top, left, height, width), F.crop(target, top, left, height, width)


@register_transform
class CustomCenterCrop:
    def __init__(self, size):
        self.size = size

    def __call__(self, image, target):
        return F.center_crop(image, self.size), F.center_crop(target, self.size)


@register_transform
class CustomToTensor:
    """Image to a float tensor in [0, 1]; mask to an int64 ``(H, W)`` tensor of class indices."""

    def __call__(self, image, target):
        return F.to_tensor(image), torch.as_tensor(np.array(target), dtype=torch.int64)


@register_transform
class CustomNormalize:
    def __init__(self, mean, std):
        self.mean, self.std = list(mean), list(std)

    def __call__(self, image, target):
        return F.normalize(image, mean=self.mean, std=self.std), target
