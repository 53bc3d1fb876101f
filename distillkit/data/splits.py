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


def random_split_dataset(dataset, lengths=(9, 1), generator_seed=None, sub_splits_configs=None,
                         dataset_id=None) -> List[Subset]:
    """The sub datasets of ``dataset`` (torchdistill 1.x's ``split_dataset``, which a 1.x config names with
    ``!import_call``): ``sub_splits_configs[i]`` gives sub dataset i its ``transform`` / ``target_transform`` /
    ``transforms`` objects."""
    generator = torch.Generator().manual_seed(int(generator_seed)) if generator_seed is not None else None
    subsets = random_split(dataset, split_lengths(list(lengths), len(dataset)), generator=generator)
    for subset, sub_split in zip(subsets, sub_splits_configs or []):
        subset.dataset = copy.deepcopy(subset.dataset)
        for attribute in ("transform", "target_transform", "transforms"):
            if (sub_split or {}).get(attribute) is not None and hasattr(subset.dataset, attribute):
                setattr(subset.dataset, attribute, sub_split[attribute])
    return subsets


def split_dataset(dataset, config: dict, key_path: str) -> Dict[str, Subset]:
    """``{dataset_id: Subset}`` of the 0.x ``random_split`` block ``config`` (at ``key_path``)."""
    lengths, sub_splits = config.get("lengths"), config.get("sub_splits")
    if not isinstance(lengths, list) or not isinstance(sub_splits, list) or len(lengths) != len(sub_splits):
        raise ConfigError("random_split needs 'lengths' and 'sub_splits', lists of the same length.",
                          key_path=key_path)
    built = []
    for index, sub_split in enumerate(sub_splits):
        path = f"{key_path}.sub_splits.{index}"
        if not isinstance(sub_split, dict) or not sub_split.get("dataset_id"):
            raise ConfigError("each sub split needs a dataset_id (and usually transform_params).", key_path=path)
        built.append({"transform": build_transform(sub_split.get("transform_params"), f"{path}.transform_params"),
                      "target_transform": build_transform(sub_split.get("target_transform_params"),
                                                          f"{path}.target_transform_params")})
    subsets = random_split_dataset(dataset, lengths, config.get("generator_seed"), built)
    return {sub_split["dataset_id"]: subset for sub_split, subset in zip(sub_splits, subsets)}
