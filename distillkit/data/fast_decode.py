"""The ``decode:`` pipelines: a torchvision view computed from the encoded bytes, cheaper, same distribution.

:class:`DecodePipeline` compiles a standard torchvision pipeline

    RandomResizedCrop | Resize [+ CenterCrop] | CenterCrop,  then RandomHorizontalFlip / RandomVerticalFlip,
    then ToTensor [+ Normalize]  (or PILToTensor [+ ConvertImageDtype(float) + Normalize])

into three steps per sample:

1. **parameters**: the image size is read from the JPEG header, and the random parameters are drawn by
   the very calls torchvision makes (``RandomResizedCrop.get_params`` on the full-size dimensions, then
   ``torch.rand(1) < p`` per flip), in the same order, from the same generator: with the same seed a
   fast loader draws the same crops and flips as the default one.  The parameters are the teacher
   cache's (:mod:`distillkit.data.replay`) layout, so recorded views replay.
2. **decode**: at the largest JPEG DCT scale 1/r (r in 8, 4, 2, 1) that keeps the crop at least as large as
   the output in both directions (PIL draft mode or simplejpeg; no upsampling that the default path
   would not do), then the crop box is mapped into the reduced image (edges rounded to whole reduced
   pixels: at most r/2 full-size pixels off);
3. **resample**: crop and resize in one antialiased bilinear/bicubic ``torch.nn.functional.interpolate``
   on uint8 (torch's vectorised uint8 path; within 1 grey level of PIL's ``resize``), then the flips.

The view stays uint8 (height, width, 3); ``ToTensor``/``Normalize`` run on the device, see
:mod:`distillkit.data.device_batch`.  Resize + CenterCrop is computed as one crop box of the full image
(the centre crop's box scaled back to full size) resized once.
"""
from __future__ import annotations

import io
from typing import List, Optional, Sequence, Tuple

import torch
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from ..errors import ConfigError, DistillkitError
from . import jpeg
from .device_batch import OutputSpec, collate_encoded, collate_views
from .replay import _flatten, _Flip, _ResizedCrop
from .batch import collate_batch
from .views import render_view

DECODE_MODES = ("pil", "fast", "cuda", "dali")
SUPPORTED = ("RandomResizedCrop, Resize (+ CenterCrop) or CenterCrop; then RandomHorizontalFlip/RandomVerticalFlip; "
             "then ToTensor (+ Normalize) or PILToTensor (+ ConvertImageDtype + Normalize)")
_MODES = {InterpolationMode.BILINEAR: "bilinear", InterpolationMode.BICUBIC: "bicubic"}


def _size2(size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = list(size)
    return (int(size[0]), int(size[0])) if len(size) == 1 else (int(size[0]), int(size[1]))


def resized_size(height: int, width: int, size, max_size=None) -> Tuple[int, int]:
    """``Resize(size, max_size)``'s output (height, width), as torchvision computes it."""
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    requested = size if isinstance(size, int) else size[0]
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = requested, int(requested * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_long, new_short) if width <= height else (new_short, new_long)


class DecodePipeline:
    """A supported torchvision pipeline, compiled; raises :class:`ConfigError` at ``key_path`` otherwise."""

    def __init__(self, transform, key_path: str, mode: str = "fast"):
        self.key_path, self.mode = key_path, mode
        steps = _flatten(transform)
        self.random_ops, self.flips = [], []  # flips: (index into random_ops, axis name)
        self.geometry, self.interpolation = None, "bilinear"
        position = 0

        def refuse(why: str):
            error = ConfigError(f"decode: {mode} computes views from the encoded bytes and supports {SUPPORTED}; "
                                f"{why}.", key_path=key_path,
                                hint="Use decode: pil (or auto, the default) for other pipelines.")
            error.reason = why  # what decode: auto logs when it keeps the PIL path (decoding.py)
            raise error

        def interp(op):
            if op.interpolation not in _MODES or getattr(op, "antialias", True) is False:
                refuse(f"{type(op).__name__} uses {op.interpolation} (antialias {op.antialias}); supported: "
                       f"antialiased bilinear or bicubic")
            return _MODES[op.interpolation]

        step = steps[0] if steps else None
        if isinstance(step, T.RandomResizedCrop):
            self.geometry, self.interpolation = ("rrc", _size2(step.size)), interp(step)
            self.random_ops.append(_ResizedCrop(step))
            position = 1
        elif isinstance(step, T.Resize):
            self.interpolation = interp(step)
            crop = None
            if len(steps) > 1 and isinstance(steps[1], T.CenterCrop):
                crop = _size2(steps[1].size)
                if isinstance(step.size, int) or len(step.size) == 1:
                    short = step.size if isinstance(step.size, int) else step.size[0]
                    fits = max(crop) <= short and step.max_size is None
                else:
                    fits = crop[0] <= step.size[0] and crop[1] <= step.size[1]
                if not fits:
                    refuse(f"CenterCrop{crop} may be larger than the resized image (torchvision pads it then)")
            self.geometry = ("resize", step.size, step.max_size, crop)
            position = 2 if crop else 1
        elif isinstance(step, T.CenterCrop):
            self.geometry = ("center", _size2(step.size))
            position = 1
        else:
            refuse(f"the pipeline starts with {type(step).__name__ if step is not None else 'nothing'}")
        while position < len(steps) and isinstance(steps[position], (T.RandomHorizontalFlip, T.RandomVerticalFlip)):
            op = steps[position]
            horizontal = isinstance(op, T.RandomHorizontalFlip)
            self.flips.append((len(self.random_ops), "h" if horizontal else "v"))
            self.random_ops.append(_Flip(op, None))
            position += 1
        scale, mean, std = None, None, None
        step = steps[position] if position < len(steps) else None
        if isinstance(step, T.ToTensor):
            scale, position = 255.0, position + 1
        elif isinstance(step, T.PILToTensor):
            position += 1
            if position < len(steps) and isinstance(steps[position], T.ConvertImageDtype):
                if not steps[position].dtype.is_floating_point:
                    refuse("ConvertImageDtype to an integer type")
                scale, position = 255.0, position + 1
        else:
            refuse(f"step {position} is {type(step).__name__ if step is not None else 'missing'}, where ToTensor "
                   f"or PILToTensor is expected")
        if position < len(steps) and isinstance(steps[position], T.Normalize) and scale is not None:
            mean, std = tuple(float(v) for v in steps[position].mean), tuple(float(v) for v in steps[position].std)
            position += 1
        if position < len(steps):
            refuse(f"step {position} ({type(steps[position]).__name__}) comes after the tensor conversion")
        self.spec = OutputSpec(scale, mean, std)
        self.slots = [op.slots for op in self.random_ops]

    # -------------------------------------------------------------- per sample
    def draw(self, width: int, height: int) -> List[int]:
        """The random parameters torchvision would draw for an image of this size (same calls, same order)."""
        shape_only = torch.empty((), dtype=torch.uint8).expand(3, height, width)
        params: List[int] = []
        for op in self.random_ops:
            params += op.sample(shape_only)
        return params

    def layout(self, width: int, height: int, params: Sequence[int]):
        """``(box, out, (hflip, vflip))``: the crop box (top, left, height, width) in full-size pixels
        (floats for Resize + CenterCrop), the output (height, width) and the flips."""
        kind = self.geometry[0]
        if kind == "rrc":
            top, left, h, w = (float(v) for v in params[:4])
            out = self.geometry[1]
        elif kind == "center":
            out = self.geometry[1]
            if out[0] > height or out[1] > width:
                raise DistillkitError(f"decode: {self.mode}: CenterCrop{out} is larger than an image of "
                                      f"{width}x{height}; use decode: pil for such data.")
            top, left = int(round((height - out[0]) / 2.0)), int(round((width - out[1]) / 2.0))
            h, w = out
        else:
            _, size, max_size, crop = self.geometry
            rh, rw = resized_size(height, width, size, max_size)
            if crop is None:
                top, left, h, w, out = 0.0, 0.0, float(height), float(width), (rh, rw)
            else:
                sy, sx = height / rh, width / rw
                ct, cl = int(round((rh - crop[0]) / 2.0)), int(round((rw - crop[1]) / 2.0))
                top, left, h, w, out = ct * sy, cl * sx, crop[0] * sy, crop[1] * sx, crop
        flips = [False, False]
        position = 0
        flip_at = dict(self.flips)
        for index, slots in enumerate(self.slots):
            if index in flip_at:
                flips[0 if flip_at[index] == "h" else 1] = bool(params[position])
            position += slots
        return (top, left, h, w), tuple(out), tuple(flips)

    @staticmethod
    def reduction(box, out) -> int:
        """The largest DCT scale 1/r (r = 8, 4, 2, 1) at which the crop still covers the output."""
        for r in jpeg.REDUCTIONS:
            if box[2] >= out[0] * r and box[3] >= out[1] * r:
                return r
        return 1

    def render(self, data: bytes, width: int, height: int, params: Sequence[int]) -> torch.Tensor:
        """The uint8 view (height, width, 3)."""
        box, out, flips = self.layout(width, height, params)
        return render_view(data, box, out, flips, self.reduction(box, out), self.interpolation)

    def encode(self, data: bytes, width: int, height: int, params: Sequence[int]):
        """What a GPU decode backend needs: (the encoded bytes, box, flips, reduction)."""
        box, out, flips = self.layout(width, height, params)
        return bytes(data), tuple(float(v) for v in box), flips, self.reduction(box, out)

    def out_size(self) -> Optional[Tuple[int, int]]:
        kind = self.geometry[0]
        if kind in ("rrc", "center"):
            return self.geometry[1]
        return self.geometry[3]


class ViewDecoder:
    """One sample's view from its encoded bytes, for one ``decode`` mode: ``pil`` (the dataset's own
    torchvision transform on a PIL image, as ImageFolder does), ``fast`` (uint8 view), ``cuda``/``dali``
    (the bytes and the view's parameters, decoded later on the GPU)."""

    def __init__(self, transform, mode: str, key_path: str):
        if mode not in DECODE_MODES:
            raise ConfigError(f"decode must be one of {', '.join(DECODE_MODES)}, found {mode!r}.", key_path=key_path)
        self.mode, self.transform = mode, transform
        self.pipeline = None if mode == "pil" else DecodePipeline(transform, key_path, mode)
        if mode in ("cuda", "dali") and self.pipeline.out_size() is None:
            raise ConfigError(f"decode: {mode} batches views of one size: the pipeline needs RandomResizedCrop or "
                              f"a CenterCrop.", key_path=key_path)

    def sample(self, data: bytes):
        """``(view, params)`` with fresh random parameters (params None in ``pil`` mode)."""
        if self.pipeline is None:
            from PIL import Image

            image = Image.open(io.BytesIO(data)).convert("RGB")
            return (self.transform(image) if self.transform is not None else image), None
        width, height = jpeg.image_size(data)
        params = self.pipeline.draw(width, height)
        return self._view(data, width, height, params), params

    def replay(self, data: bytes, params: Sequence[int]):
        width, height = jpeg.image_size(data)
        return self._view(data, width, height, [int(p) for p in params])

    def _view(self, data, width, height, params):
        if self.mode == "fast":
            return self.pipeline.render(data, width, height, params)
        return self.pipeline.encode(data, width, height, params)

    def collate(self, samples):
        if self.mode == "fast":
            return collate_views(samples, self.pipeline.spec)
        if self.mode in ("cuda", "dali"):
            return collate_encoded(samples, self.pipeline.out_size(), self.pipeline.interpolation,
                                   self.pipeline.spec, self.mode)

        return collate_batch(samples)
