"""SIGTERM (SLURM, Kubernetes) -> save a resumable checkpoint at the next step boundary and exit cleanly.

The handler only sets a flag. At every step boundary the ranks agree on it with a
MAX all-reduce of one integer over a gloo (CPU) group, so the step they stop at is
the same everywhere even when the signal reaches them at different moments.
"""
from __future__ import annotations

import logging
import signal

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


class Preempted(Exception):
    """Raised out of the epoch loop once the resumable checkpoint is written."""


class PreemptionWatch:
    def __init__(self, ctx):
        self.ctx = ctx
        self.requested = False
        self.group = dist.new_group(backend="gloo") if ctx.distributed else None
        self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            logger.warning("SIGTERM received: saving a resumable checkpoint at the next step boundary.")
        self.requested = True

    def should_stop(self) -> bool:
        if self.group is None:
            return self.requested
        flag = torch.tensor([int(self.requested)])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.group)
        return bool(flag.item())

    def close(self) -> None:
        signal.signal(signal.SIGTERM, self.previous)
