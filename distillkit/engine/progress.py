"""Progress of a training epoch: a one-line bar on rank 0 for a terminal, the same figures for the log.

The bar is shown when stderr is a terminal (or ``DISTILLKIT_PROGRESS=1``; ``0`` hides it) and redrawn at
most every ``interval`` seconds: ``epoch 3 [#####.......] 120/500 loss 0.4123 1530 img/s ETA 0:42``.
Elsewhere (a log file, a batch job) nothing is drawn; the Trainer's line every ``log_freq`` steps carries
the same figures (:meth:`ProgressBar.status`).  The loss is read from the device only when a line is made,
so the bar adds no per-step host sync.
"""
from __future__ import annotations

import os
import shutil
import sys
import time

WIDTH = 24  # characters of the bar itself


def clock_text(seconds: float) -> str:
    """``h:mm:ss`` (or ``m:ss`` under an hour)."""
    minutes, secs = divmod(int(round(max(seconds, 0.0))), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def shown(stream) -> bool:
    """Whether a bar goes to ``stream``: ``DISTILLKIT_PROGRESS`` 1/0, else whether it is a terminal."""
    force = os.environ.get("DISTILLKIT_PROGRESS")
    if force in ("0", "1"):
        return force == "1"
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class ProgressBar:
    """``total`` steps of one epoch, from step ``first`` (after a mid-epoch resume) with ``seen`` images then."""

    def __init__(self, total: int, label: str, enabled: bool = True, stream=None, interval: float = 0.5,
                 first: int = 0, seen: int = 0, clock=time.perf_counter):
        self.stream = stream or sys.stderr
        self.enabled = enabled and shown(self.stream)
        self.total, self.label, self.interval, self.clock = total, label, interval, clock
        self.first, self.first_seen = first, seen
        self.start = self.clock()
        self.last = None
        self.drawn = 0  # characters of the line on screen

    def status(self, step: int, seen: int, loss_sum) -> str:
        """``step/total loss L R img/s ETA m:ss`` (``in m:ss`` at the last step): ``step`` done (1-based), ``seen``
        images so far, ``loss_sum`` (a tensor or number) their image-weighted loss sum."""
        elapsed = max(self.clock() - self.start, 1e-9)
        done = step - self.first
        rate = (seen - self.first_seen) / elapsed
        loss = float(loss_sum) / max(seen, 1)
        when = f"in {clock_text(elapsed)}" if step >= self.total else \
            f"ETA {clock_text(elapsed / done * (self.total - step))}" if done > 0 else "ETA ?"
        return f"{step}/{self.total} loss {loss:.4f} {rate:.0f} img/s {when}"

    def update(self, step: int, seen: int, loss_sum) -> None:
        """Redraw the bar (at most every ``interval`` seconds, and always at the last step)."""
        if not self.enabled:
            return
        now = self.clock()
        if self.last is not None and now - self.last < self.interval and step < self.total:
            return
        self.last = now
        filled = int(WIDTH * step / max(self.total, 1))
        line = f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {self.status(step, seen, loss_sum)}"
        line = line[:max(shutil.get_terminal_size((120, 24)).columns - 1, 20)]
        self.stream.write("\r" + line + " " * max(self.drawn - len(line), 0))
        self.stream.flush()
        self.drawn = len(line)

    def clear(self) -> None:
        """Blank the line (before a log line is printed); the next update draws it again."""
        if self.drawn:
            self.stream.write("\r" + " " * self.drawn + "\r")
            self.stream.flush()
            self.drawn, self.last = 0, None

    def close(self) -> None:
        """End the bar's line (it stays on screen)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0
