"""Dataset wrappers: a dataset whose items gain a third element, a dict of extras for the loss (``supp_dict``).

Built as ``cls(org_dataset, **params)`` from ``DATASET_WRAPPERS``; each item is ``(sample, target, supp_dict)``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.functional import pil_to_tensor

from ..errors import ConfigError
from ..registry import DATASET_WRAPPERS, register_dataset_wrapper
from ..utils import call_with_params


class BaseDatasetWrapper(Dataset):
    """``(sample, target, {})`` for each item of ``org_dataset``."""

    def __init__(self, org_dataset):
        self.org_dataset = org_dataset

    def __getitem__(self, index):
        sample, target = self.org_dataset[index]
        return sample, target, {}

    def __len__(self):
        return len(self.org_dataset)


def dataset_labels(dataset, wrapper: str):
    """``(labels, num_classes)`` from a dataset's ``targets`` and ``classes`` (torchvision's attributes)."""
    labels = getattr(dataset, "targets", None)
    classes = getattr(dataset, "classes", None)
    if labels is None or classes is None:
        raise ConfigError(f"{wrapper} needs a dataset with 'targets' (one class index per sample) and 'classes' "
                          f"(as torchvision's ImageFolder and CIFAR have); {type(dataset).__name__} lacks "
                          f"{' and '.join(n for n, v in (('targets', labels), ('classes', classes)) if v is None)}.")
    return [int(label) for label in labels], len(classes)


@register_dataset_wrapper(name="CRDDatasetWrapper")
class CRDDatasetWrapper(BaseDatasetWrapper):
    """Contrastive representation distillation's sampling (Tian, Krishnan & Isola, ICLR 2020).

    Each item is ``(sample, target, {'pos_idx': index, 'contrast_idx': [positive, negative_1..K]})``: the
    ``K = num_negative_samples`` negatives are drawn (with ``numpy.random``) among the samples of the other
    classes, without replacement unless there are fewer than K.  ``mode='exact'``: the positive is the sample
    itself; ``'relax'``: a random sample of its class (``pos_idx`` stays the sample's own index, as in the
    authors' code).  ``0 < ratio < 1`` keeps a random fraction of each class's negatives (computed once).
    Registered also as ``ContrastiveDataset``, its name in torchdistill 0.x.
    """

    def __init__(self, org_dataset, num_negative_samples, mode="exact", ratio=1.0):
        super().__init__(org_dataset)
        if mode not in ("exact", "relax"):
            raise ConfigError(f"CRDDatasetWrapper: mode={mode!r}; expected 'exact' or 'relax'.")
        if isinstance(num_negative_samples, bool) or not isinstance(num_negative_samples, int) \
                or num_negative_samples < 1:
            raise ConfigError(f"CRDDatasetWrapper: num_negative_samples must be a positive integer, found "
                              f"{num_negative_samples!r}.")
        self.num_negative_samples = num_negative_samples
        self.mode = mode
        labels, num_classes = dataset_labels(org_dataset, "CRDDatasetWrapper")
        labels = np.asarray(labels)
        self.cls_positives = [np.flatnonzero(labels == c) for c in range(num_classes)]
        # the other classes' samples, class by class (this order fixes which negatives a seed draws)
        self.cls_negatives = [np.concatenate([self.cls_positives[other] for other in range(num_classes)
                                              if other != c] or [np.zeros(0, dtype=np.int64)])
                              for c in range(num_classes)]
        if 0 < ratio < 1:
            kept = int(len(self.cls_negatives[0]) * ratio)
            self.cls_negatives = [np.random.permutation(negatives)[:kept] for negatives in self.cls_negatives]

    def __getitem__(self, index):
        sample, target, supp_dict = super().__getitem__(index)
        target_class = int(target)
        positive = index if self.mode == "exact" else np.random.choice(self.cls_positives[target_class], 1)[0]
        negatives = self.cls_negatives[target_class]
        replace = self.num_negative_samples > len(negatives)
        negative_idx = np.random.choice(negatives, self.num_negative_samples, replace=replace)
        supp_dict["pos_idx"] = index
        supp_dict["contrast_idx"] = np.hstack((np.asarray([positive]), negative_idx))
        return sample, target, supp_dict


register_dataset_wrapper(CRDDatasetWrapper, name="ContrastiveDataset")


ROTATIONS = (0, 90, 180, 270)


def rotate(sample, angle: int):
    """``sample`` turned counter-clockwise by ``angle`` degrees: a PIL image (``rotate(angle, expand=True)``,
    as SSKD does) or a ``(..., H, W)`` tensor (``torch.rot90``)."""
    if angle == 0:
        return sample
    if isinstance(sample, torch.Tensor):
        return torch.rot90(sample, angle // 90, dims=(-2, -1))
    return sample.rotate(angle, expand=True)



@register_dataset_wrapper
class SSKDDatasetWrapper(Dataset):
    """Wraps a dataset so that each item is ``(views, target, {})`` with ``views`` the ``(4, C, H, W)`` stack of
    the transformed image and of its three rotations.  The wrapped dataset's ``transform`` is taken over (and
    set to None there) so that it applies to each rotated view, as torchdistill's wrapper does; views that are
    still PIL images after it become uint8 tensors."""

    def __init__(self, org_dataset: Dataset):
        self.org_dataset = copy.copy(org_dataset)  # the dataset itself keeps its transform (another stage uses it)
        self.transform = getattr(org_dataset, "transform", None)
        if hasattr(org_dataset, "transform"):
            self.org_dataset.transform = None

    def __len__(self) -> int:
        return len(self.org_dataset)

    def __getitem__(self, index: int):
        sample, target = self.org_dataset[index][:2]
        views = [rotate(sample, angle) for angle in ROTATIONS]
        if self.transform is not None:
            views = [self.transform(view) for view in views]
        views = [v if isinstance(v, torch.Tensor) else pil_to_tensor(v) for v in views]
        shapes = {tuple(v.shape) for v in views}
        if len(shapes) > 1:
            raise ConfigError(f"SSKDDatasetWrapper: the rotated views of sample {index} have different shapes "
                              f"{sorted(shapes)}; the image is not square, so give the dataset a transform that "
                              f"crops or resizes to a square size.")
        return torch.stack([v.detach() for v in views]), target, {}


def wrap_dataset(dataset, block: dict, key_path: str):
    """The loader's ``dataset_wrapper: {type, params}`` around ``dataset`` (torchdistill 0.x writes ``name`` for
    ``type``; 1.x ``key`` and ``kwargs``)."""
    name = block.get("type") or block.get("name") or block.get("key")
    params = block.get("params") or block.get("kwargs") or {}
    cls = DATASET_WRAPPERS.resolve(name, key_path=f"{key_path}.type")
    return call_with_params(cls, params, f"{key_path}.params", dataset)
