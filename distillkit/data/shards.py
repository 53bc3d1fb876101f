"""``TarShards``: a WebDataset-style dataset of tar shards, streamed, sharded over ranks and loader workers.

A shard folder (written by ``distillkit prepare``, :mod:`distillkit.tools.prepare`) holds ``index.json``
(``classes``, and each shard's file name and sample count) and ``shard-NNNNNN.tar`` files; a sample is the
tar members that share a key: ``<key>.jpg`` (or .png, ...) and ``<key>.cls`` (the class index as text),
as in WebDataset; any tar tool reads them, and so does the standard library's ``tarfile``.  ``root`` may
also be a WebDataset shard pattern or URL (brace ranges, ``pipe:``, ``s3://``), read through webdataset:
:mod:`distillkit.data.shard_sources`.

Each epoch (training) the shard order is shuffled with ``seed + epoch``; the stream of all samples in that
order is cut into ``world_size`` contiguous ranges of ``ceil(N / world_size)`` samples (the last wraps to
the start, as DistributedSampler pads), each rank's range into ``num_workers`` contiguous ranges of equal
length (padded the same way), and each worker reads its range front to back (a few shards, sequentially:
what shared file systems and object stores serve well) through a shuffle buffer of ``shuffle_buffer``
samples.  Every worker thus yields the same number of batches, and batch ``t`` of an epoch comes from
worker ``t % num_workers``.  Evaluation splits the unshuffled stream without padding: every sample once.

Augmentation is seeded per sample from ``(seed, epoch, position in the padded stream)`` (torch's generator,
and Python's ``random`` with ``decode: pil``), not from the worker's generator, so a view does not depend on
which worker or rank reads it.  What is reproducible:

* an epoch is a pure function of (seed, epoch, world size, num_workers, batch size, shuffle_buffer): the
  same samples in the same order with the same augmentation, run after run;
* a run resumed at an epoch boundary continues exactly as the uninterrupted run;
* a run stopped inside an epoch (SIGTERM checkpoint) resumes with the next batch: the workers skip the
  samples already trained on (their bytes are read, not decoded) and the rest of the epoch is identical,
  provided world size, num_workers and batch size are unchanged.

Not supported with shards: ``train.teacher_cache`` (it replays views by sample index) and ``repeated_aug``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
from contextlib import contextmanager
from typing import List, Optional, Tuple

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..errors import ConfigError
from ..registry import register_dataset
from .fast_decode import ViewDecoder
from .decoding import check_backend
from .shard_sources import INDEX, read_samples, resolve

FORMAT = "distillkit-shards/1"
def _seed(*parts) -> int:
    digest = hashlib.blake2b("/".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@contextmanager
def seeded_rng(seed: int, all_generators: bool):
    """torch's CPU generator (and Python's ``random``, which timm's augmentations use, when ``all_generators``)
    seeded for one sample: a sample's augmentation depends on its seed alone (NumPy's global generator is not
    reseeded).  In a loader worker the generators are the worker's own and are simply reseeded; in the training
    process (``num_workers: 0``) they are restored afterwards."""
    in_worker = get_worker_info() is not None
    saved = None if in_worker else (torch.get_rng_state(), random.getstate() if all_generators else None)
    torch.default_generator.manual_seed(seed)
    if all_generators:
        random.seed(seed)
    try:
        yield
    finally:
        if saved is not None:
            torch.set_rng_state(saved[0])
            if all_generators:
                random.setstate(saved[1])


def _runs(positions: List[int]) -> List[Tuple[int, int]]:
    """Consecutive positions as ``(start, length)`` runs."""
    runs: List[List[int]] = []
    for p in positions:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    return [(a, b) for a, b in runs]


@register_dataset("TarShards")
class TarShards(IterableDataset):
    """Params: ``root`` (the folder with ``index.json``, or a WebDataset shard pattern / URL / list: see
    :mod:`distillkit.data.shard_sources`), ``index`` (for a pattern: an index giving the sample counts),
    ``shuffle_buffer`` (samples; 0 turns it off), ``transform_params`` (as ImageFolder; with the loader's
    ``decode: fast`` computed from the bytes)."""

    streaming = True
    checks_own_root = True  # a pattern or URL root is not a path that exists (datasets.py)

    def __init__(self, root, transform=None, target_transform=None, shuffle_buffer: int = 1000,
                 index: Optional[str] = None):
        if isinstance(root, str) and os.path.isdir(root):
            self.shards, self.classes = self._read_folder(root)
        else:  # a shard pattern, list or URL (shard_sources.py)
            self.shards, self.classes = resolve(root, index, "params")
        self.root = root if isinstance(root, str) else list(root)
        self.total = sum(count for _, count in self.shards)
        self.transform, self.target_transform = transform, target_transform
        self.shuffle_buffer = int(shuffle_buffer)
        # set by configure() (the loader): where this copy reads, and how
        self.rank, self.world_size, self.seed, self.training = 0, 1, 0, False
        self.batch_size, self.num_workers, self.decoder = 1, 0, None
        self.state = torch.zeros(4, dtype=torch.int64).share_memory_()  # epoch, skip batches, its pass, this pass

    @staticmethod
    def _read_folder(root: str):
        """``([(shard path, count)], classes)`` of a folder written by ``distillkit prepare``."""
        index_path = os.path.join(root, INDEX)
        if not os.path.isfile(index_path):
            raise ConfigError(f"{index_path!r} does not exist: TarShards reads a folder written by "
                              f"'distillkit prepare' (index.json and shard-*.tar), or a shard pattern such as "
                              f"'{os.path.join(root, 'train-{000000..000009}.tar')}'.", key_path="params.root",
                              hint="distillkit prepare IMAGE_FOLDER OUT_DIR [--max-side 320] writes one.")
        with open(index_path) as handle:
            index = json.load(handle)
        if index.get("format") != FORMAT:
            raise ConfigError(f"{index_path!r} is not a {FORMAT} index (format {index.get('format')!r}).",
                              key_path="params.root")
        shards = [(os.path.join(root, s["name"]), int(s["count"])) for s in index["shards"]]
        return shards, list(index.get("classes") or [])

    def __len__(self) -> int:
        return self.total

    def configure(self, *, rank: int, world_size: int, seed: int, training: bool, batch_size: int,
                  num_workers: int, decoder) -> "TarShards":
        import copy

        stream = copy.copy(self)
        stream.rank, stream.world_size, stream.seed, stream.training = rank, world_size, seed, training
        stream.batch_size, stream.num_workers, stream.decoder = batch_size, num_workers, decoder
        stream.state = torch.zeros(4, dtype=torch.int64).share_memory_()
        return stream

    # ------------------------------------------------------------------ layout of an epoch
    def shard_order(self, epoch: int) -> List[int]:
        if not self.training:
            return list(range(len(self.shards)))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.shards), generator=generator).tolist()

    def samples_per_worker(self) -> int:
        workers = max(1, self.num_workers)
        return math.ceil(math.ceil(self.total / self.world_size) / workers)

    def worker_positions(self, worker: int, workers: int) -> List[int]:
        """Positions in the (padded) stream this worker reads, in order."""
        n_total = self.total
        if self.training:
            per_rank = math.ceil(n_total / self.world_size)
            per_worker = math.ceil(per_rank / workers)
            first = self.rank * per_rank
            return [first + (worker * per_worker + j) % per_rank for j in range(per_worker)]
        start, end = self.rank * n_total // self.world_size, (self.rank + 1) * n_total // self.world_size
        length = end - start
        return list(range(start + worker * length // workers, start + (worker + 1) * length // workers))

    def _read(self, order: List[int], positions: List[int]):
        """``(position, key, bytes, class)`` for each position (taken modulo N), in order, shard by shard."""
        starts, offset = [], 0
        for shard in order:
            starts.append(offset)
            offset += self.shards[shard][1]
        data_positions = [p % self.total for p in positions]
        cursor = 0
        for start, length in _runs(data_positions):
            end = start + length
            for slot, shard in enumerate(order):
                s0, count = starts[slot], self.shards[shard][1]
                lo, hi = max(start, s0), min(end, s0 + count)
                if lo >= hi:
                    continue
                for key, data, label in read_samples(self.shards[shard][0], lo - s0, hi - lo):
                    yield positions[cursor], key, data, label
                    cursor += 1

    def _shuffled(self, items, rng: Optional[random.Random]):
        if rng is None or self.shuffle_buffer <= 1:
            yield from items
            return
        buffer = []
        for item in items:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(item)
                continue
            pick = rng.randrange(len(buffer))
            buffer[pick], item = item, buffer[pick]
            yield item
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        epoch, skip_batches, skip_pass, this_pass = (int(v) for v in self.state.tolist())
        if skip_pass != this_pass:
            skip_batches = 0
        # batch t of a pass comes from loader worker t % workers; resuming after k batches, loader worker w
        # plays the part of worker (w + k) % workers, which skips the batches it had delivered
        worker = (worker + skip_batches) % workers
        skip = len(range(worker, skip_batches, workers)) * self.batch_size
        order = self.shard_order(epoch)
        rng = random.Random(_seed(self.seed, epoch, self.rank, worker, "buffer")) if self.training else None
        all_generators = self.decoder is None or self.decoder.mode == "pil"
        for count, (position, key, data, label) in enumerate(self._shuffled(
                self._read(order, self.worker_positions(worker, workers)), rng)):
            if count < skip:
                continue
            with seeded_rng(_seed(self.seed, epoch, position), all_generators):
                view, _ = self.decoder.sample(data)
            target = self.target_transform(label) if self.target_transform is not None else label
            yield view, target


class StreamControl:
    """The loader's ``sampler`` for a stream: the trainer's ``set_epoch`` and ``skip_next`` reach the workers
    through a shared tensor (persistent workers included)."""

    generator = None

    def __init__(self, stream: TarShards):
        self.stream = stream

    def set_epoch(self, epoch: int) -> None:
        self.stream.state[0] = int(epoch)

    def skip_next(self, count: int) -> None:
        """Skip the first ``count`` samples (whole batches) of the next pass only."""
        self.stream.state[1] = int(count) // self.stream.batch_size
        self.stream.state[2] = self.stream.state[3] + 1


class StreamLoader:
    """A DataLoader over a TarShards stream, with the attributes the trainer reads."""

    def __init__(self, stream: TarShards, loader: DataLoader, drop_last: bool):
        self.dataset, self.loader, self.drop_last = stream, loader, drop_last
        self.batch_size = loader.batch_size
        self.sampler = StreamControl(stream)

    def __len__(self) -> int:
        workers = max(1, self.dataset.num_workers)
        if self.dataset.training:
            per_worker = [self.dataset.samples_per_worker()] * workers
        else:
            per_worker = [len(self.dataset.worker_positions(w, workers)) for w in range(workers)]
        size = self.batch_size
        return sum(n // size if self.drop_last else math.ceil(n / size) for n in per_worker)

    def __iter__(self):
        self.dataset.state[3] += 1  # a new pass: before the workers start reading the state
        return iter(self.loader)


def build_stream_loader(settings, dataset: TarShards, decode: str, *, training: bool, rank: int, world_size: int,
                        seed: int, pin_memory: bool, replay_plan=None) -> StreamLoader:
    """The loader of a TarShards dataset (called by ``build_loader``)."""

    key_path = settings.key_path
    if replay_plan is not None:
        raise ConfigError(f"train.teacher_cache replays each view by its sample index, and the dataset "
                          f"{settings.dataset_id!r} ({key_path}.dataset_id) is a TarShards stream, read in shard "
                          f"order without indices; the two cannot be combined.", key_path="train.teacher_cache",
                          hint="Remove train.teacher_cache, or train from an ImageFolder (decode: fast keeps "
                               "the cache).")
    if settings.repeated_aug > 1:
        raise ConfigError("repeated_aug samples indices, and a TarShards dataset streams shards.",
                          key_path=f"{key_path}.repeated_aug")
    check_backend(decode, f"{key_path}.decode")
    decoder = ViewDecoder(dataset.transform, decode, f"{key_path}.decode")
    stream = dataset.configure(rank=rank, world_size=world_size, seed=seed, training=training,
                               batch_size=settings.batch_size, num_workers=settings.num_workers, decoder=decoder)
    options = {}
    if settings.num_workers > 0:
        options["persistent_workers"] = settings.persistent_workers
        if settings.prefetch_factor:
            options["prefetch_factor"] = settings.prefetch_factor
    loader = DataLoader(stream, batch_size=settings.batch_size, num_workers=settings.num_workers,
                        collate_fn=decoder.collate, drop_last=settings.drop_last,
                        pin_memory=pin_memory if settings.pin_memory is None else settings.pin_memory, **options)
    return StreamLoader(stream, loader, settings.drop_last)
