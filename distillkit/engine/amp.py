"""Mixed precision from ``train.amp: {enabled, dtype}``; torchdistill's ``apex`` maps onto it."""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch

from ..errors import ConfigError

logger = logging.getLogger(__name__)
_DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}


@dataclass
class AmpSettings:
    enabled: bool = False
    dtype: torch.dtype = torch.bfloat16
    device_type: str = "cpu"

    @classmethod
    def from_settings(cls, train, device: torch.device) -> "AmpSettings":
        """From the TrainSettings' ``amp`` (and torchdistill's ``apex``, when ``amp`` is not written)."""
        enabled, dtype_name = train.amp.enabled, train.amp.dtype
        if (train.apex or {}).get("requires") and not train.amp.raw:
            if device.type == "cuda":
                logger.warning("train.apex.requires is mapped to torch autocast with float16 (apex is not used); "
                               "prefer train.amp: {enabled: true, dtype: bfloat16}.")
                enabled, dtype_name = True, "float16"
            else:
                logger.warning("train.apex.requires is ignored on CPU: apex is CUDA-only.")
        if dtype_name not in _DTYPES:
            raise ConfigError(f"unknown amp dtype {dtype_name!r}; use bfloat16 or float16.", key_path="train.amp.dtype")
        return cls(enabled, _DTYPES[dtype_name], device.type)

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.dtype)

    def grad_scaler(self):
        """A GradScaler for float16 on CUDA; None otherwise (bfloat16 needs none)."""
        if self.enabled and self.dtype == torch.float16 and self.device_type == "cuda":
            return torch.amp.GradScaler("cuda")
        return None


def evaluation_autocast(amp):
    """The autocast of an evaluation pass: ``amp``'s (an AmpSettings), or autocast off when there is none."""
    return amp.autocast() if amp is not None else torch.autocast("cpu", enabled=False)
