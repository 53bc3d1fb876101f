"""Batches of images with similar aspect ratios (torchvision's detection reference ``GroupedBatchSampler``, which
torchdistill's detection configs name as the training loader's ``batch_sampler``).

:func:`create_aspect_ratio_groups` puts each image in a bin of ``width / height`` with edges
``2 ** linspace(-1, 1, 2 k + 1)`` (``k = aspect_ratio_group_factor``; one edge, 1.0, for ``k = 0``), so the
images of a batch have similar shapes and the detector pads less.  :class:`GroupedBatchSampler` draws indices
from the loader's sampler (shuffled, split across processes) and emits a batch whenever one group has
``batch_size`` of them; when the pass ends it completes the fullest leftover groups with the group's earlier
indices, so that every pass has ``len(sampler) // batch_size`` batches on every process.
"""
from __future__ import annotations

import bisect
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from ..errors import ConfigError
from ..utils import resolve_tags
from .samplers import WrappingSampler


def _base_and_indices(dataset):
    """The dataset under any ``Subset`` layers, and the base index of each sample of ``dataset``."""
    indices = list(range(len(dataset)))
    while isinstance(dataset, torch.utils.data.Subset):
        indices = [dataset.indices[i] for i in indices]
        dataset = dataset.dataset
    return dataset, indices


def compute_aspect_ratios(dataset) -> List[float]:
    """``width / height`` of every sample: from the annotations when the dataset knows its image sizes
    (``image_wh(i)``, or a pycocotools ``coco`` with ``ids`` as torchvision's CocoDetection has), else by loading
    each image."""
    base, indices = _base_and_indices(dataset)
    ratios = []
    for index in indices:
        if hasattr(base, "image_wh"):
            width, height = base.image_wh(index)
        elif hasattr(base, "coco") and hasattr(base, "ids"):
            info = base.coco.imgs[base.ids[index]]
            width, height = info["width"], info["height"]
        else:
            height, width = base[index][0].shape[-2:]
        ratios.append(float(width) / float(height))
    return ratios


def create_aspect_ratio_groups(dataset, aspect_ratio_group_factor: int = 0) -> List[int]:
    """The group (aspect-ratio bin, ``bisect_right`` on the edges) of each sample of ``dataset``."""
    edges = sorted((2 ** np.linspace(-1, 1, 2 * aspect_ratio_group_factor + 1)).tolist()
                   if aspect_ratio_group_factor > 0 else [1.0])
    return [bisect.bisect_right(edges, ratio) for ratio in compute_aspect_ratios(dataset)]


class GroupedBatchSampler(WrappingSampler):
    """Batches of ``batch_size`` indices of ``sampler`` that share a group id (``group_ids[index]``).

    A batch is emitted as soon as its group fills, in the order the sampler's indices fill them.  After the last
    index, the leftover groups, fullest first (ties: the group whose batch opened first), are completed with
    that group's indices of this pass from its first (repeated if too few), until ``len(sampler) //
    batch_size`` batches were emitted; what is still left is dropped.  ``set_epoch`` and ``generator`` are the
    sampler's, so the batches are shuffled and resumed as the loader's sampler is."""

    def __init__(self, sampler, group_ids: Sequence[int], batch_size: int):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sampler = sampler
        self.group_ids = list(group_ids)
        self.batch_size = int(batch_size)

    def __iter__(self):
        open_batches: Dict[int, List[int]] = {}
        seen: Dict[int, List[int]] = {}
        emitted = 0
        for index in self.sampler:
            group = self.group_ids[index]
            seen.setdefault(group, []).append(index)
            batch = open_batches.setdefault(group, [])
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                emitted += 1
                del open_batches[group]
                open_batches[group] = []  # the group's next batch opens now, at the end of the order (ties)
        missing = len(self) - emitted
        for group, batch in sorted(open_batches.items(), key=lambda item: len(item[1]), reverse=True):
            if missing <= 0:
                break
            earlier = seen[group]
            need = self.batch_size - len(batch)
            yield batch + [earlier[i % len(earlier)] for i in range(need)]
            missing -= 1

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size


def grouped_batch_sampler(params: dict, dataset, sampler, batch_size: int, key_path: str,
                          memo: Optional[dict] = None):
    """The ``GroupedBatchSampler`` of a loader's ``batch_sampler.params`` over ``sampler`` (``batch_size``: the
    loader's, which is the params' when it names one): ``group_ids`` as given
    (torchdistill 1.x: ``!import_call custom.sampler.create_aspect_ratio_groups``, built with ``memo`` so that
    its ``dataset`` alias is the dataset already built), else from ``aspect_ratio_group_factor`` (0.x)."""
    unknown = sorted(set(params) - {"batch_size", "group_ids", "aspect_ratio_group_factor"})
    if unknown:
        raise ConfigError(f"GroupedBatchSampler takes batch_size, group_ids and aspect_ratio_group_factor, not "
                          f"{', '.join(unknown)}.", key_path=f"{key_path}.params.{unknown[0]}")
    if params.get("group_ids") is not None:
        group_ids, where = list(resolve_tags(params["group_ids"], memo)), f"{key_path}.params.group_ids"
    else:
        where = f"{key_path}.params.aspect_ratio_group_factor"
        group_ids = create_aspect_ratio_groups(dataset, int(params.get("aspect_ratio_group_factor") or 0))
    if len(group_ids) != len(dataset):
        raise ConfigError(f"{len(group_ids)} group ids for a dataset of {len(dataset)} samples: the groups must be "
                          f"computed on the loader's own dataset (one id per sample).", key_path=where)
    return GroupedBatchSampler(sampler, group_ids, batch_size)
