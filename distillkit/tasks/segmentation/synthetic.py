"""SyntheticShapes: a generated segmentation dataset (no download), for demos and tests.

Each image is a noisy background with one to three filled shapes: class 1 rectangles, class 2 ellipses, class 3
triangles (later shapes drawn over earlier ones), each in a colour drawn around its class's own hue.  Sample
``i`` of a split is drawn from ``seed`` and ``i`` alone, so every run and every worker sees the same data.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ...errors import ConfigError
from ...registry import register_dataset
from .base import JointTransformDataset

CLASS_COLOURS = ((200, 60, 60), (60, 180, 70), (70, 90, 210))
SPLIT_OFFSETS = {"train": 0, "val": 1_000_003, "test": 2_000_006}


def draw_sample(rng: np.random.Generator, size: int):
    """``(image, mask)`` as PIL images of ``size x size``."""
    background = rng.normal(110, 35, size=(size, size, 3)).clip(0, 255).astype(np.uint8)
    image, mask = Image.fromarray(background), Image.new("L", (size, size), 0)
    paint, label = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    for _ in range(int(rng.integers(1, 4))):
        cls = int(rng.integers(1, 4))
        w, h = (int(v) for v in rng.integers(size // 5, size // 2, size=2))
        x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        colour = tuple(int(c) for c in np.clip(np.array(CLASS_COLOURS[cls - 1]) + rng.normal(0, 20, 3), 0, 255))
        box = [x, y, x + w, y + h]
        for canvas, fill in ((paint, colour), (label, cls)):
            if cls == 1:
                canvas.rectangle(box, fill=fill)
            elif cls == 2:
                canvas.ellipse(box, fill=fill)
            else:
                canvas.polygon([(x, y + h), (x + w // 2, y), (x + w, y + h)], fill=fill)
    return image, mask


@register_dataset
class SyntheticShapes(JointTransformDataset):
    """``num_samples`` generated ``image_size``-pixel samples of split ``train`` / ``val`` / ``test``, 4 classes
    (background, rectangle, ellipse, triangle); ``transforms`` is a joint transform, by default ``CustomToTensor``."""

    num_classes = 4

    def __init__(self, split: str = "train", num_samples: int = 512, image_size: int = 64, seed: int = 0,
                 transforms=None, transform=None, root=None):
        if split not in SPLIT_OFFSETS:
            raise ConfigError(f"split must be one of {list(SPLIT_OFFSETS)}, found {split!r}.", key_path="params.split")
        self.offset, self.num_samples, self.image_size = SPLIT_OFFSETS[split] + 7919 * int(seed), int(num_samples), \
            int(image_size)
        super().__init__(transforms, transform)

    def __len__(self):
        return self.num_samples

    def __getitem__(self, index):
        image, mask = draw_sample(np.random.default_rng(self.offset + index), self.image_size)
        return self.apply(image, mask)
