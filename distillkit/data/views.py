"""One view of an encoded image: decode (at a reduced size when the crop allows), crop, resize, flip.

Shared by the CPU ``fast`` path (:mod:`distillkit.data.fast_decode`) and the CPU fallback of the GPU
backends (:mod:`distillkit.data.gpu_decode`).
"""
from __future__ import annotations

import io

import torch
import torch.nn.functional as F
from PIL import Image

from . import jpeg


def render_view(data: bytes, box, out, flips, reduce: int, interpolation: str) -> torch.Tensor:
    """Decode at 1/``reduce`` size, resample ``box`` (full-size pixels) to ``out``, flip: uint8 (h, w, 3)."""
    if reduce == 1 and all(float(v).is_integer() for v in box):
        view = _resample_tensor(jpeg.decode(data), box, out, interpolation)
    else:  # a reduced decode or a fractional box: Pillow resamples the exact (float) box
        view = _resample_pil(data, reduce, box, out, interpolation)
    if flips[0]:
        view = view.flip(1)
    if flips[1]:
        view = view.flip(0)
    return view.contiguous()  # collated by a plain copy


def _resample_tensor(image: torch.Tensor, box, out, interpolation: str) -> torch.Tensor:
    top, left, h, w = (int(v) for v in box)
    view = image[top:top + h, left:left + w]
    if (h, w) == tuple(out):
        return view
    chw = view.permute(2, 0, 1).unsqueeze(0).contiguous(memory_format=torch.channels_last)  # torch's vectorised
    return F.interpolate(chw, size=tuple(out), mode=interpolation, antialias=True,  # uint8 path, NHWC in and out
                         align_corners=False)[0].permute(1, 2, 0)


def _resample_pil(data: bytes, reduce: int, box, out, interpolation: str) -> torch.Tensor:
    """Reduced pixel k covers full-size pixels [k r, (k + 1) r) (libjpeg's DCT scaling): the box maps by 1/r."""
    image = Image.open(io.BytesIO(data))
    if reduce > 1:
        if image.format == "JPEG":
            image.draft("RGB", (image.size[0] // reduce, image.size[1] // reduce))
        else:
            image = image.convert("RGB").reduce(reduce)
    if image.mode != "RGB":
        image = image.convert("RGB")
    top, left, h, w = (v / reduce for v in box)
    resample = Image.BILINEAR if interpolation == "bilinear" else Image.BICUBIC
    resized = image.resize((out[1], out[0]), resample, box=(left, top, left + w, top + h), reducing_gap=None)
    return jpeg.pil_to_tensor(resized)
