"""Checkpoint I/O: atomic writes, ``weights_only=True`` reads, and key checks.

Files written here load with ``torch.load(path, weights_only=True)``: they hold
tensors, numbers, strings and containers of them, nothing else.  Reading also accepts an
``argparse.Namespace`` (torchdistill's checkpoints, ``{model, optimizer, best_value, lr_scheduler, args}``).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from typing import Optional

import torch
from torch import nn

from ..errors import CheckpointError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_atomic(obj, path: str) -> None:
    """Write ``obj`` to ``path`` via a temporary file, fsync and rename: never a half-written file.

    The file gets the permissions the umask gives new files (group-readable on a shared cluster, as a
    plain ``open`` would), not the 0600 of a temporary file.  A write that fails (disk full, file-size
    limit, permissions) raises a CheckpointError naming the file and the errno; ``path`` keeps what it held."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    handle, tmp_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp_path, path)
    except BaseException as exc:
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        failure = exc if isinstance(exc, OSError) else exc.__cause__ or exc.__context__
        if isinstance(failure, OSError) and failure.errno is not None:
            raise CheckpointError(f"could not write {path!r}: [Errno {failure.errno}] {failure.strerror} (e.g. the "
                                  f"disk is full or a file-size limit was reached). The file keeps what it held "
                                  f"before; free space (or raise the limit) and continue with --resume.") from exc
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str, what: str = "checkpoint"):
    """``torch.load(path, map_location='cpu', weights_only=True)`` with errors that name the file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{what} {path!r} does not exist.")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):  # torchdistill's checkpoints keep their args
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for bad files
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Weights only load failed" in str(exc):
            reason = ("it holds Python objects beyond tensors and containers, which weights_only loading "
                      "refuses; re-save it as a plain state_dict")
        else:
            reason = f"it is truncated or not a PyTorch checkpoint ({text})"
        raise CheckpointError(f"cannot read {what} {path!r}: {reason}.") from exc


def extract_state_dict(checkpoint) -> dict:
    """The model weights in a checkpoint: ``ckpt['model']``, ``ckpt['state_dict']`` or the dict itself."""
    if isinstance(checkpoint, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if isinstance(checkpoint.get(key), dict):
                return checkpoint[key]
        if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
            return checkpoint
    raise CheckpointError("the checkpoint holds no model weights (no 'model' or 'state_dict' entry).")


def _strip_prefix(state_dict: dict, prefix: str = "module.") -> dict:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return state_dict


def _few(keys, n: int = 4) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_model_weights(model: nn.Module, path: str, strict: bool = True, what: str = "checkpoint") -> Optional[dict]:
    """Load the weights in ``path`` into ``model``; returns the whole checkpoint object."""
    checkpoint = load_checkpoint(path, what)
    try:
        state_dict = _strip_prefix(extract_state_dict(checkpoint))
    except CheckpointError as exc:
        raise CheckpointError(f"{what} {path!r}: {exc}") from None
    expected = model.state_dict()
    missing = set(expected) - set(state_dict)
    unexpected = set(state_dict) - set(expected)
    if strict and (missing or unexpected):
        parts = [f"{what} {path!r} does not fit the {type(model).__name__} model:"]
        if missing:
            parts.append(f"{len(missing)} keys the model needs are absent ({_few(missing)});")
        if unexpected:
            parts.append(f"{len(unexpected)} keys are not in the model ({_few(unexpected)}).")
        parts.append("Check that models.<role>.name and params match the model that was saved.")
        raise CheckpointError(" ".join(parts))
    wrong = [k for k in set(expected) & set(state_dict) if expected[k].shape != state_dict[k].shape]
    if wrong:
        k = sorted(wrong)[0]
        raise CheckpointError(f"{what} {path!r} does not fit the {type(model).__name__} model: {len(wrong)} "
                              f"tensors differ in shape, e.g. {k}: saved {tuple(state_dict[k].shape)}, "
                              f"model {tuple(expected[k].shape)}.")
    model.load_state_dict(state_dict, strict=strict)
    return checkpoint
