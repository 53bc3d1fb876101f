"""The bundled offline dataset: scikit-learn's handwritten digits.

1,797 grey 8x8 images of the digits 0-9 that ship inside scikit-learn
(``sklearn.datasets.load_digits``): nothing is downloaded.  Images are scaled to
``image_size`` and returned as PIL images so that torchvision transforms apply.
The train/val split is a seeded permutation, the same on every machine.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import ConfigError
from ..registry import register_dataset

SPLITS = ("train", "val", "all")


@register_dataset("Digits")
class Digits(Dataset):
    """Params: ``split`` (train | val | all), ``image_size`` (pixels, square),
    ``val_fraction`` (held-out share), ``split_seed``, ``channels`` (1 or 3).
    ``root`` is accepted and ignored (the data is inside scikit-learn)."""

    num_classes = 10

    def __init__(self, split: str = "train", image_size: int = 32, val_fraction: float = 0.2,
                 split_seed: int = 0, channels: int = 3, root=None, transform=None, target_transform=None):
        if split not in SPLITS:
            raise ConfigError(f"Digits split must be one of {SPLITS}, found {split!r}.", key_path="params.split")
        if not 0.0 < float(val_fraction) < 1.0:
            raise ConfigError(f"Digits val_fraction must lie strictly between 0 and 1, found {val_fraction!r}.",
                              key_path="params.val_fraction")
        if channels not in (1, 3):
            raise ConfigError(f"Digits channels must be 1 or 3, found {channels!r}.", key_path="params.channels")
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:  # pragma: no cover - scikit-learn is a dependency
            raise ConfigError("the Digits dataset needs scikit-learn: pip install scikit-learn.") from exc
        bunch = load_digits()
        pixels = np.clip(bunch.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
        order = torch.randperm(len(pixels), generator=torch.Generator().manual_seed(int(split_seed))).numpy()
        num_val = int(round(len(pixels) * float(val_fraction)))
        chosen = {"train": order[num_val:], "val": order[:num_val], "all": np.arange(len(pixels))}[split]
        mode = "RGB" if channels == 3 else "L"
        size = (int(image_size), int(image_size))
        self.images = [Image.fromarray(pixels[i]).resize(size, Image.BILINEAR).convert(mode) for i in chosen]
        self.targets = [int(t) for t in bunch.target[chosen]]
        self.classes = [str(d) for d in range(10)]
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image, target = self.images[index], self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target
