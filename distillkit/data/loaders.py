"""Data loaders from ``train_data_loader`` / ``val_data_loader`` / ``test_data_loader`` blocks.

Loader keys (torchdistill 0.x): ``dataset_id``, ``random_sample``, ``batch_size``,
``num_workers``, ``cache_output``; distillkit adds ``pin_memory``, ``drop_last``,
``persistent_workers``, ``prefetch_factor`` and ``repeated_aug: N`` (timm's
repeated-augmentation sampler, DeiT's setting is 3); torchdistill's ``batch_sampler: GroupedBatchSampler``
batches images of similar aspect ratios (:mod:`.grouped_batches`).  Under torch.distributed the
training loader shards with ``DistributedSampler`` (call ``set_epoch``) and the
evaluation loader with :class:`ShardSampler`, which counts every sample once.
"""
from __future__ import annotations

import logging
from typing import Dict

import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
from torch.utils.data.distributed import DistributedSampler

from ..config.schema import LoaderSettings
from ..errors import ConfigError, nearest_names
from ..registry import COLLATE_FNS
from .batch import collate_batch
from .grouped_batches import grouped_batch_sampler
from .replay import ViewRecordingDataset
from .samplers import ReplaySampler, ResumableSampler, ShardSampler
from .shards import build_stream_loader
from .decoding import decoded_dataset, resolve_decode
from .wrappers import wrap_dataset

logger = logging.getLogger(__name__)


def build_loader(settings: LoaderSettings, datasets: Dict[str, object], *, training: bool, rank: int = 0,
                 world_size: int = 1, seed: int = 0, pin_memory: bool = False, replay_plan=None,
                 collate=collate_batch) -> DataLoader:
    """A DataLoader for one loader block; ``training`` selects shuffling and the sampler kind; ``collate``: the
    task's collate function, unless the block names one (``collate_fn``, the collate-function registry).
    Batches are ``(images, targets, supp_dict)``; with a ``replay_plan`` (the teacher cache) ``supp_dict``
    holds each view's ``index``, ``params`` and ``row``."""
    key_path = settings.key_path
    if settings.dataset_id not in datasets:
        raise ConfigError(f"dataset_id {settings.dataset_id!r} is not declared under datasets.",
                          key_path=f"{key_path}.dataset_id",
                          candidates=nearest_names(settings.dataset_id, datasets))
    dataset = source = datasets[settings.dataset_id]
    if settings.collate_fn:
        collate = COLLATE_FNS.resolve(settings.collate_fn, key_path=f"{key_path}.collate_fn")
    # decode: auto reads images alone; a task's own collate (masks, boxes) keeps torchvision's path
    mode = "pil" if settings.decode == "auto" and collate is not collate_batch else settings.decode
    decode = resolve_decode(mode, dataset, bool(settings.dataset_wrapper), f"{key_path}.decode")
    if getattr(dataset, "streaming", False):  # TarShards: a loader of its own (data/shards.py)
        return build_stream_loader(settings, dataset, decode, training=training, rank=rank, world_size=world_size,
                                   seed=seed, pin_memory=pin_memory, replay_plan=replay_plan)
    if decode != "pil":  # the view computed from the file's bytes (data/decoding.py)
        dataset, collate = decoded_dataset(dataset, decode, f"{key_path}.decode", replay_plan)
    if settings.dataset_wrapper:
        if replay_plan is not None:
            raise ConfigError("a dataset_wrapper and train.teacher_cache cannot be combined: the cache records the "
                              "plain dataset's views.", key_path=f"{key_path}.dataset_wrapper")
        dataset = wrap_dataset(dataset, settings.dataset_wrapper, f"{key_path}.dataset_wrapper")
    if settings.cache_output:
        logger.warning("%s.cache_output is ignored: a cache that ignores augmentation gives the student targets "
                       "for a view it never saw; train.teacher_cache records each view with the teacher's output.",
                       key_path)
    grouped = bool(settings.batch_sampler) and settings.batch_sampler.get("type") == "GroupedBatchSampler"
    if grouped and not training:
        logger.info("%s.batch_sampler: evaluation batches are not grouped by aspect ratio (each sample is counted "
                    "once, in order).", key_path)
        grouped = False
    if grouped and replay_plan is not None:
        raise ConfigError("a GroupedBatchSampler and train.teacher_cache cannot be combined: the cache replays "
                          "single views, not grouped batches.", key_path=f"{key_path}.batch_sampler")
    shuffle = training if settings.random_sample is None else settings.random_sample
    if training and settings.repeated_aug > 1:
        from timm.data.distributed_sampler import RepeatAugSampler

        sampler = RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle,
                                   num_repeats=settings.repeated_aug)
    elif world_size > 1 and training:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed)
    elif world_size > 1:
        sampler = ShardSampler(dataset, rank, world_size)
    elif shuffle:
        sampler = RandomSampler(dataset, generator=torch.Generator().manual_seed(seed))
    else:
        sampler = SequentialSampler(dataset)
    if grouped:  # training images of similar aspect ratios batched together (detection)
        batches = grouped_batch_sampler(settings.batch_sampler.get("params") or {}, source, sampler,
                                        settings.batch_size, f"{key_path}.batch_sampler",
                                        getattr(datasets, "built", None))
        return _with_batches(DataLoader(dataset, batch_sampler=ResumableSampler(batches, items_per_step=1),
                                        collate_fn=collate, **_worker_options(settings, pin_memory)), settings)
    if training:
        sampler = ResumableSampler(sampler)
    if replay_plan is not None:
        dataset = ViewRecordingDataset(dataset, replay_plan) if decode == "pil" else dataset  # records itself
        sampler = ReplaySampler(sampler)
    loader = DataLoader(dataset, batch_size=settings.batch_size, sampler=sampler, drop_last=settings.drop_last,
                        collate_fn=collate, **_worker_options(settings, pin_memory))
    return _with_batches(loader, settings) if training else loader


def _with_batches(loader: DataLoader, settings: LoaderSettings) -> DataLoader:
    """A training loader that yields at least one batch, or the error naming why it yields none."""
    if len(loader) == 0:
        raise ConfigError(f"this training loader yields no batch: a dataset of {len(loader.dataset)} samples and "
                          f"batch_size {settings.batch_size}, with whole batches only (drop_last, or a grouped "
                          f"batch sampler).", key_path=f"{settings.key_path}.batch_size",
                          hint="Lower the batch size, or give the dataset more samples.")
    return loader


def _worker_options(settings: LoaderSettings, pin_memory: bool) -> dict:
    """The DataLoader's worker and memory keywords of a loader block."""
    options = {"num_workers": settings.num_workers,
               "pin_memory": pin_memory if settings.pin_memory is None else settings.pin_memory}
    if settings.num_workers > 0:
        options["persistent_workers"] = settings.persistent_workers
        if settings.prefetch_factor:
            options["prefetch_factor"] = settings.prefetch_factor
    return options
