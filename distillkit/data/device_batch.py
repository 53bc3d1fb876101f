"""Batches that become float tensors on the device: the last steps of a ``decode:`` pipeline run there.

A loader with ``decode: fast`` yields :class:`UInt8Batch` (uint8 images, collated without float conversion:
4x less to copy between processes and to the GPU); ``decode: cuda | dali`` yields :class:`EncodedBatch`
(the JPEG bytes and each view's crop, decoded on the GPU).  Both know their ``ToTensor``/``Normalize``
steps and turn into the float tensor that pipeline would have produced:

* ``speed.to_device(images, device)`` (the trainer's copy) calls ``images.to_device(device,
  channels_last=...)``;
* ``images.to(device, non_blocking=True)`` (evaluation, plain loops) does the same without channels_last.

Float conversion and normalisation are :func:`normalize_uint8`: ``(x / 255 - mean) / std``, the same
operations in the same order as ``ToTensor`` + ``Normalize``, so a uint8 batch normalised on the device
equals, to the last bit, the CPU pipeline applied to the same uint8 pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch
from .gpu_decode import decode_batch
from .batch import collate_batch

_STATS_CACHE: dict = {}


@dataclass(frozen=True)
class OutputSpec:
    """What follows the geometric steps: ``scale`` 255 (ToTensor / ConvertImageDtype to float) or None
    (PILToTensor alone: the batch stays uint8), and Normalize's mean/std (or None)."""
    scale: Optional[float] = 255.0
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None


def _stats(spec: OutputSpec, device, channels: int):
    key = (spec.mean, spec.std, str(device), channels)
    if key not in _STATS_CACHE:
        shape = (1, channels, 1, 1)
        mean = torch.tensor(spec.mean, dtype=torch.float32, device=device).expand(channels).reshape(shape)
        std = torch.tensor(spec.std, dtype=torch.float32, device=device).expand(channels).reshape(shape)
        _STATS_CACHE[key] = (mean, std)
    return _STATS_CACHE[key]


def normalize_uint8(images: torch.Tensor, spec: OutputSpec, channels_last: bool = False) -> torch.Tensor:
    """uint8 (or float 0..255) NCHW on its device -> float32 ``(x / 255 - mean) / std``, NHWC in memory when
    ``channels_last`` (the layout conversion runs on the uint8 tensor, 4x less memory traffic)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    images = images.contiguous(memory_format=fmt)
    if spec.scale is None:
        return images
    out = images.to(torch.float32).div_(spec.scale)
    if spec.mean is not None:
        mean, std = _stats(spec, out.device, out.shape[1])
        out.sub_(mean).div_(std)
    return out


class UInt8Batch:
    """A collated batch of uint8 views, stored NHWC (each sample's rows as decoded)."""

    def __init__(self, nhwc: torch.Tensor, spec: OutputSpec):
        self.nhwc = nhwc
        self.spec = spec

    @property
    def images(self) -> torch.Tensor:
        """The uint8 batch as NCHW (a channels_last view of the NHWC storage)."""
        return self.nhwc.permute(0, 3, 1, 2)

    @property
    def shape(self) -> torch.Size:
        return self.images.shape

    def __len__(self) -> int:
        return self.nhwc.shape[0]

    def pin_memory(self) -> "UInt8Batch":
        return UInt8Batch(self.nhwc.pin_memory(), self.spec)

    def to_device(self, device, channels_last: bool = False) -> torch.Tensor:
        images = self.images.to(device, non_blocking=True)
        return normalize_uint8(images, self.spec, channels_last)

    def to(self, device, non_blocking: bool = True, **_) -> torch.Tensor:
        return self.to_device(device)


@dataclass
class EncodedBatch:
    """Encoded images and, per image, the crop box in full-size pixels ``(top, left, height, width)``, the
    reduction the CPU path would decode at, and the flips; decoded, cropped, resized and normalised on the
    device by ``backend`` (``cuda``: torchvision.io.decode_jpeg on the GPU; ``dali``: NVIDIA DALI)."""
    blob: torch.Tensor  # uint8: the encoded images back to back (one shared-memory tensor between processes)
    offsets: torch.Tensor  # int64 (N + 1): image i is blob[offsets[i]:offsets[i + 1]]
    boxes: torch.Tensor  # float64 (N, 4): top, left, height, width in full-size pixels
    flips: torch.Tensor  # bool (N, 2): horizontal, vertical
    out_size: Tuple[int, int]
    interpolation: str
    spec: OutputSpec
    backend: str
    reductions: torch.Tensor = field(default=None)  # int64 (N,)

    @property
    def data(self) -> List[torch.Tensor]:
        """Each image's encoded bytes, as a uint8 view of ``blob``."""
        bounds = self.offsets.tolist()
        return [self.blob[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), 3, *self.out_size))

    def __len__(self) -> int:
        return self.offsets.numel() - 1

    def pin_memory(self) -> "EncodedBatch":
        return self  # nvJPEG / DALI read the host bytes themselves

    def to_device(self, device, channels_last: bool = False) -> torch.Tensor:

        return normalize_uint8(decode_batch(self, torch.device(device)), self.spec, channels_last)

    def to(self, device, non_blocking: bool = True, **_) -> torch.Tensor:
        return self.to_device(device)


def collate_views(samples: Sequence[tuple], spec: OutputSpec):
    """:func:`~distillkit.data.batch.collate_batch` for samples whose image is a uint8 HWC view: the views
    become a :class:`UInt8Batch` (stacked into shared memory inside a worker)."""

    images, targets, supp = collate_batch(samples)
    return UInt8Batch(images, spec), targets, supp


def collate_encoded(samples: Sequence[tuple], out_size, interpolation: str, spec: OutputSpec, backend: str):
    """Samples whose image is ``(bytes, box, flips, reduction)`` -> ``(EncodedBatch, targets, supp)``."""
    from torch.utils.data import default_collate

    encoded = [sample[0] for sample in samples]
    targets = default_collate([sample[1] for sample in samples])
    supp = default_collate([sample[2] if len(sample) > 2 else {} for sample in samples])
    sizes = torch.tensor([0] + [len(e[0]) for e in encoded], dtype=torch.int64)
    blob = torch.frombuffer(bytearray(b"".join(e[0] for e in encoded)), dtype=torch.uint8)
    batch = EncodedBatch(blob=blob, offsets=sizes.cumsum(0), boxes=torch.tensor([e[1] for e in encoded],
                                                                                  dtype=torch.float64),
                         flips=torch.tensor([e[2] for e in encoded], dtype=torch.bool), out_size=tuple(out_size),
                         interpolation=interpolation, spec=spec, backend=backend,
                         reductions=torch.tensor([e[3] for e in encoded]))
    return batch, targets, supp
