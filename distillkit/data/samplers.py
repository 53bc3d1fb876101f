"""Samplers of the loaders: sharded evaluation, resumable training passes, teacher-cache replay."""
from __future__ import annotations

import math
from typing import List, Optional

from torch.utils.data import Sampler


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


class WrappingSampler(Sampler):
    """A sampler over ``self.sampler`` that passes the trainer's ``set_epoch`` and ``generator`` on to it."""

    sampler: Sampler

    @property
    def generator(self):
        return getattr(self.sampler, "generator", None)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


class ResumableSampler(WrappingSampler):
    """Wraps the training sampler; ``skip_next(n)`` drops the first n items of the next pass only, so an
    epoch interrupted after k batches resumes with batch k + 1 without loading the skipped samples.
    ``items_per_step``: the items of one training step (None: the loader's batch size; 1 when the wrapped
    sampler yields whole batches, as a batch sampler does)."""

    def __init__(self, sampler, items_per_step: Optional[int] = None):
        self.sampler = sampler
        self.items_per_step = items_per_step
        self.skip = 0

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


def training_sampler(loader):
    """What takes a training loader's ``set_epoch`` and ``skip_next``: its batch sampler when that is its own
    (grouped batches), else its sampler."""
    batches = getattr(loader, "batch_sampler", None)
    return batches if isinstance(batches, ResumableSampler) else getattr(loader, "sampler", None)


class ReplaySampler:
    """Wraps the training sampler (a ResumableSampler): recording epochs iterate it; a replayed epoch yields
    ``(index, params, row)`` for each recorded row in recorded order."""

    def __init__(self, sampler):
        self.sampler = sampler
        self.rows: Optional[List[tuple]] = None

    def __getattr__(self, name):  # generator, set_epoch: the wrapped sampler's
        return getattr(self.__dict__["sampler"], name)

    def skip_next(self, count: int) -> None:
        self.sampler.skip_next(count)

    def __iter__(self):
        if self.rows is None:
            yield from self.sampler
            return
        yield from self.rows[self.sampler.take_skip():]

    def __len__(self) -> int:
        return len(self.rows) if self.rows is not None else len(self.sampler)
