"""torch.distributed from torchrun's environment: ranks, devices, reductions, DDP.

One process per GPU; ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` come from
torchrun.  NCCL on CUDA (each process on its ``LOCAL_RANK`` device), gloo on CPU.
Without those variables the run is a single process.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist
from torch import nn

from ..config.schema import SideSettings
from ..errors import ConfigError, DistillkitError

logger = logging.getLogger(__name__)


@dataclass
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def is_main_process() -> bool:
    """Rank 0 of torchrun's job, or a process started without torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def resolve_device(requested: Optional[str], local_rank: int = 0) -> torch.device:
    """``cuda`` when available and not asked otherwise; asking for CUDA without one is an error."""
    name = (requested or ("cuda" if torch.cuda.is_available() else "cpu")).lower()
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DistillkitError(f"--device {name} was asked for, but this machine has no usable CUDA device "
                                  f"(torch {torch.__version__}, torch.cuda.is_available() is False). "
                                  f"Run with --device cpu, or install a CUDA build of torch on a GPU machine.")
        return torch.device("cuda", local_rank if name == "cuda" else int(name.split(":")[1]))
    if name != "cpu":
        raise DistillkitError(f"--device must be cpu or cuda (or cuda:N), found {requested!r}.")
    return torch.device("cpu")


def setup_distributed(requested_device: Optional[str] = None) -> DistContext:
    """Join torchrun's process group if there is one; returns this process's context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = timedelta(seconds=float(os.environ.get("DISTILLKIT_DIST_TIMEOUT", "1800")))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo", timeout=timeout,
                                **({"device_id": device} if device.type == "cuda" else {}))
    return DistContext(rank, local_rank, world_size, device)


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over ranks (in place on a copy); identity for one process."""
    if not ctx.distributed:
        return tensor
    reduced = tensor.clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced


def barrier(ctx: DistContext) -> None:
    """Wait until every rank is here (nothing to wait for in one process)."""
    if ctx.distributed:
        dist.barrier()


def gather_objects(obj, ctx: DistContext) -> list:
    """Every rank's ``obj`` (picklable), in rank order: ``[obj]`` in one process."""
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj, ctx: DistContext):
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    holder = [obj]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


_DDP_NAMES = (None, "DistributedDataParallel", "DDP")


def wrap_side(module: nn.Module, ctx: DistContext, side: SideSettings) -> nn.Module:
    """Wrap a trainable side for distributed training, from its config block.

    ``wrapper``: DistributedDataParallel (also when left empty: an unwrapped trainable side would drift
    apart across ranks), ``DataParallel`` (replaced by DDP under torchrun, with a warning) or ``none``.
    ``sync_bn: true`` converts BatchNorm to SyncBatchNorm (CUDA only); ``find_unused_parameters`` goes to DDP.
    A side with nothing to train (a frozen teacher) is never wrapped.
    """
    if not ctx.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    key_path, wrapper = side.key_path, side.wrapper
    if isinstance(wrapper, str) and wrapper.lower() == "none":
        logger.warning("%s.wrapper is 'none': this side trains unsynchronised on each rank.", key_path)
        return module
    if wrapper not in _DDP_NAMES:
        if wrapper != "DataParallel":
            raise ConfigError(f"unknown wrapper {wrapper!r}.", key_path=f"{key_path}.wrapper",
                              candidates=["DistributedDataParallel", "DataParallel", "none"])
        logger.warning("%s.wrapper DataParallel is replaced by DistributedDataParallel under torchrun.", key_path)
    if side.sync_bn:
        if ctx.device.type == "cuda":
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        else:
            logger.warning("%s.sync_bn is ignored on CPU: SyncBatchNorm needs CUDA.", key_path)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids,
                                               find_unused_parameters=side.find_unused_parameters)


def explain_ddp_error(exc: RuntimeError) -> Optional[DistillkitError]:
    """DDP's error about parameters that got no gradient, turned into the config key that fixes it."""
    text = str(exc)
    if "Expected to have finished reduction in the prior iteration" not in text and \
            "did not receive grad" not in text:
        return None
    return DistillkitError(
        "DistributedDataParallel found trainable parameters that received no gradient in a step (a layer the "
        "loss never uses, e.g. an unused head or an embedding no loss term reads). Either make every trainable "
        "part feed the loss, freeze the unused parts (train.student.frozen_modules), or set "
        "train.student.find_unused_parameters: true (slower: DDP then searches the graph every step). "
        f"DDP said: {text.splitlines()[0]}")


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
