"""Encoded image bytes -> an RGB ``uint8`` tensor (height, width, 3), optionally decoded at 1/2, 1/4 or 1/8 size.

Backends, best available first (``DISTILLKIT_JPEG_BACKEND=pil|torchvision|simplejpeg`` forces one):

* ``simplejpeg`` (optional, ``pip install simplejpeg``): libjpeg-turbo, RGB straight into a NumPy array,
  scaled decoding built in;
* ``torchvision``: ``torchvision.io.decode_jpeg`` (libjpeg-turbo, installed with torchvision; deprecated
  there since 0.29 in favour of TorchCodec, and skipped once it is gone), full size only;
* ``pil``: Pillow; reduced decoding through JPEG draft mode (``Image.draft``: libjpeg's DCT scaling).

All three run the same libjpeg-turbo algorithm with its default settings (accurate integer IDCT, fancy
upsampling), so a full-size decode gives the same pixels whichever is used.  A reduced decode (``reduce`` =
2, 4 or 8) is an image of ``ceil(width / reduce) x ceil(height / reduce)`` pixels.  Anything that is not a
baseline/progressive JPEG (PNG, CMYK, a corrupt file ...) goes through Pillow, which reads every format
torchvision's default ``ImageFolder`` loader reads; EXIF orientation is ignored, as that loader ignores it.
"""
from __future__ import annotations

import io
import os
import warnings
from typing import Tuple

import numpy as np
import torch
from PIL import Image

REDUCTIONS = (8, 4, 2, 1)


def _simplejpeg():
    try:
        import simplejpeg
    except ImportError:
        return None
    return simplejpeg


def _torchvision_decoder() -> bool:
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list:
    return (["simplejpeg"] if _simplejpeg() is not None else []) + \
        (["torchvision"] if _torchvision_decoder() else []) + ["pil"]


def backend() -> str:
    """The backend in use (``DISTILLKIT_JPEG_BACKEND`` or the best installed)."""
    forced = os.environ.get("DISTILLKIT_JPEG_BACKEND")
    if forced:
        if forced not in ("simplejpeg", "torchvision", "pil"):
            raise ValueError(f"DISTILLKIT_JPEG_BACKEND={forced!r}: expected simplejpeg, torchvision or pil")
        if forced == "simplejpeg" and _simplejpeg() is None:
            raise ImportError("DISTILLKIT_JPEG_BACKEND=simplejpeg, but simplejpeg is not installed "
                              "(pip install simplejpeg)")
        return forced
    return available_backends()[0]


def is_jpeg(data: bytes) -> bool:
    return data[:3] == b"\xff\xd8\xff"


def image_size(data: bytes) -> Tuple[int, int]:
    """``(width, height)`` from the header alone."""
    if is_jpeg(data):
        simplejpeg = _simplejpeg()
        if simplejpeg is not None:
            try:
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
                return int(width), int(height)
            except ValueError:
                pass
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def reduced_size(width: int, height: int, reduce: int) -> Tuple[int, int]:
    return -(-width // reduce), -(-height // reduce)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB (height, width, 3) uint8 tensor of a Pillow image."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    array = np.asarray(image)
    with warnings.catch_warnings():  # a read-only view; nothing writes to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def decode_pil(data: bytes, reduce: int = 1) -> torch.Tensor:
    image = Image.open(io.BytesIO(data))
    if reduce > 1 and image.format == "JPEG":
        width, height = image.size
        image.draft("RGB", (width // reduce, height // reduce))  # picks the scale 1/reduce exactly
        if image.size != reduced_size(width, height, reduce):  # cannot happen with libjpeg; be safe
            image = image.resize(reduced_size(width, height, reduce), Image.BILINEAR)
    elif reduce > 1:
        image = image.convert("RGB").reduce(reduce)
    image.load()
    return pil_to_tensor(image)


def decode(data: bytes, reduce: int = 1, which: str = None) -> torch.Tensor:
    """RGB ``uint8`` tensor of shape (height, width, 3) (possibly a non-contiguous view)."""
    which = which or backend()
    if is_jpeg(data):
        try:
            if which == "simplejpeg":
                simplejpeg = _simplejpeg()
                if reduce == 1:
                    return torch.from_numpy(simplejpeg.decode_jpeg(data, colorspace="RGB"))
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
                array = simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=height // reduce,
                                               min_width=width // reduce)
                if array.shape[:2] == reduced_size(width, height, reduce)[::-1]:
                    return torch.from_numpy(array)
            elif which == "torchvision" and reduce == 1:
                from torchvision.io import ImageReadMode, decode_jpeg

                with warnings.catch_warnings():  # deprecated in favour of TorchCodec since torchvision 0.29
                    warnings.simplefilter("ignore", DeprecationWarning)
                    image = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                                        mode=ImageReadMode.RGB)
                return image.permute(1, 2, 0)
        except (RuntimeError, ValueError):
            pass  # CMYK, unusual markers, truncated files: Pillow below
    return decode_pil(data, reduce)
