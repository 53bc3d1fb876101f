"""The Trainer: one loop for teachers, student baselines and distilled students.

One step::

    teacher_out, teacher_io = teacher(x)      # frozen parts in eval mode, no autograd graph
    student_out, student_io = student(x)
    loss, terms = criterion(student_out, teacher_out, student_io, teacher_io, y)

Each epoch trains, evaluates on the validation loader, writes
``checkpoints/last.pt`` and (when validation top-1 improves) ``checkpoints/best.pt``
and the student's ``ckpt``, and appends a row to ``metrics.jsonl``.  Only rank 0
writes.  Loss values stay on the device between ``log_freq`` steps.
"""
from __future__ import annotations

import logging
import math
import os
import time
from typing import Dict, Optional

import torch

from ..errors import DistillkitError
from ..models.checkpoint import load_checkpoint, save_atomic
from .checkpoint import RunCheckpoints, restore_rng_state, rng_state
from .distributed import all_reduce_sum, explain_ddp_error
from .evaluate import evaluate
from .logs import MetricsLog, TensorBoardLog
from .preemption import Preempted, PreemptionWatch
from .progress import ProgressBar

logger = logging.getLogger("distillkit")


class Trainer:
    def __init__(self, experiment, run_dir: Optional[str] = None, start_epoch: int = 0):
        self.exp = experiment
        self.ctx = experiment.ctx
        self.run_dir = run_dir
        self.start_epoch = start_epoch
        self.global_step = 0
        self.run_best = float("-inf")
        self.scaler = experiment.amp.grad_scaler()
        self.metrics = MetricsLog(os.path.join(run_dir, "metrics.jsonl"), self.ctx.is_main) if run_dir else None
        self.tensorboard = TensorBoardLog(run_dir, self.ctx.is_main) if run_dir else None
        train = experiment.config.get("train") or {}
        self.checkpoints = RunCheckpoints(run_dir, train.get("keep_last_checkpoints", 2)) if run_dir else None
        self.skip_nonfinite = int(train.get("skip_nonfinite") or 0)
        self.skipped = 0
        self.pending_resume = None  # set by resume() from a checkpoint taken inside an epoch
        self.best_state = None
        self.preemption = None
        if run_dir and self.ctx.is_main:
            os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)

    # ------------------------------------------------------------------ training
    def train_mode(self) -> None:
        """The student side in training mode; the teacher side too (it keeps its frozen parts in eval mode)."""
        self.exp.student_module.train()
        if self.exp.teacher_module is not None:
            self.exp.teacher_module.train()

    def forward(self, images, targets, extras=None):
        """Teacher, student and criterion on one batch: ``(loss, terms, student_io, teacher_io)``.
        ``extras`` ({index, params, row}) come with the batch when the teacher cache is on."""
        exp = self.exp
        with exp.amp.autocast():
            if exp.teacher_cache is not None:
                teacher_out = exp.teacher_cache.teacher_output(extras, lambda: exp.teacher_module(images)[0])
                teacher_io = {}
            else:
                teacher_out, teacher_io = (exp.teacher_module(images) if exp.teacher_module is not None
                                           else (None, {}))
            student_out, student_io = exp.student_module(images)
            loss, terms = exp.criterion(student_out, teacher_out, student_io, teacher_io, targets)
        return loss, terms, student_io, teacher_io

    def train_step(self, images, targets, extras=None) -> Optional[Dict[str, torch.Tensor]]:
        exp = self.exp
        loss, terms, _, _ = self.forward(images, targets, extras)
        exp.optimizer.zero_grad(set_to_none=True)
        if self.skip_nonfinite and not bool(torch.isfinite(loss)):  # a host sync, only when skipping is on
            self.skipped += 1
            message = self.nonfinite_message(terms, f"at global step {self.global_step + 1}")
            if self.skipped > self.skip_nonfinite:
                raise DistillkitError(message + f" {self.skipped - 1} such steps were skipped already "
                                                f"(train.skip_nonfinite: {self.skip_nonfinite}).")
            logger.warning("skipping step: %s (%d of at most %d)", message, self.skipped, self.skip_nonfinite)
            return None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(exp.optimizer)
        else:
            loss.backward()
        clip = (exp.config.get("train") or {}).get("clip_grad_norm")
        if clip:
            torch.nn.utils.clip_grad_norm_([p for g in exp.optimizer.param_groups for p in g["params"]], float(clip))
        if self.scaler is not None:
            self.scaler.step(exp.optimizer)
            self.scaler.update()
        else:
            exp.optimizer.step()
        self.global_step += 1
        if exp.ema is not None:
            exp.ema.update(exp.student.model, step=self.global_step)
        if exp.scheduler is not None and exp.scheduling_step > 0 and self.global_step % exp.scheduling_step == 0:
            exp.scheduler.step()
        return {"loss": loss.detach(), **{f"loss/{k}": v.detach().float() for k, v in terms.items()}}

    @staticmethod
    def nonfinite_message(terms: Dict[str, torch.Tensor], when: str) -> str:
        bad = [f"{name} = {value.item()}" for name, value in terms.items() if not bool(torch.isfinite(value))]
        return (f"the loss became non-finite {when}: {', '.join(bad) or 'the total'}. Lower the "
                f"learning rate, check the data, or set train.skip_nonfinite: N to skip up to N such steps.")

    def check_finite(self, sums: Dict[str, torch.Tensor], steps_done: int) -> None:
        """Stop with the name of the non-finite term (the running sums turn NaN/inf with it)."""
        if not bool(torch.isfinite(sums["loss"])):
            terms = {k[len("loss/"):]: v for k, v in sums.items() if k.startswith("loss/")}
            window = f"between global steps {self.first_step_of_window} and {self.global_step}"
            raise DistillkitError(self.nonfinite_message(terms, window) + " The last checkpoint is untouched; "
                                  "train.skip_nonfinite checks every step and names the exact one.")
        self.first_step_of_window = self.global_step + 1

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        exp = self.exp
        self.train_mode()
        sampler = getattr(exp.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        generator = getattr(sampler, "generator", None)
        pending, self.pending_resume = self.pending_resume, None
        if pending is not None:
            sampler.skip_next(pending["step_in_epoch"] * exp.train_loader.batch_size)
            if generator is not None and "sampler_epoch_start" in pending:
                generator.set_state(pending["sampler_epoch_start"])
        epoch_start_sampler = generator.get_state() if generator is not None else None
        if exp.teacher_cache is not None:
            exp.teacher_cache.begin_epoch(epoch, sampler, resumed_inside=pending is not None)
        sums: Dict[str, torch.Tensor] = dict(pending["partial_sums"]) if pending else {}
        self.first_step_of_window = self.global_step + 1
        seen, start, steps = (int(pending["partial_seen"]) if pending else 0), time.perf_counter(), \
            len(exp.train_loader)
        first = pending["step_in_epoch"] if pending else 0
        progress = ProgressBar(steps, f"epoch {epoch}", enabled=self.ctx.is_main)
        batches = iter(exp.train_loader)
        if pending is not None:  # after the iterator drew its seed, as the uninterrupted run did at epoch start
            restore_rng_state(pending["rng"])
        for step, (images, targets, *extras) in enumerate(batches, start=first):
            images = exp.speed.to_device(images, self.ctx.device)
            targets = targets.to(self.ctx.device, non_blocking=True)
            if exp.mixup is not None:
                images, targets = exp.mixup(images, targets)
            try:
                values = self.train_step(images, targets, *extras)
            except RuntimeError as exc:
                explained = explain_ddp_error(exc)
                if explained is None:
                    raise
                raise explained from exc
            if values is None:  # a skipped non-finite step
                continue
            for key, value in values.items():
                sums[key] = sums.get(key, 0) + value * images.shape[0]
            seen += images.shape[0]
            progress.update(step + 1, seen, sums["loss"])
            if self.preemption is not None and step + 1 < steps and self.preemption.should_stop():
                progress.close()
                self.save_preempted(epoch, step + 1, sums, seen, epoch_start_sampler)
                raise Preempted(f"stopped by SIGTERM in epoch {epoch} after step {step + 1}/{steps}")
            if exp.log_freq and (step + 1) % exp.log_freq == 0:
                self.check_finite(sums, step + 1)
                logger.info("epoch %d step %d/%d loss %.4f lr %.3g", epoch, step + 1, steps,
                            (sums["loss"] / seen).item(), self.lr)
        progress.close()
        if exp.teacher_cache is not None:
            exp.teacher_cache.end_epoch(epoch)
        if sums:
            self.check_finite(sums, steps)
        seconds = time.perf_counter() - start
        keys = sorted(sums)
        totals = all_reduce_sum(torch.stack([sums[k].float() for k in keys] + [torch.tensor(
            float(seen), device=self.ctx.device)]), self.ctx) if keys else None
        if totals is None:
            return {"images_per_s": 0.0, "seconds": seconds}
        count = totals[-1].item()
        row = {k: totals[i].item() / count for i, k in enumerate(keys)}
        row.update(images_per_s=count / max(seconds, 1e-9), seconds=seconds)
        return row

    @property
    def lr(self) -> float:
        return self.exp.optimizer.param_groups[0]["lr"]

    def evaluate(self, loader, side: str = "student") -> Dict[str, float]:
        module = self.exp.student if side == "student" else self.exp.teacher
        was_training = module.training
        module.eval()
        result = evaluate(lambda x: module(x)[0], loader, self.ctx, self.exp.amp)
        module.train(was_training)
        return result

    # ------------------------------------------------------------------ checkpoints
    def state(self, epoch: int) -> dict:
        exp = self.exp
        state = {"model": exp.student.model.state_dict(), "student_side": exp.student.state_dict(),
                 "optimizer": exp.optimizer.state_dict(), "epoch": epoch, "global_step": self.global_step,
                 "best_top1": self.run_best, "rng": rng_state(exp.train_loader), "skipped_steps": self.skipped}
        if exp.scheduler is not None:
            state["scheduler"] = exp.scheduler.state_dict()
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if exp.ema is not None:
            state["model_ema"] = exp.ema.module.state_dict()
        if exp.teacher is not None and exp.teacher.trainable:
            state["teacher_side"] = exp.teacher.state_dict()
        return state

    def save_preempted(self, epoch: int, steps_done: int, sums, seen: int, epoch_start_sampler) -> None:
        """A checkpoint inside ``epoch``: resuming continues with step ``steps_done + 1`` of it."""
        if not (self.ctx.is_main and self.checkpoints is not None):
            return
        state = self.state(epoch - 1)
        state.update(epoch_in_progress=epoch, step_in_epoch=steps_done, partial_seen=seen,
                     partial_sums={k: v.detach() for k, v in sums.items()})
        if epoch_start_sampler is not None:
            state["sampler_epoch_start"] = epoch_start_sampler
        path = self.checkpoints.save(state, epoch, is_best=False, step=steps_done)
        logger.info("saved a resumable checkpoint %s; continue with --resume", path)

    def save(self, epoch: int, is_best: bool, top1: float) -> None:
        if not self.ctx.is_main:
            return
        if self.checkpoints is not None:
            self.checkpoints.save(self.state(epoch), epoch, is_best)
        if is_best and self.exp.student_ckpt and top1 > self.exp.best_value:
            save_atomic({"model": self.exp.student.model.state_dict(), "best_value": top1, "epoch": epoch},
                        self.exp.student_ckpt)
            self.exp.best_value = top1

    # ------------------------------------------------------------------ the loop
    def fit(self) -> Dict[str, float]:
        """Train the remaining epochs and test the best weights; ``{'preempted': True}`` after a SIGTERM stop."""
        exp = self.exp
        logger.info("training %s for %d epochs on %s (world size %d), lr %.4g", exp.name, exp.num_epochs,
                    self.ctx.device, self.ctx.world_size, self.lr)
        self.preemption = PreemptionWatch(self.ctx)
        try:
            self.run_epochs()
        except Preempted as stop:
            logger.warning("%s; exiting cleanly.", stop)
            return {"preempted": True}
        finally:
            self.preemption.close()
            if self.tensorboard:
                self.tensorboard.close()
        return self.finish()

    def run_epochs(self) -> None:
        exp = self.exp
        self.best_state = None
        for epoch in range(self.start_epoch, exp.num_epochs):
            row = {"epoch": epoch, "lr": self.lr}
            row.update(self.train_one_epoch(epoch))
            if exp.val_loader is not None:
                val = self.evaluate(exp.val_loader)
                row.update(val_top1=val["top1"], val_top5=val["top5"])
                metric = val["top1"]
                if exp.ema is not None:
                    ema = evaluate(exp.ema.module, exp.val_loader, self.ctx, exp.amp)
                    row.update(val_top1_ema=ema["top1"], val_top5_ema=ema["top5"])
            else:
                metric = -row.get("loss", math.inf)
            is_best = metric > self.run_best
            if is_best:
                self.run_best = metric
                self.best_state = {k: v.detach().clone() for k, v in exp.student.state_dict().items()}
            if exp.scheduler is not None and exp.scheduling_step <= 0:
                if isinstance(exp.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    exp.scheduler.step(metric)
                elif hasattr(exp.scheduler, "step_update"):  # a timm scheduler: told the next epoch
                    exp.scheduler.step(epoch + 1)
                else:
                    exp.scheduler.step()
            if self.metrics:  # the row first: a resumed run drops rows past its checkpoint
                self.metrics.write(row)
                self.tensorboard.write(row)
            self.save(epoch, is_best, metric)  # the end-of-epoch state, scheduler stepped
            logger.info("epoch %d: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), epoch)

    def finish(self) -> Dict[str, float]:
        """Load the best weights of the run into the student and evaluate them on the test loader."""
        exp = self.exp
        if self.best_state is not None:
            exp.student.load_state_dict(self.best_state)
        elif self.checkpoints is not None and os.path.isfile(os.path.join(self.checkpoints.directory, "best.pt")):
            best = load_checkpoint(os.path.join(self.checkpoints.directory, "best.pt"), "best checkpoint")
            exp.student.load_state_dict(best["student_side"])
        return self.test()

    def resume(self, path: str) -> None:
        """Restore everything a run checkpoint holds; training continues with the next epoch."""
        exp = self.exp
        state = load_checkpoint(path, "resume checkpoint")
        missing = [k for k in ("student_side", "optimizer", "epoch", "rng") if k not in state]
        if missing:
            raise DistillkitError(f"resume checkpoint {path!r} is not a distillkit run checkpoint "
                                  f"(no {', '.join(missing)}); give a checkpoints/last.pt or epoch_NNNN.pt file.")
        exp.student.load_state_dict(state["student_side"])
        if "teacher_side" in state and exp.teacher is not None:
            exp.teacher.load_state_dict(state["teacher_side"])
        exp.optimizer.load_state_dict(state["optimizer"])
        if exp.scheduler is not None and "scheduler" in state:
            exp.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if exp.ema is not None and "model_ema" in state:
            exp.ema.module.load_state_dict(state["model_ema"])
        self.start_epoch = int(state["epoch"]) + 1
        if "step_in_epoch" in state:  # taken inside an epoch (SIGTERM): finish that epoch first
            self.start_epoch = int(state["epoch_in_progress"])
            self.pending_resume = {k: state[k] for k in ("step_in_epoch", "partial_sums", "partial_seen", "rng")}
            if "sampler_epoch_start" in state:
                self.pending_resume["sampler_epoch_start"] = state["sampler_epoch_start"]
        self.global_step = int(state["global_step"])
        self.run_best = float(state["best_top1"])
        self.skipped = int(state.get("skipped_steps", 0))
        if self.pending_resume is None:
            restore_rng_state(state["rng"], exp.train_loader)
        if self.metrics and self.metrics.enabled:
            self.metrics.keep_epochs_up_to(int(state["epoch"]))
        logger.info("resumed from %s: epoch %d done, global step %d, best top-1 %.2f", path, state["epoch"],
                    self.global_step, self.run_best)

    def test(self) -> Dict[str, float]:
        """Top-1/top-5 of the student on the test loader (else the validation loader)."""
        loader = self.exp.test_loader or self.exp.val_loader
        if loader is None:
            return {}
        result = self.evaluate(loader)
        logger.info("test: top-1 %.2f%%, top-5 %.2f%% on %d images", result["top1"], result["top5"], result["count"])
        return result
