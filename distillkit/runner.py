"""One run from a config file: what ``distillkit train`` / ``eval`` and the example runner call.

It sits above :mod:`distillkit.experiment` and :mod:`distillkit.engine`: it sets up the
process group and logging, loads the config, prepares the run directory, builds the
experiment and hands it to the Trainer.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import time
from typing import Dict, Iterable, List, Optional

import yaml

from .config import load_config
from .config.schema import ModelSettings
from .config.validate import parse_settings
from .engine.distributed import barrier, cleanup, setup_distributed
from .engine.logs import add_file_handler, setup_logging
from .engine.run_dir import RunDirectory, resolve_resume
from .config.tags import LAZY_TAGS, represent_lazy
from .engine.trackers import Trackers, run_entries
from .engine.trainer import Trainer
from .errors import DistillkitError
from .experiment import build_experiment, build_shared, experiment_name, located, student_block
from .models.checkpoint import load_checkpoint, load_model_weights
from .multi.born_again import record_generation, restore_generations
from .engine.evaluate import evaluate_side
from .multi.groups import SideGroup
from .utils import seed_everything

logger = logging.getLogger(__name__)


class _ConfigDumper(yaml.SafeDumper):
    """Dumps any object a tag produced (a class, a function) as its repr, without its memory address (so the
    same config dumps the same in every process, and a resumed run can compare it with its config.yaml)."""


_ConfigDumper.add_multi_representer(
    object, lambda dumper, obj: dumper.represent_str(re.sub(r" at 0x[0-9a-fA-F]+", "", repr(obj))))
for _lazy in LAZY_TAGS:
    _ConfigDumper.add_representer(_lazy, represent_lazy)


class _RecordedConfigLoader(yaml.SafeLoader):
    """Reads a recorded config.yaml as plain data: a tag is kept as ``{tag: value}`` (nothing is imported)."""


def _tagged(loader, tag, node):
    if isinstance(node, yaml.SequenceNode):
        return {tag: loader.construct_sequence(node, deep=True)}
    if isinstance(node, yaml.MappingNode):
        return {tag: loader.construct_mapping(node, deep=True)}
    return {tag: loader.construct_scalar(node)}


_RecordedConfigLoader.add_multi_constructor("!", _tagged)


def default_run_dir(name: str) -> str:
    return os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def _dump(config) -> str:
    return yaml.dump(dict(config), Dumper=_ConfigDumper, sort_keys=False)


def plain_config(config) -> dict:
    """The config as config.yaml records it (the file's own form), as plain data: what the trackers log."""
    return yaml.load(_dump(getattr(config, "as_written", config)), Loader=_RecordedConfigLoader)


def config_changes(before, after, prefix: str = "") -> List[str]:
    """The key paths where two configs (as plain YAML data) differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        changes = []
        for key in list(before) + [k for k in after if k not in before]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                changes.append(path)
            else:
                changes += config_changes(before[key], after[key], path)
        return changes
    return [] if before == after else [prefix or "(the whole config)"]


def record_config(run_dir: str, config, resuming: bool, allow_config_change: bool) -> None:
    """Write ``config.yaml`` (in the file's own form); when resuming, refuse a config that differs from the run's
    own (unless allowed)."""
    path = os.path.join(run_dir, "config.yaml")
    text = _dump(getattr(config, "as_written", config))
    if resuming and os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            saved = handle.read()
        changes = config_changes(*(yaml.load(t, Loader=_RecordedConfigLoader) for t in (saved, text)))
        if not changes:
            return
        listed = ", ".join(changes[:12]) + (f" and {len(changes) - 12} more" if len(changes) > 12 else "")
        if not allow_config_change:
            raise DistillkitError(f"--resume: the config differs from the one this run started with ({path}) at "
                                  f"{listed}. Resume with the same config and --set flags, or pass "
                                  f"--allow-config-change to continue with the new values.")
        kept = os.path.join(run_dir, f"config.before-resume-{time.strftime('%Y%m%d-%H%M%S')}.yaml")
        os.replace(path, kept)
        logger.warning("resuming with a changed config (--allow-config-change) at %s; the earlier one is kept as %s",
                       listed, kept)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def train_from_config(config_path: str, *, overrides: Iterable[str] = (), device: Optional[str] = None,
                      seed: int = 0, run_dir: Optional[str] = None, debug: bool = False,
                      log_file: Optional[str] = None, scale_lr: Optional[bool] = None, test_only: bool = False,
                      student_only: bool = False, start_epoch: int = 0, resume: Optional[str] = None,
                      allow_config_change: bool = False, strict: bool = False,
                      callbacks: Iterable[object] = ()) -> Dict[str, object]:
    """Load, build, train (unless ``test_only``) and test; returns ``{'student': metrics, 'teacher': metrics}``
    (or ``{'preempted': True, 'run_dir': ...}`` after a SIGTERM stop).

    ``resume``: ``'latest'`` (``run_dir/checkpoints/last.pt``; a directory without one starts from scratch) or a
    checkpoint path, whose run directory is reused unless ``run_dir`` is given.  A resumed run must have the
    config it started with, unless ``allow_config_change``; ``strict`` refuses config keys distillkit does not
    read.  ``scale_lr``: multiply the learning rate by the world size (None: the config's ``train.scale_lr``).
    A training run holds its run directory exclusively and writes its results to ``<run_dir>/results.json``; an
    error that stops it is written to its train.log too."""
    ctx = setup_distributed(device)
    if hasattr(signal, "SIGXFSZ"):  # a file-size limit makes a write fail (a clear error) instead of killing us
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    held, run_log, trackers, failed = None, None, Trackers(), True
    try:
        setup_logging(log_file, ctx.is_main, debug)
        config = load_config(config_path, overrides, strict=strict)
        seed_everything(seed)
        if test_only:
            experiment = build_experiment(config, ctx, seed, scale_lr, for_training=False)
            return _test(experiment.trainer_class(experiment), experiment, student_only)
        resume_path = None
        if resume:
            run_dir, resume_path = resolve_resume(resume, run_dir)
        run_dir = run_dir or default_run_dir(experiment_name(config))
        if ctx.is_main:
            held = RunDirectory.lock(run_dir)
            if resume_path is None:
                held.start_fresh()
            run_log = add_file_handler(os.path.join(run_dir, "train.log"))
            record_config(run_dir, config, resuming=resume_path is not None,
                          allow_config_change=allow_config_change)
            logger.info("run directory: %s", run_dir)
        with located(config):  # checked on every rank, started on rank 0, before anything is built
            settings = parse_settings(config)
            trackers = Trackers.open(run_entries(settings.stages), plain_config(config), run_dir,
                                     ctx.is_main, resuming=resume_path is not None)
        shared = build_shared(config, ctx, settings)
        resume_state = load_checkpoint(resume_path, "resume checkpoint") if resume_path else None  # read once
        stages = range(first_stage(shared.run.stages, resume_state), len(shared.run.stages))
        restore_generations(shared, resume_state, stages[0])
        for stage in stages:  # torchdistill's train.stage1, stage2, ...: one after the other on the same models
            experiment = build_experiment(config, ctx, seed, scale_lr, for_training=True, stage=stage, shared=shared)
            trainer = experiment.trainer_class(experiment, run_dir=run_dir, start_epoch=start_epoch,
                                               callbacks=callbacks, trackers=trackers)
            if resume_path and stage == stages[0]:
                trainer.resume(resume_path, resume_state)
            with located(config):  # a config error the steps find (a loss given the wrong output)
                student = trainer.fit(test=stage == stages[-1])
            if student.get("preempted"):
                failed = False
                return {"preempted": True, "run_dir": run_dir}
            if stage != stages[-1]:
                record_generation(shared, experiment)
                experiment.close()
                barrier(ctx)  # rank 0 wrote the files the next stage reads (FT's paraphraser, SSKD's head)
        results = {"student": student, **_test(trainer, experiment, student_only, student_done=True)}
        if ctx.is_main:
            with open(os.path.join(run_dir, "results.json"), "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
        trackers.log_results(results)  # the same dict as results.json
        failed = False
        return results
    except BaseException as exc:
        if run_log is not None:  # the console shows it once (the CLI prints it); train.log keeps it too
            _log_failure(run_log, exc)
        raise
    finally:
        trackers.close(failed)
        if held is not None:
            held.release()
        cleanup()


def first_stage(stages, state: Optional[dict]) -> int:
    """The stage a run starts with: 0, or when resuming from the checkpoint ``state``, the stage of the next epoch
    to train."""
    if state is None:
        return 0
    next_epoch = int(state.get("epoch_in_progress", int(state.get("epoch", -1)) + 1))
    end = 0
    for index, stage in enumerate(stages):
        end += stage.num_epochs
        if next_epoch < end:
            return index
    return len(stages) - 1


def _test(trainer: Trainer, experiment, student_only: bool, student_done: bool = False) -> Dict[str, object]:
    """The test results of the student (unless ``student_done``) and, unless ``student_only``, the teacher."""
    results = {} if student_done else {"student": trainer.test()}
    if isinstance(experiment.teacher, SideGroup) and not student_only and experiment.test_loader is not None:
        results["teachers"] = {name: evaluate_side(side, experiment.test_loader, experiment.ctx, experiment.amp,
                                                   experiment.task)
                               for name, side in experiment.teacher.members.items()}
        for name, result in results["teachers"].items():
            logger.info("teacher %s test: %s", name, experiment.task.summary(result))
    elif experiment.teacher is not None and not student_only and experiment.test_loader is not None:
        results["teacher"] = trainer.evaluate(experiment.test_loader, side="teacher")
        logger.info("teacher test: %s", experiment.task.summary(results["teacher"]))
    return results


def _log_failure(handler: logging.Handler, exc: BaseException) -> None:
    if isinstance(exc, KeyboardInterrupt):
        message, exc_info = "interrupted (Ctrl-C); the last complete checkpoint is kept: continue with --resume", None
    elif isinstance(exc, DistillkitError):
        message, exc_info = f"error: {exc}", None
    else:
        message, exc_info = f"crashed: {type(exc).__name__}: {exc}", (type(exc), exc, exc.__traceback__)
    handler.handle(logging.LogRecord(logger.name, logging.ERROR, __file__, 0, message, None, exc_info))


def evaluate_from_config(config_path: str, *, ckpt: Optional[str] = None, teacher: bool = False,
                         overrides: Iterable[str] = (), device: Optional[str] = None,
                         strict: bool = False) -> Dict[str, float]:
    """Top-1/top-5 on the test loader of the student (or ``teacher``), optionally from ``ckpt``."""
    ctx = setup_distributed(device)
    try:
        setup_logging(None, ctx.is_main)
        config = load_config(config_path, overrides, strict=strict)
        experiment = build_experiment(config, ctx, for_training=False)
        side = experiment.teacher if teacher else experiment.student
        if side is None:
            raise DistillkitError(f"{config_path}: --teacher was given but the config declares no "
                                  f"models.teacher_model.")
        if isinstance(side, SideGroup):
            return _evaluate_members(config, experiment, side, teacher, ckpt)
        role = "teacher" if teacher else "student"
        if ckpt:
            load_model_weights(side.model, ckpt, what="--ckpt checkpoint")
            logger.info("evaluating the %s (%s) with the weights of %s (--ckpt)", role, type(side.model).__name__, ckpt)
        else:
            key_path = "models.teacher_model" if teacher else student_block(config)[0]
            model = ModelSettings.parse(config["models"][key_path.split(".")[1]], key_path)
            source = model.load_from if model.load_from and os.path.isfile(model.load_from) else None
            trained = None if teacher else model.save_to
            if trained and trained != source and os.path.isfile(trained):  # 1.x's dst_ckpt: the run's best weights
                load_model_weights(side.model, trained, what=f"student checkpoint ({key_path}.dst_ckpt)")
                source = trained
            source = source or "its initial weights (no checkpoint file)"
            logger.info("evaluating the %s (%s) with %s", role, type(side.model).__name__, source)
        if experiment.test_loader is None and experiment.val_loader is None:
            raise DistillkitError(f"{config_path}: no test.test_data_loader (nor train.val_data_loader) to "
                                  f"evaluate on.")
        trainer = Trainer(experiment)
        return trainer.evaluate(experiment.test_loader or experiment.val_loader, "teacher" if teacher else "student")
    finally:
        cleanup()


def _evaluate_members(config, experiment, group, teacher: bool, ckpt: Optional[str]) -> Dict[str, object]:
    """``distillkit eval`` of models.teachers / models.students: each model with its own checkpoint, by name."""
    role = "teachers" if teacher else "students"
    loader = experiment.test_loader or experiment.val_loader
    if ckpt or loader is None:
        raise DistillkitError(f"--ckpt loads one model, and models.{role} has several (each loads its own ckpt); "
                              f"run without --ckpt." if ckpt else "no test.test_data_loader (nor "
                              "train.val_data_loader) to evaluate on.")
    results = {}
    for name, member in group.members.items():
        settings = ModelSettings.parse(config["models"][role][name], f"models.{role}.{name}")
        trained = None if teacher else settings.save_to
        if trained and trained != settings.load_from and os.path.isfile(trained):  # dst_ckpt: the run's best
            load_model_weights(member.model, trained, what=f"student checkpoint (models.students.{name}.dst_ckpt)")
        results[name] = evaluate_side(member, loader, experiment.ctx, experiment.amp, experiment.task)
        logger.info("%s %s: %s", role[:-1], name, experiment.task.summary(results[name]))
    return results
