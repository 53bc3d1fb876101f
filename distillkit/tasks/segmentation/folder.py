"""Semantic segmentation from a plain folder pair: ``images/<stem>.<jpg|png|...>`` and ``masks/<stem>.png``.

A mask is a single-channel PNG of class indices (a palette PNG, as Pascal VOC's ``SegmentationClass``, is read as
its indices); 255 marks pixels to ignore.
"""
from __future__ import annotations

import os

from PIL import Image

from ...errors import ConfigError
from ...registry import register_dataset
from .base import JointTransformDataset

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@register_dataset
class SegmentationFolder(JointTransformDataset):
    """Pairs ``root/<images>/<stem>.*`` with ``root/<masks>/<stem><mask_suffix>``; ``transforms`` is a joint
    transform (``CustomCompose``), by default ``CustomToTensor``."""

    def __init__(self, root: str, images: str = "images", masks: str = "masks", mask_suffix: str = ".png",
                 transforms=None, transform=None):
        self.image_dir, self.mask_dir = os.path.join(root, images), os.path.join(root, masks)
        for key, path in (("images", self.image_dir), ("masks", self.mask_dir)):
            if not os.path.isdir(path):
                raise ConfigError(f"SegmentationFolder expects the folder {path!r} ({key}/ under root).",
                                  key_path=f"params.{key}")
        stems = sorted(os.path.splitext(n) for n in os.listdir(self.image_dir)
                       if n.lower().endswith(IMAGE_EXTENSIONS))
        self.samples = []
        for stem, extension in stems:
            mask = os.path.join(self.mask_dir, stem + mask_suffix)
            if not os.path.exists(mask):
                raise ConfigError(f"the image {stem + extension!r} has no mask {mask!r}.", key_path="params.masks")
            self.samples.append((os.path.join(self.image_dir, stem + extension), mask))
        if not self.samples:
            raise ConfigError(f"no images in {self.image_dir!r}.", key_path="params.root")
        super().__init__(transforms, transform)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        image_path, mask_path = self.samples[index]
        return self.apply(Image.open(image_path).convert("RGB"), Image.open(mask_path))
