"""GPU decoding of an :class:`~distillkit.data.device_batch.EncodedBatch` (``decode: cuda`` and ``decode: dali``).

The loader's workers only read the bytes, parse the JPEG header and draw the view's parameters (exactly as
the CPU paths do, so the crops, the flips and the teacher cache's records are the same); the decoding,
cropping, resizing and flipping run here, on the training process's GPU:

* ``cuda``: ``torchvision.io.decode_jpeg(list_of_bytes, device='cuda')`` (nvJPEG, batched), then per image
  the crop and an antialiased ``interpolate`` in float32, rounded to whole grey levels as the uint8 CPU path
  rounds;
* ``dali``: an NVIDIA DALI pipeline (``nvidia-dali-cuda120``) fed the bytes and the boxes through
  ``fn.external_source``; ``fn.decoders.image_slice`` decodes only the region of interest (nvJPEG, with
  the hardware JPEG decoder of A100/H100 where present), ``fn.resize`` (antialiased) and ``fn.flip``.

Both are written against the documented APIs but were **not run**: the machine they were written on has
no GPU.  Images that a backend cannot decode (PNG, CMYK) go through the CPU decoder one by one.  A batch
sent to a CPU device is decoded by the ``fast`` CPU path.
"""
from __future__ import annotations

import warnings
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from . import jpeg
from .views import render_view

_DALI_PIPES: Dict[Tuple, object] = {}


def _cpu_view(data: torch.Tensor, box, flips, reduce: int, out_size, interpolation: str) -> torch.Tensor:
    """One sample through the CPU ``fast`` path: uint8 (3, H, W)."""

    return render_view(data.numpy().tobytes(), box, tuple(out_size), flips, reduce, interpolation).permute(2, 0, 1)


def decode_batch(batch, device: torch.device) -> torch.Tensor:
    """The batch's views as (N, 3, H, W) on ``device``: uint8 (CPU), float 0..255 rounded (cuda, dali)."""
    if device.type != "cuda":
        views = [_cpu_view(d, b.tolist(), f.tolist(), int(r), batch.out_size, batch.interpolation)
                 for d, b, f, r in zip(batch.data, batch.boxes, batch.flips, batch.reductions)]
        return torch.stack(views).to(device)
    if batch.backend == "dali":
        return _decode_dali(batch, device)
    return _decode_nvjpeg(batch, device)


def _decode_nvjpeg(batch, device: torch.device) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_jpeg

    data = batch.data
    jpegs = [i for i, d in enumerate(data) if jpeg.is_jpeg(bytes(d[:3].tolist()))]
    decoded = {}
    with warnings.catch_warnings():  # torchvision >= 0.29 deprecates its decoders in favour of TorchCodec
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            images = decode_jpeg([data[i] for i in jpegs], mode=ImageReadMode.RGB, device=device) \
                if jpegs else []
            decoded = dict(zip(jpegs, images))
        except RuntimeError:  # one unusual file fails the whole call: decode one by one
            for i in jpegs:
                try:
                    decoded[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=device)
                except RuntimeError:
                    pass
    out = torch.empty((len(data), 3, *batch.out_size), dtype=torch.float32, device=device)
    for i in range(len(data)):
        box = batch.boxes[i].tolist()
        top, left = int(round(box[0])), int(round(box[1]))  # nvJPEG decodes whole images: whole-pixel crops
        h, w = max(1, int(round(box[0] + box[2])) - top), max(1, int(round(box[1] + box[3])) - left)
        if i in decoded:
            crop = decoded[i][:, top:top + h, left:left + w].unsqueeze(0).float()
            view = F.interpolate(crop, size=tuple(batch.out_size), mode=batch.interpolation, antialias=True,
                                 align_corners=False).round_().clamp_(0, 255)[0]
        else:
            view = _cpu_view(data[i], box, (False, False), int(batch.reductions[i]), batch.out_size,
                             batch.interpolation).to(device, non_blocking=True).float()
        hflip, vflip = batch.flips[i].tolist()
        if hflip:
            view = view.flip(-1)
        if vflip:
            view = view.flip(-2)
        out[i] = view
    return out


def _dali_pipe(device: torch.device, max_batch: int, out_size, interpolation: str):
    key = (device.index, max_batch, tuple(out_size), interpolation)
    if key not in _DALI_PIPES:
        from nvidia.dali import fn, pipeline_def, types

        interp = types.INTERP_CUBIC if interpolation == "bicubic" else types.INTERP_LINEAR

        @pipeline_def(batch_size=max_batch, num_threads=4, device_id=device.index or 0, prefetch_queue_depth=1)
        def pipe():
            data = fn.external_source(name="data", dtype=types.UINT8)
            anchor = fn.external_source(name="anchor", dtype=types.FLOAT)  # (x, y) in pixels
            shape = fn.external_source(name="shape", dtype=types.FLOAT)  # (width, height) in pixels
            hflip = fn.external_source(name="hflip", dtype=types.INT32)
            vflip = fn.external_source(name="vflip", dtype=types.INT32)
            images = fn.decoders.image_slice(data, anchor, shape, device="mixed", output_type=types.RGB,
                                             normalized_anchor=False, normalized_shape=False, axis_names="WH",
                                             jpeg_fancy_upsampling=True)
            images = fn.resize(images, resize_x=out_size[1], resize_y=out_size[0], interp_type=interp,
                               antialias=True)
            images = fn.flip(images, horizontal=hflip, vertical=vflip)
            return fn.transpose(images, perm=[2, 0, 1])  # HWC -> CHW, uint8

        _DALI_PIPES[key] = pipe()
        _DALI_PIPES[key].build()
    return _DALI_PIPES[key]


def _decode_dali(batch, device: torch.device) -> torch.Tensor:
    import numpy as np
    from nvidia.dali.plugin.pytorch import feed_ndarray

    count, data = len(batch), batch.data
    pipe = _dali_pipe(device, max(count, 256), batch.out_size, batch.interpolation)
    boxes = batch.boxes.numpy().astype(np.float32)
    pipe.feed_input("data", [d.numpy() for d in data])
    pipe.feed_input("anchor", [np.array([b[1], b[0]], dtype=np.float32) for b in boxes])
    pipe.feed_input("shape", [np.array([b[3], b[2]], dtype=np.float32) for b in boxes])
    pipe.feed_input("hflip", [np.array(int(f[0]), dtype=np.int32) for f in batch.flips.tolist()])
    pipe.feed_input("vflip", [np.array(int(f[1]), dtype=np.int32) for f in batch.flips.tolist()])
    (images,) = pipe.run()
    out = torch.empty((count, 3, *batch.out_size), dtype=torch.uint8, device=device)
    feed_ndarray(images.as_tensor(), out, cuda_stream=torch.cuda.current_stream(device))
    return out
