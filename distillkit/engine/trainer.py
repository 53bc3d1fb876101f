"""The Trainer: one loop for teachers, student baselines and distilled students.

One step::

    teacher_out, teacher_io = teacher(x)      # frozen parts in eval mode, no autograd graph
    student_out, student_io = student(x)
    loss, terms = criterion(student_out, teacher_out, student_io, teacher_io, y)

Each epoch trains, evaluates on the validation loader, writes ``checkpoints/epoch_NNNN.pt``
(``last.pt``, and ``best.pt`` when the best metric improves) and the student's ``ckpt``,
and appends a row to ``metrics.jsonl`` and gives it to the experiment trackers (``trackers``: the runner's,
for the whole run; a Trainer given only ``run_dir`` opens and closes those of ``train.trackers``).
Only rank 0 writes.  Loss values stay on the device between ``log_freq`` steps.  Callbacks (objects with
``on_step_end(trainer, values)`` and/or ``on_epoch_end(trainer, epoch, row)``) see every step and every epoch.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Dict, Iterable, Optional

import torch

from ..errors import ConfigError, DistillkitError
from ..data.samplers import training_sampler
from ..models.checkpoint import load_checkpoint, save_atomic
from .checkpoint import PendingResume, RunCheckpoints, restore_rng_state, restore_run_state, run_state
from .distributed import all_reduce_sum, explain_ddp_error
from .evaluate import evaluate_side
from .logs import MetricsLog
from .preemption import Preempted, PreemptionWatch
from .progress import ProgressBar
from .step import OptimizerStep, step_scheduler
from .trackers import Trackers, parse_entries

logger = logging.getLogger(__name__)


class Trainer:
    def __init__(self, experiment, run_dir: Optional[str] = None, start_epoch: int = 0,
                 callbacks: Iterable[object] = (), trackers: Optional[Trackers] = None):
        self.exp = experiment
        self.ctx = experiment.ctx
        self.settings = experiment.settings
        self.run_dir = run_dir
        self.start_epoch = max(start_epoch, experiment.epoch_offset)  # epochs are numbered across stages
        self.global_step = 0
        self.callbacks = list(callbacks)
        self.step = OptimizerStep(experiment.optimizer, experiment.amp.grad_scaler(), self.settings.clip_grad_norm,
                                  self.settings.optimizer.grad_accum_step) if experiment.optimizer is not None else None
        self.best = experiment.new_best_metric()
        self.metrics = MetricsLog(os.path.join(run_dir, "metrics.jsonl"), self.ctx.is_main) if run_dir else None
        self.owns_trackers = trackers is None and run_dir is not None  # else the caller's, for the whole run
        self.trackers = Trackers.open(parse_entries(self.settings.trackers, f"{self.settings.key_path}.trackers"), {},
                                      run_dir, self.ctx.is_main) if self.owns_trackers else trackers or Trackers()
        self.checkpoints = RunCheckpoints(run_dir, self.settings.keep_last_checkpoints) if run_dir else None
        self.skipped = 0
        self.pending: Optional[PendingResume] = None  # set by resume() from a checkpoint taken inside an epoch
        self.preemption = None
        if run_dir and self.ctx.is_main:
            os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)

    # ------------------------------------------------------------------ training
    def train_mode(self) -> None:
        """The student side in training mode; the teacher side too (it keeps its frozen parts in eval mode)."""
        self.exp.student_module.train()
        if self.exp.teacher_module is not None:
            self.exp.teacher_module.train()

    def tell_epoch(self, epoch: int) -> None:
        """Loss terms with an epoch schedule (DKD's warm-up) learn the epoch of the stage through ``set_epoch``."""
        for module in self.exp.criterion.modules():
            if hasattr(module, "set_epoch"):
                module.set_epoch(epoch)

    def forward(self, images, targets, supp_dict: Optional[dict] = None):
        """Teacher, student and criterion on one batch: ``(loss, terms, student_io, teacher_io)``."""
        exp = self.exp
        supp_dict = supp_dict if supp_dict is not None else {}
        with exp.amp.autocast():
            teacher_out, teacher_io = exp.teacher_forward(images, supp_dict=supp_dict, targets=targets)
            student_out, student_io = exp.student_module(images, targets=targets)
            loss, terms = exp.criterion(student_out, teacher_out, student_io, teacher_io, targets, supp_dict)
        return loss, terms, student_io, teacher_io

    def train_step(self, images, targets, supp_dict: Optional[dict] = None) -> Optional[Dict[str, torch.Tensor]]:
        exp = self.exp
        loss, terms, _, _ = self.forward(images, targets, supp_dict)
        if self.settings.skip_nonfinite and not bool(torch.isfinite(loss)):  # a host sync, only when skipping
            self.skipped += 1
            message = self.nonfinite_message(terms, f"at global step {self.global_step + 1}")
            if self.skipped > self.settings.skip_nonfinite:
                raise DistillkitError(message + f" {self.skipped - 1} such steps were skipped already "
                                                f"(train.skip_nonfinite: {self.settings.skip_nonfinite}).")
            logger.warning("skipping step: %s (%d of at most %d)", message, self.skipped,
                           self.settings.skip_nonfinite)
            return None
        stepped = self.step(loss)
        self.global_step += 1  # counts batches (torchdistill's stage_grad_count), also under grad_accum_step
        if exp.ema is not None and stepped:
            exp.ema.update(exp.student.model, step=self.global_step)
        if exp.scheduling_step > 0 and self.global_step % exp.scheduling_step == 0:
            step_scheduler(exp.scheduler, self.global_step, per_iteration=True, metric=lambda: loss.item())
        return {"loss": loss.detach(), **{f"loss/{k}": v.detach().float() for k, v in terms.items()}}

    @staticmethod
    def nonfinite_message(terms: Dict[str, torch.Tensor], when: str) -> str:
        bad = [f"{name} = {value.item()}" for name, value in terms.items() if not bool(torch.isfinite(value))]
        return (f"the loss became non-finite {when}: {', '.join(bad) or 'the total'}. Lower the "
                f"learning rate, check the data, or set train.skip_nonfinite: N to skip up to N such steps.")

    def check_finite(self, sums: Dict[str, torch.Tensor]) -> None:
        """Stop with the name of the non-finite term (the running sums turn NaN/inf with it)."""
        if not bool(torch.isfinite(sums["loss"])):
            terms = {k[len("loss/"):]: v for k, v in sums.items() if k.startswith("loss/")}
            window = f"between global steps {self.first_step_of_window} and {self.global_step}"
            raise DistillkitError(self.nonfinite_message(terms, window) + " The last checkpoint is untouched; "
                                  "train.skip_nonfinite checks every step and names the exact one.")
        self.first_step_of_window = self.global_step + 1

    def _begin_epoch(self, epoch: int):
        """Set the sampler up for ``epoch`` (or the rest of it, after a mid-epoch resume)."""
        exp = self.exp
        sampler = training_sampler(exp.train_loader)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        generator = getattr(sampler, "generator", None)
        pending, self.pending = self.pending, None
        if pending is not None:
            per_step = getattr(sampler, "items_per_step", None) or exp.train_loader.batch_size
            sampler.skip_next(pending.step_in_epoch * per_step)
            if generator is not None and pending.sampler_epoch_start is not None:
                generator.set_state(pending.sampler_epoch_start)
        epoch_start_sampler = generator.get_state() if generator is not None else None
        if exp.teacher_cache is not None:
            exp.teacher_cache.begin_epoch(epoch, sampler, resumed_inside=pending is not None)
        return pending, epoch_start_sampler

    def train_one_epoch(self, epoch: int) -> Dict[str, float]:
        exp = self.exp
        self.train_mode()
        self.tell_epoch(epoch - exp.epoch_offset)
        pending, epoch_start_sampler = self._begin_epoch(epoch)
        sums: Dict[str, torch.Tensor] = dict(pending.partial_sums) if pending else {}
        seen = int(pending.partial_seen) if pending else 0
        first = pending.step_in_epoch if pending else 0
        self.first_step_of_window = self.global_step + 1
        start, steps = time.perf_counter(), len(exp.train_loader)
        progress = ProgressBar(steps, f"epoch {epoch}", enabled=self.ctx.is_main, first=first, seen=seen)
        batches = iter(exp.train_loader)
        if pending is not None:  # after the iterator drew its seed, as the uninterrupted run did at epoch start
            restore_rng_state(pending.rng)
        for step, (images, targets, supp) in enumerate(batches, start=first):
            images, targets = exp.task.to_device(images, targets, self.ctx.device, exp.speed)
            if exp.mixup is not None:
                images, targets = exp.mixup(images, targets)
            try:
                values = self.train_step(images, targets, supp)
            except RuntimeError as exc:
                explained = explain_ddp_error(exc)
                if explained is None:
                    raise
                raise explained from exc
            if values is None:  # a skipped non-finite step
                continue
            count = exp.task.batch_size(images)
            for key, value in values.items():
                sums[key] = sums.get(key, 0) + value * count
            seen += count
            progress.update(step + 1, seen, sums["loss"])
            for callback in self.callbacks:
                if hasattr(callback, "on_step_end"):
                    callback.on_step_end(self, values)
            if self.preemption is not None and step + 1 < steps and self.preemption.should_stop():
                progress.close()
                self.save_preempted(epoch, PendingResume(step + 1, {k: v.detach() for k, v in sums.items()}, seen,
                                                         None, epoch_start_sampler))
                raise Preempted(f"stopped by SIGTERM in epoch {epoch} after step {step + 1}/{steps}")
            if (step + 1) % exp.log_freq == 0:
                self.check_finite(sums)
                progress.clear()  # the log line, not mixed into the bar's
                logger.info("epoch %d step %s lr %.3g", epoch, progress.status(step + 1, seen, sums["loss"]), self.lr)
        progress.close()
        if exp.teacher_cache is not None:
            exp.teacher_cache.end_epoch(epoch)
        if sums:
            self.check_finite(sums)
        return self._epoch_row(sums, seen, time.perf_counter() - start)

    def _epoch_row(self, sums: Dict[str, torch.Tensor], seen: int, seconds: float) -> Dict[str, float]:
        """Per-sample means of the loss terms over all ranks, and the throughput."""
        keys = sorted(sums)
        if not keys:
            return {"images_per_s": 0.0, "seconds": seconds}
        totals = all_reduce_sum(torch.stack([sums[k].float() for k in keys] + [torch.tensor(
            float(seen), device=self.ctx.device)]), self.ctx)
        count = totals[-1].item()
        row = {k: totals[i].item() / count for i, k in enumerate(keys)}
        row.update(images_per_s=count / max(seconds, 1e-9), seconds=seconds)
        return row

    @property
    def lr(self) -> float:
        return self.exp.optimizer.param_groups[0]["lr"]

    def evaluate(self, loader, side: str = "student") -> Dict[str, float]:
        """The task's metrics (top-1/top-5 for classification) of a side's whole model."""
        return evaluate_side(self.exp.student if side == "student" else self.exp.teacher, loader, self.ctx,
                             self.exp.amp, self.exp.task)

    # ------------------------------------------------------------------ checkpoints
    def save_preempted(self, epoch: int, pending: PendingResume) -> None:
        """A checkpoint inside ``epoch``: resuming continues with step ``pending.step_in_epoch + 1`` of it."""
        if not (self.ctx.is_main and self.checkpoints is not None):
            return
        state = run_state(self.exp, self.step, epoch - 1, self.global_step, self.best, self.skipped, pending)
        path = self.checkpoints.save(state, epoch, is_best=False, step=pending.step_in_epoch)
        logger.info("saved a resumable checkpoint %s; continue with --resume", path)

    def save(self, epoch: int, is_best: bool) -> None:
        if not self.ctx.is_main:
            return
        if self.checkpoints is not None:
            state = run_state(self.exp, self.step, epoch, self.global_step, self.best, self.skipped)
            self.checkpoints.save(state, epoch, is_best)
        ckpt_best = self.exp.student_ckpt_best
        if is_best and self.exp.student_ckpt and ckpt_best.update(self.best.value):
            save_atomic({"model": self.exp.student.model.state_dict(), "best_metric": ckpt_best.state_dict(),
                         "best_value": ckpt_best.value, "epoch": epoch}, self.exp.student_ckpt)

    def post_epoch_process(self) -> None:
        """Special modules that keep files of their own (PAD's variance branch, FT's paraphraser, SSKD's head)
        write them after each epoch, on rank 0, as in torchdistill."""
        if not self.ctx.is_main:
            return
        for side in (self.exp.student, self.exp.teacher):
            if side is not None and hasattr(side.special, "post_epoch_process"):
                side.special.post_epoch_process()

    def resume(self, path: str, state: Optional[dict] = None) -> None:
        """Restore everything a run checkpoint holds (``state``: its content, if read already); training continues
        where it stopped."""
        point = restore_run_state(path, self.exp, self.step, self.best, state)
        self.start_epoch, self.global_step, self.skipped = point.start_epoch, point.global_step, point.skipped_steps
        self.pending = point.pending
        if self.metrics and self.metrics.enabled:
            self.metrics.keep_epochs_up_to(point.epoch_done)
        logger.info("resumed from %s: epoch %d done, global step %d, best %s", path, point.epoch_done,
                    self.global_step, self.best.describe())

    # ------------------------------------------------------------------ the loop
    def fit(self, test: bool = True) -> Dict[str, float]:
        """Train the remaining epochs and (``test``) test the best weights; ``{'preempted': True}`` after a
        SIGTERM stop."""
        exp = self.exp
        if exp.num_epochs == 0:
            logger.warning("%s.num_epochs is 0: nothing is trained%s.", exp.settings.key_path,
                           ", so nothing is tested" if test else "")
            return {}
        stage = f" (stage {exp.stage + 1} of {exp.num_stages})" if exp.multi_stage else ""
        logger.info("training %s%s for %d epochs on %s (world size %d), lr %.4g", exp.name, stage, exp.num_epochs,
                    self.ctx.device, self.ctx.world_size, self.lr)
        self.preemption = PreemptionWatch(self.ctx)
        try:
            self.run_epochs()
        except Preempted as stop:
            logger.warning("%s; exiting cleanly.", stop)
            return {"preempted": True}
        finally:
            self.preemption.close()
            if self.owns_trackers:
                self.trackers.close()
        return self.finish() if test else {}

    def epoch_metrics(self, epoch: int) -> Dict[str, float]:
        """Train one epoch and evaluate: the metrics.jsonl row."""
        exp = self.exp
        row = {"epoch": epoch, **({"stage": exp.stage + 1} if exp.multi_stage else {}), "lr": self.lr}
        row.update(self.train_one_epoch(epoch))
        if exp.val_loader is not None:
            val = self.evaluate(exp.val_loader)
            row.update({f"val_{name}": val[name] for name in exp.task.metrics})
            if exp.ema is not None:
                ema = exp.task.evaluate(exp.ema.module, exp.val_loader, self.ctx, exp.amp)
                row.update({f"val_{name}_ema": ema[name] for name in exp.task.metrics})
        return row

    def run_epochs(self) -> None:
        exp = self.exp
        for epoch in range(self.start_epoch, exp.epoch_offset + exp.num_epochs):
            row = self.epoch_metrics(epoch)
            if self.best.name not in row:
                raise ConfigError(f"the best metric {self.best.name!r} is not measured by this run; its metrics are "
                                  f"{', '.join(sorted(row))}.", key_path="train.best_metric.name")
            is_best = self.best.update(row[self.best.name], snapshot=lambda: {
                k: v.detach().clone() for k, v in exp.student.state_dict().items()})
            if exp.scheduling_step <= 0:
                step_scheduler(exp.scheduler, epoch - exp.epoch_offset + 1, per_iteration=False,
                               metric=row[self.best.name])
            if self.metrics:  # the row first: a resumed run drops rows past its checkpoint
                self.metrics.write(row)
            self.trackers.log_epoch(row, epoch)  # every tracker (rank 0 has them)
            self.save(epoch, is_best)  # the end-of-epoch state, scheduler stepped
            self.post_epoch_process()
            for callback in self.callbacks:
                if hasattr(callback, "on_epoch_end"):
                    callback.on_epoch_end(self, epoch, row)
            logger.info("epoch %d: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"), epoch)

    def finish(self) -> Dict[str, float]:
        """Load the best weights of the run into the student and evaluate them on the test loader."""
        exp = self.exp
        if self.best.best_state is not None:
            exp.student.load_state_dict(self.best.best_state)
        elif self.checkpoints is not None and os.path.isfile(os.path.join(self.checkpoints.directory, "best.pt")):
            best = load_checkpoint(os.path.join(self.checkpoints.directory, "best.pt"), "best checkpoint")
            exp.student.load_state_dict(best["student_side"])
        return self.test()

    def test(self) -> Dict[str, float]:
        """The task's metrics of the student on the test loader (else the validation loader)."""
        loader = self.exp.test_loader or self.exp.val_loader
        if loader is None:
            return {}
        result = self.evaluate(loader)
        logger.info("test: %s", self.exp.task.summary(result))
        return result
