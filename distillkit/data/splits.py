"""``random_split`` in a dataset split (torchdistill 0.x): one dataset cut at random into sub datasets, each
with its own ``dataset_id`` and transforms (a validation split held out of a training set)::

    splits:
      dummy:
        dataset_id: 'dummy'
        params: {root: ..., train: True}
        random_split:
          lengths: [0.9, 0.1]          # fractions or counts
          generator_seed: 42
          sub_splits:
            - {dataset_id: 'cifar10/train', transform_params: [...]}
            - {dataset_id: 'cifar10/val', transform_params: [...]}

Lengths are scaled to the dataset's size as torchdistill does (``int(l / sum * n)``, the last one taking the
rest), so the same seed gives the same samples; each sub dataset holds its own copy of the dataset, so its
transforms are its own.
"""
from __future__ import annotations

import copy
from typing import Dict, List

import torch
from torch.utils.data import Subset, random_split

from ..errors import ConfigError
from .transforms import build_transform


def split_lengths(lengths: List[float], total: int) -> List[int]:
    """The sizes of the sub datasets, torchdistill's way."""
    whole = sum(lengths)
    if whole == total:
        return [int(n) for n in lengths]
    sizes = [int((n / whole) * total) for n in lengths]
    if len(sizes) > 1 and sum(sizes) != total:
        sizes[-1] = total - sum(sizes[:-1])
    return sizes


def split_dataset(dataset, config: dict, key_path: str) -> Dict[str, Subset]:
    """``{dataset_id: Subset}`` of the ``random_split`` block ``config`` (at ``key_path``)."""
    lengths, sub_splits = config.get("lengths"), config.get("sub_splits")
    if not isinstance(lengths, list) or not isinstance(sub_splits, list) or len(lengths) != len(sub_splits):
        raise ConfigError("random_split needs 'lengths' and 'sub_splits', lists of the same length.",
                          key_path=key_path)
    seed = config.get("generator_seed")
    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
    subsets = random_split(dataset, split_lengths(lengths, len(dataset)), generator=generator)
    out = {}
    for index, (subset, sub_split) in enumerate(zip(subsets, sub_splits)):
        path = f"{key_path}.sub_splits.{index}"
        if not isinstance(sub_split, dict) or not sub_split.get("dataset_id"):
            raise ConfigError("each sub split needs a dataset_id (and usually transform_params).", key_path=path)
        subset.dataset = copy.deepcopy(subset.dataset)
        for key, attribute in (("transform_params", "transform"), ("target_transform_params", "target_transform")):
            built = build_transform(sub_split.get(key), f"{path}.{key}")
            if built is not None:
                setattr(subset.dataset, attribute, built)
        out[sub_split["dataset_id"]] = subset
    return out
