"""A one-line progress bar on rank 0: step, loss and images/s, redrawn at most twice a second.

Shown when stderr is a terminal (or ``DISTILLKIT_PROGRESS=1``); the loss is read from
the device only when the line is redrawn, so the bar adds no per-step host sync.
"""
from __future__ import annotations

import os
import sys
import time


class ProgressBar:
    def __init__(self, total: int, label: str, enabled: bool = True, stream=None, interval: float = 0.5):
        self.stream = stream or sys.stderr
        force = os.environ.get("DISTILLKIT_PROGRESS")
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = enabled and (force == "1" or (force != "0" and tty))
        self.total, self.label, self.interval = total, label, interval
        self.start = self.last = time.perf_counter()
        self.drawn = False

    def update(self, step: int, seen: int, loss_sum) -> None:
        """``step`` done (1-based), ``seen`` images so far, ``loss_sum`` (a tensor): the image-weighted loss sum."""
        now = time.perf_counter()
        if not self.enabled or (now - self.last < self.interval and step < self.total):
            return
        self.last = now
        width = 24
        filled = int(width * step / max(self.total, 1))
        loss = float(loss_sum) / max(seen, 1)
        rate = seen / max(now - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {step}/{self.total} "
                          f"loss {loss:.4f} {rate:.0f} img/s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
