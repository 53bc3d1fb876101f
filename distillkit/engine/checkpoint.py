"""Run checkpoints: ``checkpoints/epoch_NNNN.pt`` (the last N kept), ``last.pt`` and ``best.pt``.

Each epoch file is written atomically (temporary file, fsync, rename); ``last.pt``
and ``best.pt`` are then hard links to it (a copy where links are not possible),
swapped in atomically, so a process killed at any moment leaves the previous
checkpoints whole and loadable.  Random states travel with the checkpoint so that
a resumed run continues bit for bit.
"""
from __future__ import annotations

import glob
import os
import random
import shutil
from dataclasses import dataclass, fields
from typing import Dict, Optional

import numpy as np
import torch

from ..errors import CheckpointError
from ..models.checkpoint import load_checkpoint, save_atomic
from .best import BestMetric
from .step import OptimizerStep


def _link_atomic(source: str, target: str) -> None:
    tmp = f"{target}.link-{os.getpid()}.tmp"
    if os.path.exists(tmp):
        os.unlink(tmp)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copy2(source, tmp)
    os.replace(tmp, target)


class RunCheckpoints:
    def __init__(self, run_dir: str, keep_last: int = 2):
        self.directory = os.path.join(run_dir, "checkpoints")
        self.keep_last = max(1, int(keep_last))

    def save(self, state: dict, epoch: int, is_best: bool, step: Optional[int] = None) -> str:
        """``epoch_NNNN.pt`` after a whole epoch; ``epoch_NNNN_step_SSSSSS.pt`` when stopped inside epoch NNNN."""
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch_{epoch:04d}.pt" if step is None else f"epoch_{epoch:04d}_step_{step:06d}.pt"
        path = os.path.join(self.directory, name)
        save_atomic(state, path)
        _link_atomic(path, os.path.join(self.directory, "last.pt"))
        if is_best:
            _link_atomic(path, os.path.join(self.directory, "best.pt"))
        self._rotate()
        return path

    def _rotate(self) -> None:
        """Keep the last ``keep_last`` whole-epoch files, and a mid-epoch file only while it is the newest
        state (it never pushes out a whole epoch). best.pt and last.pt are links of their own: unaffected."""
        complete = sorted(glob.glob(os.path.join(self.directory, "epoch_[0-9][0-9][0-9][0-9].pt")))
        partial = sorted(glob.glob(os.path.join(self.directory, "epoch_*_step_*.pt")))
        last_complete = int(os.path.basename(complete[-1])[6:10]) if complete else -1
        stale = [p for p in partial[:-1]] + [p for p in partial[-1:] if int(os.path.basename(p)[6:10]) <= last_complete]
        for old in complete[:-self.keep_last] + stale:
            os.unlink(old)


def rng_state(train_loader=None) -> dict:
    """Python, NumPy, torch CPU (and CUDA) generators, and the training sampler's own generator."""
    numpy_state = np.random.get_state()
    state = {"python": list(random.getstate()[1]), "python_version": random.getstate()[0],
             "python_gauss": random.getstate()[2],
             "numpy": {"keys": torch.from_numpy(numpy_state[1].astype(np.int64)), "pos": int(numpy_state[2]),
                       "has_gauss": int(numpy_state[3]), "gauss": float(numpy_state[4])},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    generator = getattr(getattr(train_loader, "sampler", None), "generator", None)
    if isinstance(generator, torch.Generator):
        state["sampler"] = generator.get_state()
    return state


def restore_rng_state(state: dict, train_loader=None) -> None:
    """Restore the generators of :func:`rng_state` (the sampler's only when ``train_loader`` is given)."""
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(getattr(train_loader, "sampler", None), "generator", None)
    if "sampler" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["sampler"])


@dataclass
class PendingResume:
    """Where a run stopped inside an epoch (SIGTERM): resuming finishes that epoch from ``step_in_epoch``."""
    step_in_epoch: int
    partial_sums: Dict[str, torch.Tensor]
    partial_seen: int
    rng: Optional[dict] = None  # the generators when it stopped (stored as the checkpoint's own 'rng')
    sampler_epoch_start: Optional[torch.Tensor] = None


@dataclass
class ResumePoint:
    """What a run checkpoint restores beyond the weights and optimizer: where to continue, and the counters."""
    epoch_done: int
    start_epoch: int
    global_step: int
    skipped_steps: int
    pending: Optional[PendingResume] = None


def run_state(exp, step: OptimizerStep, epoch: int, global_step: int, best: BestMetric, skipped: int,
              pending: Optional[PendingResume] = None) -> dict:
    """Everything a run checkpoint holds after ``epoch`` (and, with ``pending``, the steps done in the next)."""
    state = {"model": exp.student.model.state_dict(), "student_side": exp.student.state_dict(), **step.state_dict(),
             "epoch": epoch, "stage": exp.stage, "global_step": global_step, "best_metric": best.state_dict(),
             "rng": rng_state(exp.train_loader), "skipped_steps": skipped}
    if exp.scheduler is not None:
        state["scheduler"] = exp.scheduler.state_dict()
    if exp.ema is not None:
        state["model_ema"] = exp.ema.module.state_dict()
    if exp.teacher is not None and exp.teacher.trainable:
        state["teacher_side"] = exp.teacher.state_dict()
    if getattr(exp, "generations", None):  # born-again: the earlier generations' students, teachers of later ones
        state["generations"] = exp.generations
    if pending is not None:
        state["epoch_in_progress"] = epoch + 1
        state.update({f.name: getattr(pending, f.name) for f in fields(PendingResume)
                      if getattr(pending, f.name) is not None})
    return state


def restore_run_state(path: str, exp, step: OptimizerStep, best: BestMetric,
                      state: Optional[dict] = None) -> ResumePoint:
    """Load a run checkpoint into the experiment, the optimizer step and the best-metric tracker (``state``: the
    checkpoint ``path`` holds, when the caller read it already)."""
    state = load_checkpoint(path, "resume checkpoint") if state is None else state
    missing = [k for k in ("student_side", "optimizer", "epoch", "rng") if k not in state]
    if missing:
        raise CheckpointError(f"resume checkpoint {path!r} is not a distillkit run checkpoint "
                              f"(no {', '.join(missing)}); give a checkpoints/last.pt or epoch_NNNN.pt file.")
    same_stage = int(state.get("stage", 0)) == exp.stage
    if not same_stage:  # the end of an earlier stage: this stage starts afresh (its own optimizer, loaders)
        if not getattr(exp, "fresh_student", False):  # a born-again generation keeps its fresh weights
            exp.student.model.load_state_dict(state["model"])
    else:
        exp.student.load_state_dict(state["student_side"])
        if "teacher_side" in state and exp.teacher is not None:
            exp.teacher.load_state_dict(state["teacher_side"])
        step.load_state_dict(state)
        if exp.scheduler is not None and "scheduler" in state:
            exp.scheduler.load_state_dict(state["scheduler"])
        if exp.ema is not None and "model_ema" in state:
            exp.ema.module.load_state_dict(state["model_ema"])
        best.load_state_dict(state.get("best_metric") or {"name": "val_top1", "mode": "max",
                                                          "value": state.get("best_top1", float("-inf"))})
    pending = None
    if "step_in_epoch" in state:  # taken inside an epoch (SIGTERM): finish that epoch first
        pending = PendingResume(**{f.name: state[f.name] for f in fields(PendingResume) if f.name in state})
    else:  # the sampler's generator only within its stage: a new stage's loader starts from its seed
        restore_rng_state(state["rng"], exp.train_loader if same_stage else None)
    epoch = int(state["epoch"])
    return ResumePoint(epoch_done=epoch, start_epoch=int(state["epoch_in_progress"]) if pending else epoch + 1,
                       global_step=int(state["global_step"]), skipped_steps=int(state.get("skipped_steps", 0)),
                       pending=pending)
