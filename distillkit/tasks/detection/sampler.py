"""Aspect-ratio grouping of detection images (torchvision's detection reference; torchdistill's
``custom.sampler`` / 0.x ``GroupedBatchSampler``).

:func:`create_aspect_ratio_groups` puts each image in a bin of ``width / height`` with edges
``2 ** linspace(-1, 1, 2 k + 1)`` (``k = aspect_ratio_group_factor``; one edge, 1.0, for ``k = 0``), so the
images of a batch have similar shapes and the model pads less.
"""
from __future__ import annotations

import bisect
from typing import List

import numpy as np
import torch


def _base(dataset):
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    return dataset


def compute_aspect_ratios(dataset) -> List[float]:
    """``width / height`` of every sample: from the annotation file when the dataset knows its image sizes
    (``image_wh(i)``), else by loading each image."""
    indices = list(range(len(dataset)))
    if isinstance(dataset, torch.utils.data.Subset):
        base, indices = _base(dataset), list(dataset.indices)
    else:
        base = dataset
    ratios = []
    for index in indices:
        if hasattr(base, "image_wh"):
            width, height = base.image_wh(index)
        else:
            height, width = base[index][0].shape[-2:]
        ratios.append(float(width) / float(height))
    return ratios


def create_aspect_ratio_groups(dataset, aspect_ratio_group_factor: int = 0) -> List[int]:
    """The group (aspect-ratio bin) of each sample of ``dataset``."""
    bins = sorted((2 ** np.linspace(-1, 1, 2 * aspect_ratio_group_factor + 1)).tolist()
                  if aspect_ratio_group_factor > 0 else [1.0])
    return [bisect.bisect_right(bins, ratio) for ratio in compute_aspect_ratios(dataset)]
