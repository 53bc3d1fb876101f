"""The run directory: one run at a time holds it, and a fresh start never mixes with an old one.

``RunDirectory.open(path, resume_from=...)`` takes an exclusive lock (``.lock``, holding the pid and
host of its owner) for the life of the run, removes temporary files a killed save left behind,
and decides how the run starts: fresh (a directory without checkpoints; metrics of an earlier,
failed attempt are cleared), or resumed from a checkpoint.  The lock is ``fcntl.flock``: it is
released when the process ends, however it ends (on network file systems without flock support,
it protects only against runs on the same node).
"""
from __future__ import annotations

import fcntl
import glob
import logging
import os
import socket
import time
from typing import Optional

from ..errors import DistillkitError

logger = logging.getLogger(__name__)


class RunDirectory:
    def __init__(self, path: str, handle):
        self.path = path
        self._lock = handle

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, "checkpoints")

    def has_checkpoints(self) -> bool:
        return bool(glob.glob(os.path.join(self.checkpoint_dir, "*.pt")))

    @classmethod
    def lock(cls, path: str) -> "RunDirectory":
        """Create ``path`` if needed and hold it; a directory another live run holds is refused."""
        os.makedirs(path, exist_ok=True)
        handle = open(os.path.join(path, ".lock"), "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise DistillkitError(f"the run directory {path!r} is in use by {owner}; two runs writing one directory "
                                  f"would mix their checkpoints and metrics. Wait for that run to end, or pass "
                                  f"another --run-dir.")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on host {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        run_dir = cls(path, handle)
        run_dir.remove_partial_saves()
        return run_dir

    def remove_partial_saves(self) -> None:
        """Temporary files of a save that a kill interrupted (the finished checkpoints are never temporary)."""
        for leftover in glob.glob(os.path.join(self.checkpoint_dir, "*.tmp")):
            os.unlink(leftover)
            logger.info("removed %s, a partial checkpoint left by an interrupted save", leftover)

    def start_fresh(self) -> None:
        """A new run here: refused over checkpoints; metrics of an attempt that saved nothing are cleared."""
        if self.has_checkpoints():
            raise DistillkitError(f"the run directory {self.path!r} already holds checkpoints; distillkit will not "
                                  f"overwrite them. Continue that run with --resume, or pass a new --run-dir (or "
                                  f"leave it out for a fresh one).")
        metrics = os.path.join(self.path, "metrics.jsonl")
        if os.path.isfile(metrics):
            os.unlink(metrics)
            logger.info("%s holds no checkpoint: the metrics of an earlier attempt that saved nothing are cleared",
                        self.path)

    def release(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None


def resolve_resume(resume: str, run_dir: Optional[str]):
    """``(run_dir, checkpoint path or None)`` for ``--resume`` (``'latest'`` or a checkpoint path).

    ``latest`` in a directory that holds no checkpoint yet starts the run from scratch (a requeued job can
    always pass --resume).  A checkpoint resumes into its own run directory, or into ``run_dir`` when that is
    new or the checkpoint's own; another run's directory is refused."""
    if resume == "latest":
        if not run_dir:
            raise DistillkitError("--resume without a path needs --run-dir: the run directory to continue.")
        path = os.path.join(run_dir, "checkpoints", "last.pt")
        if not os.path.isfile(path):
            logger.info("--resume: %s holds no checkpoints/last.pt yet; starting the run from scratch.", run_dir)
            return run_dir, None
        return run_dir, path
    if not os.path.isfile(resume):
        raise DistillkitError(f"--resume: checkpoint {resume!r} does not exist.")
    own = os.path.dirname(os.path.dirname(os.path.abspath(resume)))
    if run_dir is None:
        return own, resume
    if os.path.abspath(run_dir) != own and glob.glob(os.path.join(run_dir, "checkpoints", "*.pt")):
        raise DistillkitError(f"--resume {resume!r} --run-dir {run_dir!r}: that directory holds another run's "
                              f"checkpoints. Resume into the checkpoint's own directory ({own!r}) or a new one.")
    return run_dir, resume
