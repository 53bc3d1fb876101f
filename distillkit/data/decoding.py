"""The loader key ``decode: auto | pil | fast | cuda | dali``: who turns an image file into the training view.

``auto`` (default) is ``fast`` where the fast path computes the dataset's views (an ImageFolder-like dataset
or TarShards, a pipeline of the supported transforms, no dataset wrapper), else ``pil``, with one INFO line
naming why.  ``pil`` is torchvision's path, unchanged: the dataset opens the file with Pillow and applies its
``transform``.  The other modes read the file's bytes and compute the *same* view (same random
parameters from the same generator, see :mod:`distillkit.data.fast_decode`) more cheaply:

* ``fast``: reduced-size JPEG decoding where the crop allows it, crop + resize on uint8, flips; batches are
  uint8 and become float (``ToTensor``, ``Normalize``) on the device, in the trainer's copy;
* ``cuda``: the workers read bytes and draw parameters; ``torchvision.io.decode_jpeg(device='cuda')``
  decodes the batch on the GPU (needs CUDA);
* ``dali``: the same with NVIDIA DALI (needs ``nvidia-dali-cuda120`` and CUDA).

A dataset qualifies when it lists its files like torchvision's ``ImageFolder`` (``samples`` of
``(path, class)`` and a ``transform``), or is a :class:`~distillkit.data.shards.TarShards`.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
from torch.utils.data import Dataset
from torchvision.datasets.folder import DatasetFolder, default_loader, pil_loader

from ..errors import ConfigError, nearest_names
from .fast_decode import DECODE_MODES, DecodePipeline, ViewDecoder
from .guard import GuardedLoader

logger = logging.getLogger(__name__)
CHOICES = ("auto",) + DECODE_MODES


def fast_refusal(dataset, wrapped: bool) -> Optional[str]:
    """Why ``decode: fast`` would not compute this dataset's views exactly as its own ``__getitem__``, or None."""
    kind = type(dataset).__name__
    if wrapped:
        return "the loader has a dataset_wrapper (it may change the images)"
    if not getattr(dataset, "streaming", False):  # TarShards decodes through a ViewDecoder in any mode
        if not isinstance(getattr(dataset, "samples", None), (list, tuple)):
            return f"{kind} does not list image files ('samples' of (path, class), as ImageFolder has)"
        if type(dataset).__getitem__ is not DatasetFolder.__getitem__:
            return f"{kind} has its own __getitem__"
        loader = getattr(dataset, "loader", default_loader)
        if isinstance(loader, GuardedLoader):
            loader = loader.loader
        if loader not in (default_loader, pil_loader):
            return f"{kind} reads its files with its own loader"
    transform = getattr(dataset, "transform", None)
    if transform is None:
        return f"{kind} has no transform"
    try:
        DecodePipeline(transform, "decode", "fast")
    except ConfigError as exc:
        return f"its transform is not one decode: fast computes ({getattr(exc, 'reason', exc)})"
    return None


def resolve_decode(mode: str, dataset, wrapped: bool, key_path: str) -> str:
    """``decode: auto`` -> ``fast`` where :func:`fast_refusal` finds nothing, else ``pil`` (logged once, at INFO,
    with the reason); other values are returned unchanged."""
    if mode != "auto":
        return mode
    reason = fast_refusal(dataset, wrapped)
    if reason is None:
        logger.info("%s: auto -> fast (views computed from the encoded bytes)", key_path)
        return "fast"
    logger.info("%s: auto -> pil, torchvision's path: %s", key_path, reason)
    return "pil"


def check_backend(mode: str, key_path: str) -> None:
    """Refuse ``cuda``/``dali`` where they cannot run, naming the key."""
    if mode not in DECODE_MODES:
        raise ConfigError(f"decode must be one of {', '.join(CHOICES)}, found {mode!r}.", key_path=key_path,
                          candidates=nearest_names(str(mode), CHOICES, n=2))
    if mode in ("cuda", "dali") and not torch.cuda.is_available():
        raise ConfigError(f"decode: {mode} decodes JPEGs on the GPU, and this process sees no CUDA device "
                          f"(torch.cuda.is_available() is False).", key_path=key_path,
                          hint="Use decode: fast (CPU, the same views) or decode: pil, or run on a machine "
                               "with a GPU.")
    if mode == "dali":
        try:
            import nvidia.dali  # noqa: F401
        except ImportError:
            raise ConfigError("decode: dali needs NVIDIA DALI, which is not installed.", key_path=key_path,
                              hint="pip install nvidia-dali-cuda120 (see NVIDIA's DALI install guide for your "
                                   "CUDA version), or use decode: cuda or decode: fast.") from None


class DecodedFolder(Dataset):
    """An ImageFolder-like dataset read as bytes and decoded by a :class:`ViewDecoder`.

    Items are ``(view, target)``; with ``recording`` (the teacher cache) ``(view, target, {index, params,
    row})``, where key ``i`` draws fresh parameters and key ``(i, params, row)`` replays recorded ones."""

    def __init__(self, dataset, decoder: ViewDecoder, recording: bool = False):
        self.samples = [(str(path), int(target)) for path, target in dataset.samples]
        self.target_transform = getattr(dataset, "target_transform", None)
        self.classes = getattr(dataset, "classes", None)
        self.decoder = decoder
        self.recording = recording
        self.collate_fn = decoder.collate
        guard = getattr(dataset, "loader", None)  # unreadable files: named, or skipped (skip_bad_images)
        self.guard = guard if isinstance(guard, GuardedLoader) else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        replayed = isinstance(key, tuple)
        index, params, row = key if replayed else (key, None, -1)
        path, target = self.samples[index]

        def load(file):
            with open(file, "rb") as handle:
                data = handle.read()
            return (self.decoder.replay(data, params), params) if replayed else self.decoder.sample(data)

        view, params = self.guard.around(load)(path) if self.guard is not None else load(path)
        if self.target_transform is not None:
            target = self.target_transform(target)
        if not self.recording:
            return view, target
        return view, target, {"index": index, "params": torch.tensor(params, dtype=torch.int32), "row": row}


def decoded_dataset(dataset, mode: str, key_path: str, replay_plan=None):
    """``(dataset, collate_fn)`` for a map-style dataset under ``decode: mode`` (``mode`` is not ``pil``).

    With the teacher cache (``replay_plan``) the dataset records and replays views itself, and the record's
    signature gains ``decode: <mode>``, so a record is replayed only by the decoder that made it."""
    check_backend(mode, key_path)
    samples, transform = getattr(dataset, "samples", None), getattr(dataset, "transform", None)
    if not isinstance(samples, (list, tuple)) or transform is None:
        raise ConfigError(f"decode: {mode} reads the image files itself, so it needs a dataset that lists them "
                          f"(ImageFolder / DatasetFolder 'samples' and a transform) or TarShards; "
                          f"{type(dataset).__name__} does not.", key_path=key_path,
                          hint="Use decode: pil (or auto, the default) with this dataset.")
    decoder = ViewDecoder(transform, mode, key_path)
    if replay_plan is not None:
        replay_plan.signature = list(replay_plan.signature) + [f"decode: {mode}"]
    return DecodedFolder(dataset, decoder, recording=replay_plan is not None), decoder.collate

