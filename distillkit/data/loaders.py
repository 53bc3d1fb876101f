"""Data loaders from ``train_data_loader`` / ``val_data_loader`` / ``test_data_loader`` blocks.

Loader keys (torchdistill 0.x): ``dataset_id``, ``random_sample``, ``batch_size``,
``num_workers``, ``cache_output``; distillkit adds ``pin_memory``, ``drop_last``,
``persistent_workers``, ``prefetch_factor`` and ``repeated_aug: N`` (timm's
repeated-augmentation sampler, DeiT's setting is 3).  Under torch.distributed the
training loader shards with ``DistributedSampler`` (call ``set_epoch``) and the
evaluation loader with :class:`ShardSampler`, which counts every sample once.
"""
from __future__ import annotations

import logging
import math
from typing import Dict, Optional

import torch
from torch.utils.data import DataLoader, RandomSampler, Sampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from ..errors import ConfigError, nearest_names

logger = logging.getLogger(__name__)


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...``: every sample on exactly one rank, none padded."""

    def __init__(self, dataset, rank: int, world_size: int):
        self.length = len(dataset)
        self.rank = rank
        self.world_size = world_size

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return max(0, math.ceil((self.length - self.rank) / self.world_size))


class ResumableSampler(Sampler):
    """Wraps the training sampler; ``skip_next(n)`` drops the first n indices of the next pass only, so an
    epoch interrupted after k batches resumes with batch k + 1 without loading the skipped samples."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.skip = 0

    @property
    def generator(self):
        return getattr(self.sampler, "generator", None)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def skip_next(self, count: int) -> None:
        self.skip = int(count)

    def take_skip(self) -> int:
        """The count set by :meth:`skip_next`, once: the pass after it starts from the beginning again."""
        skip, self.skip = self.skip, 0
        return skip

    def __iter__(self):
        skip = self.take_skip()
        for position, index in enumerate(self.sampler):
            if position >= skip:
                yield index

    def __len__(self) -> int:
        return len(self.sampler)


def build_loader(block: dict, datasets: Dict[str, object], key_path: str, *, training: bool,
                 rank: int = 0, world_size: int = 1, seed: int = 0, pin_memory: Optional[bool] = None,
                 replay_plan=None):
    """A DataLoader for one loader block; ``training`` selects shuffling and the sampler kind.
    With a ``replay_plan`` (the teacher cache) batches are ``(views, targets, {index, params, row})``."""
    dataset_id = block["dataset_id"]
    if dataset_id not in datasets:
        raise ConfigError(f"dataset_id {dataset_id!r} is not declared under datasets.",
                          key_path=f"{key_path}.dataset_id", candidates=nearest_names(dataset_id, datasets))
    dataset = datasets[dataset_id]
    if block.get("cache_output"):
        logger.warning("%s.cache_output is ignored: a cache that ignores augmentation gives the student targets "
                       "for a view it never saw; train.teacher_cache records each view with the teacher's output.",
                       key_path)
    shuffle = bool(block.get("random_sample", training))
    if training and int(block.get("repeated_aug") or 0) > 1:
        from timm.data.distributed_sampler import RepeatAugSampler

        sampler = RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                   num_repeats=int(block["repeated_aug"]))
    elif world_size > 1 and training:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    elif world_size > 1:
        sampler = ShardSampler(dataset, rank, world_size)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    if training:
        sampler = ResumableSampler(sampler)
    if replay_plan is not None:
        from ..engine.teacher_cache import ReplaySampler
        from .replay import ViewRecordingDataset

        dataset, sampler = ViewRecordingDataset(dataset, replay_plan), ReplaySampler(sampler)
    num_workers = int(block.get("num_workers") or 0)
    options = {}
    if num_workers > 0:
        options["persistent_workers"] = bool(block.get("persistent_workers", False))
        if block.get("prefetch_factor"):
            options["prefetch_factor"] = int(block["prefetch_factor"])
    return DataLoader(dataset, batch_size=int(block["batch_size"]), sampler=sampler, num_workers=num_workers,
                      pin_memory=bool(block.get("pin_memory", pin_memory if pin_memory is not None else False)),
                      drop_last=bool(block.get("drop_last", False)), **options)
