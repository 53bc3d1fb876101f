"""What the segmentation datasets share: a joint ``transforms`` (``CustomCompose``, default ``CustomToTensor``) on
``(image, mask)``, then an optional image-only ``transform`` (the ``transform_params`` a dataset split may give)."""
from __future__ import annotations

from torch.utils.data import Dataset

from .transforms import CustomToTensor


class JointTransformDataset(Dataset):
    def __init__(self, transforms=None, transform=None):
        self.transforms = transforms if transforms is not None else CustomToTensor()
        self.transform = transform

    def apply(self, image, mask):
        image, mask = self.transforms(image, mask)
        return (self.transform(image) if self.transform is not None else image), mask
