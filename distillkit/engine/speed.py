"""Speed settings of the ``train`` block, applied to both sides and to each batch.

``channels_last: true``  models and batches in NHWC memory format (convolutions run faster
                         on GPUs with tensor cores, and with oneDNN on CPUs);
``compile: true | {mode, backend, ...}``  ``torch.compile`` of each side's model in place
                         (``nn.Module.compile``: parameter names and checkpoints are unchanged);
``teacher_inference_mode: true``  the frozen teacher runs under ``torch.inference_mode``
                         instead of ``torch.no_grad`` (its outputs are cloned out of it).

benchmarks/README.md gives what each one measured; all are off by default.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..errors import ConfigError


@dataclass
class SpeedSettings:
    channels_last: bool = False
    compile: Optional[dict] = None  # torch.compile keyword arguments; None = no compile
    teacher_inference_mode: bool = False

    @classmethod
    def from_settings(cls, train) -> "SpeedSettings":
        compile_block = train.compile
        if compile_block in (None, False):
            options = None
        elif compile_block is True:
            options = {}
        elif isinstance(compile_block, dict):
            options = dict(compile_block)
        else:
            raise ConfigError(f"expected true, false or torch.compile options such as {{mode: max-autotune}}, "
                              f"found {compile_block!r}.", key_path="train.compile")
        return cls(train.channels_last, options, train.teacher_inference_mode)

    def prepare_side(self, side) -> None:
        """Memory format, inference mode and compilation of one ModelSide (before DDP wraps it)."""
        if self.channels_last:
            side.to(memory_format=torch.channels_last)
        if side.is_teacher:
            side.inference_mode = self.teacher_inference_mode
        if self.compile is not None:
            side.root.compile(**self.compile)

    def to_device(self, images: torch.Tensor, device) -> torch.Tensor:
        """One batch onto the device, asynchronously from pinned memory, in the models' memory format.
        A uint8 or encoded batch (loader ``decode: fast | cuda | dali``, data/device_batch.py) becomes float
        here: decoded (cuda, dali), converted and normalised on the device, NHWC under channels_last."""
        if hasattr(images, "to_device"):
            return images.to_device(device, channels_last=self.channels_last)
        images = images.to(device, non_blocking=True)
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return images
