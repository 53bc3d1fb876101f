"""Augmentations recorded per sample and replayed exactly: what the teacher-output cache trains on.

A :class:`ReplayPlan` splits a torchvision pipeline into its random operations, whose
parameters it draws exactly as torchvision does (same calls, same random numbers, so a
recorded view equals the view the plain pipeline would give), and its deterministic
ones.  Parameters are a fixed-length list of integers per sample.  Only operations whose
parameters can be written down this way are accepted; anything else is refused, since
a replay that is not exact would give the student teacher targets for a view it never saw.
"""
from __future__ import annotations

import copy
from typing import List, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import transforms as T
from torchvision.transforms import functional as F

from ..errors import ConfigError

DETERMINISTIC = (T.Resize, T.CenterCrop, T.ToTensor, T.PILToTensor, T.Normalize, T.ConvertImageDtype, T.Grayscale)


class _ResizedCrop:
    slots = 4

    def __init__(self, op: T.RandomResizedCrop):
        self.op = op

    def sample(self, image) -> List[int]:
        return list(self.op.get_params(image, self.op.scale, self.op.ratio))

    def apply(self, image, params: Sequence[int]):
        i, j, h, w = params
        return F.resized_crop(image, i, j, h, w, self.op.size, self.op.interpolation, antialias=self.op.antialias)


class _Crop:
    slots = 4

    def __init__(self, op: T.RandomCrop):
        self.op = op

    def _pad(self, image):
        return image if self.op.padding is None else F.pad(image, self.op.padding, self.op.fill, self.op.padding_mode)

    def sample(self, image) -> List[int]:
        return list(self.op.get_params(self._pad(image), self.op.size))

    def apply(self, image, params: Sequence[int]):
        return F.crop(self._pad(image), *params)


class _Flip:
    slots = 1

    def __init__(self, op, flip):
        self.op, self.flip = op, flip

    def sample(self, image) -> List[int]:
        return [int(torch.rand(1) < self.op.p)]

    def apply(self, image, params: Sequence[int]):
        return self.flip(image) if params[0] else image


def _random_op(op):
    if isinstance(op, T.RandomResizedCrop):
        return _ResizedCrop(op)
    if isinstance(op, T.RandomCrop) and not op.pad_if_needed:
        return _Crop(op)
    if isinstance(op, T.RandomHorizontalFlip):
        return _Flip(op, F.hflip)
    if isinstance(op, T.RandomVerticalFlip):
        return _Flip(op, F.vflip)
    return None


def _flatten(transform) -> list:
    if transform is None:
        return []
    if isinstance(transform, T.Compose):
        return [step for inner in transform.transforms for step in _flatten(inner)]
    return [transform]


class ReplayPlan:
    """The steps of one pipeline: ``(random op or None, deterministic transform or None)``."""

    SUPPORTED = "RandomResizedCrop, RandomCrop (without pad_if_needed), RandomHorizontalFlip, RandomVerticalFlip, " \
                + ", ".join(cls.__name__ for cls in DETERMINISTIC)

    def __init__(self, transform, key_path: str = "transform_params"):
        self.steps = []
        for index, step in enumerate(_flatten(transform)):
            random_op = _random_op(step)
            if random_op is None and not isinstance(step, DETERMINISTIC):
                raise ConfigError(f"train.teacher_cache cannot replay {type(step).__name__} exactly (step {index} of "
                                  f"the training pipeline); replayable steps are {self.SUPPORTED}.",
                                  key_path=key_path, hint="Remove that augmentation, or train without "
                                  "train.teacher_cache (the teacher then runs on every view).")
            self.steps.append((random_op, None if random_op else step))
        self.num_params = sum(op.slots for op, _ in self.steps if op is not None)
        self.signature = [repr(op.op if op else step) for op, step in self.steps]

    def sample(self, image):
        """``(view, params)`` with fresh random parameters (the ones torchvision would draw)."""
        params = []
        for op, step in self.steps:
            if op is None:
                image = step(image)
            else:
                drawn = op.sample(image)
                image = op.apply(image, drawn)
                params += drawn
        return image, params

    def replay(self, image, params: Sequence[int]):
        """The view that ``params`` (from :meth:`sample`) describe."""
        position = 0
        for op, step in self.steps:
            if op is None:
                image = step(image)
            else:
                image = op.apply(image, params[position:position + op.slots])
                position += op.slots
        return image


class ViewRecordingDataset(Dataset):
    """Wraps a dataset with a ``transform``: item ``i`` is a fresh view plus its parameters, item
    ``(i, params, row)`` the recorded view.  Returns ``(view, target, {index, params, row})``."""

    def __init__(self, dataset, plan: ReplayPlan):
        self.dataset = copy.copy(dataset)
        self.dataset.transform = None
        self.plan = plan

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        replayed = isinstance(key, tuple)
        index, params, row = key if replayed else (key, None, -1)
        image, target = self.dataset[index]
        if replayed:
            view = self.plan.replay(image, params)
        else:
            view, params = self.plan.sample(image)
        return view, target, {"index": index, "params": torch.tensor(params, dtype=torch.int32), "row": row}
