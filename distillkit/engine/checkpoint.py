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
from typing import Optional

import numpy as np
import torch

from ..models.checkpoint import save_atomic


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
        for old in sorted(glob.glob(os.path.join(self.directory, "epoch_*.pt")))[:-self.keep_last]:
            os.unlink(old)  # best.pt and last.pt are links of their own: unaffected
        return path

    def latest(self) -> Optional[str]:
        path = os.path.join(self.directory, "last.pt")
        return path if os.path.isfile(path) else None


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
