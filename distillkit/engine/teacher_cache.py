"""A consistent teacher-output cache for logit distillation (``train.teacher_cache``).

Teacher and student must see the same view (Beyer et al. 2022, "Knowledge distillation: A
good teacher is patient and consistent"), so the cache stores, per sample and epoch, the
augmentation parameters of the view *and* the teacher's logits on that view (FKD, Shen &
Xing 2022).  An epoch whose records exist is replayed (same order, same crops, no teacher
forward); any other epoch runs the teacher and records itself.  Files:
``DIR/epoch_NNNN.rankR-of-W.pt``, written atomically at the end of a complete epoch.

Only the top ``k`` teacher logits are kept; the others are replaced by one value, the
log-mean-exp of what they were, so the top-k probabilities are exact and the remaining
probability mass is spread evenly over the remaining classes.  Recording and replaying
runs both train on this reconstruction, so a replayed step equals the recorded one;
``top_k`` >= the number of classes (or ``null``) keeps the exact logits.

With several teachers (``models.teachers``) the record holds every teacher's logits, each compressed on its
own (``values/<name>``, ...), and replays them as ``{name: logits}``.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
from typing import Callable, List, Optional, Tuple

import torch

from ..data.samplers import ReplaySampler
from ..errors import ConfigError, DistillkitError
from ..members import TeacherOutputs
from ..models.checkpoint import load_checkpoint, save_atomic

logger = logging.getLogger(__name__)


def compress_logits(logits: torch.Tensor, top_k: Optional[int]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(values, indices, rest)``: the top-k logits, their classes, and the log-mean-exp of the others."""
    logits = logits.detach().float()
    classes = logits.shape[1]
    k = classes if top_k is None else min(int(top_k), classes)
    values, indices = logits.topk(k, dim=1)
    if k == classes:
        rest = torch.zeros(logits.shape[0], device=logits.device)
    else:
        others = logits.scatter(1, indices, float("-inf"))
        rest = torch.logsumexp(others, dim=1) - math.log(classes - k)
    return values, indices.to(torch.int32), rest


def expand_logits(values: torch.Tensor, indices: torch.Tensor, rest: torch.Tensor, classes: int) -> torch.Tensor:
    """The logits that :func:`compress_logits` describes: ``rest`` everywhere, the top-k values at their classes."""
    full = rest[:, None].expand(values.shape[0], classes).clone()
    return full.scatter_(1, indices.long(), values)


def weights_fingerprint(module: torch.nn.Module) -> str:
    """A SHA-1 of a module's state (names, dtypes, shapes, values): which teacher a record was made with."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().reshape(-1).cpu().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class TeacherCache:
    def __init__(self, directory: str, top_k: Optional[int], signature: List[str], num_samples: int, ctx,
                 teacher: str = ""):
        self.directory = directory
        self.top_k = top_k
        self.meta = {"transform": signature, "num_samples": num_samples, "world_size": ctx.world_size,
                     "top_k": top_k, "teacher": teacher}
        self.ctx = ctx
        self.record = None  # the replayed epoch's tensors (on the device)
        self.buffers = {"index": [], "params": []}
        self.classes = None  # {teacher name ('' for one teacher): number of classes}
        self.complete = True

    def path(self, epoch: int, rank: int) -> str:
        return os.path.join(self.directory, f"epoch_{epoch:04d}.rank{rank}-of-{self.ctx.world_size}.pt")

    @property
    def replaying(self) -> bool:
        return self.record is not None

    def begin_epoch(self, epoch: int, sampler: ReplaySampler, resumed_inside: bool = False) -> None:
        """Replay ``epoch`` when every rank's record exists, else record it."""
        paths = [self.path(epoch, r) for r in range(self.ctx.world_size)]
        present = [p for p in paths if os.path.isfile(p)]
        self.buffers = {"index": [], "params": []}
        self.complete = not resumed_inside
        if not present:
            self.record, sampler.rows = None, None
            logger.info("teacher cache: recording epoch %d into %s", epoch, self.directory)
            return
        if len(present) != len(paths):
            raise DistillkitError(f"teacher cache {self.directory!r} holds epoch {epoch} for only {len(present)} of "
                                  f"{len(paths)} ranks; it was recorded with another number of processes, or a "
                                  f"recording run was cut short. Delete the epoch_{epoch:04d}.* files, or use a "
                                  f"new train.teacher_cache.dir.")
        record = load_checkpoint(paths[self.ctx.rank], "teacher cache record")
        stored = {k: record["meta"].get(k) for k in self.meta}
        if stored != self.meta:
            changed = [k for k in self.meta if stored[k] != self.meta[k]]
            details = ", ".join(f"{k}: {stored[k]!r} now {self.meta[k]!r}" for k in changed)
            decoder = ""
            now = list(self.meta["transform"])
            if changed == ["transform"] and now[:-1] == list(stored["transform"] or []) and \
                    str(now[-1]).startswith("decode: "):  # only the decoder differs
                decoder = (" The record was made by torchvision's path (decode: pil, the default before decode: "
                           "auto); set decode: pil on train.train_data_loader to replay it.")
            raise DistillkitError(f"teacher cache record {paths[self.ctx.rank]!r} was made with a different "
                                  f"{', '.join(changed)} ({details}); replaying it would not give this run's views "
                                  f"and teacher outputs. Point train.teacher_cache.dir at a new folder, or delete "
                                  f"this one.{decoder}")
        self.classes = record["classes"] if isinstance(record["classes"], dict) else {"": int(record["classes"])}
        self.record = {k: v.to(self.ctx.device) for k, v in record.items() if k.split("/")[0] in LOGIT_KEYS}
        sampler.rows = [(int(i), p.tolist(), row) for row, (i, p) in enumerate(zip(record["index"], record["params"]))]
        logger.info("teacher cache: replaying epoch %d from %s (no teacher forward)", epoch, self.directory)

    def teacher_output(self, extras: dict, run_teacher: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The teacher logits the loss sees: replayed from the record, or computed, recorded and compressed."""
        if self.replaying:
            rows = extras["row"].to(self.ctx.device, non_blocking=True)
            return self._named({name: expand_logits(*(self.record[_key(k, name)][rows]
                                                                        for k in LOGIT_KEYS), classes)
                                                  for name, classes in self.classes.items()})
        logits = run_teacher()
        named = logits if isinstance(logits, dict) else {"": logits}
        self.classes, replayed = {}, {}
        for name, value in named.items():
            if not (isinstance(value, torch.Tensor) and value.dim() == 2):
                raise DistillkitError(f"train.teacher_cache stores class logits of shape (batch, classes); the "
                                      f"teacher{' ' + repr(name) if name else ''} returned {type(value).__name__} "
                                      f"{tuple(getattr(value, 'shape', ()))}.")
            self.classes[name] = value.shape[1]
            compressed = compress_logits(value, self.top_k)
            for key, part in zip(LOGIT_KEYS, compressed):
                self.buffers.setdefault(_key(key, name), []).append(part)
            replayed[name] = expand_logits(*compressed, value.shape[1]).to(value.dtype)
        for key in ("index", "params"):
            self.buffers[key].append(extras[key])
        return self._named(replayed)

    @staticmethod
    def _named(logits: dict):
        """One teacher's logits as a tensor; several as the teacher group's ``{name: logits}``."""
        return logits[""] if set(logits) == {""} else TeacherOutputs(logits)

    def end_epoch(self, epoch: int) -> None:
        """Write the epoch just recorded (each rank its own file); an epoch resumed midway is not written."""
        if self.replaying or not self.buffers["index"]:
            return
        if not self.complete:
            logger.warning("teacher cache: epoch %d was resumed midway, so it is not recorded.", epoch)
            return
        record = {k: torch.cat(v).cpu() for k, v in self.buffers.items()}
        record.update(meta=self.meta, classes=self.classes[""] if set(self.classes) == {""} else self.classes)
        save_atomic(record, self.path(epoch, self.ctx.rank))
        self.buffers = {"index": [], "params": []}


LOGIT_KEYS = ("values", "indices", "rest")


def _key(field: str, teacher: str) -> str:
    return f"{field}/{teacher}" if teacher else field


class CachedTeacher:
    """The teacher side when ``train.teacher_cache`` is on, with ModelSide's call shape: ``(logits, {})``
    replayed from the record, or the live teacher's logits, recorded."""

    def __init__(self, teacher, cache: TeacherCache):
        self.teacher = teacher
        self.cache = cache

    def __call__(self, images, supp_dict: dict, targets=None):
        return self.cache.teacher_output(supp_dict, lambda: self.teacher(images)[0]), {}


def check_cacheable(train, teacher, criterion) -> None:
    """Refuse settings where a replayed step would not equal a live one (``train``: the TrainSettings)."""
    if teacher is None:
        raise ConfigError("train.teacher_cache stores teacher outputs, but there is no models.teacher_model.",
                          key_path="train.teacher_cache")
    reasons = []
    for settings in getattr(teacher, "settings", {"": train.teacher}).values():  # each of models.teachers
        hooks = settings.forward_hook
        if hooks.get("input") or hooks.get("output") or settings.special:
            reasons.append((f"{settings.key_path}.forward_hook",
                            "the teacher's features are hooked (feature terms read them)"))
    if teacher.trainable:
        reasons.append(("train.teacher.requires_grad", "part of the teacher trains, so its outputs change"))
    if train.mixup:
        reasons.append(("train.mixup", "Mixup/CutMix mixes whole batches"))
    for name in criterion.teacher_feature_readers():
        reasons.append((f"train.criterion.sub_terms.{name}", f"the sub term {name!r} reads teacher features"))
    if reasons:
        key, why = reasons[0]
        raise ConfigError(f"train.teacher_cache replays teacher logits only, and here {why}; the replay would "
                          f"not be exact.", key_path=key,
                          hint="Remove train.teacher_cache (the teacher then runs live), or keep only logit terms "
                               "(org_term such as KDLoss) and a frozen teacher without hooks.")
