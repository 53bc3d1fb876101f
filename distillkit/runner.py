"""One run from a config file: what ``distillkit train`` / ``eval`` and the example runner call.

It sits above :mod:`distillkit.experiment` and :mod:`distillkit.engine`: it sets up the
process group and logging, loads the config, prepares the run directory, builds the
experiment and hands it to the Trainer.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from typing import Dict, Iterable, Optional

import numpy as np
import torch
import yaml

from .config import load_config
from .engine.distributed import cleanup, setup_distributed
from .engine.logs import add_file_handler, setup_logging
from .engine.trainer import Trainer
from .errors import DistillkitError
from .experiment import build_experiment, experiment_name
from .models.checkpoint import load_model_weights

logger = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class _ConfigDumper(yaml.SafeDumper):
    """Dumps any object a tag produced (a class, a function) as its repr."""


_ConfigDumper.add_multi_representer(object, lambda dumper, obj: dumper.represent_str(repr(obj)))


def default_run_dir(name: str) -> str:
    return os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def prepare_run_dir(run_dir: str) -> None:
    """Create ``run_dir``; refuse one that already holds checkpoints (nothing saved is overwritten)."""
    checkpoints = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(checkpoints) and os.listdir(checkpoints):
        raise DistillkitError(f"the run directory {run_dir!r} already holds checkpoints; distillkit will not "
                              f"overwrite them. Continue that run with --resume, or pass a new --run-dir (or leave "
                              f"it out for a fresh one).")
    os.makedirs(run_dir, exist_ok=True)


def resolve_resume(resume: str, run_dir: Optional[str]):
    """``(run_dir, checkpoint path)`` for ``--resume`` (``'latest'`` or a path)."""
    if resume == "latest":
        if not run_dir:
            raise DistillkitError("--resume without a path needs --run-dir: the run directory to continue.")
        path = os.path.join(run_dir, "checkpoints", "last.pt")
        if not os.path.isfile(path):
            raise DistillkitError(f"--resume: {run_dir!r} holds no checkpoints/last.pt; nothing to resume.")
        return run_dir, path
    if not os.path.isfile(resume):
        raise DistillkitError(f"--resume: checkpoint {resume!r} does not exist.")
    return run_dir or os.path.dirname(os.path.dirname(os.path.abspath(resume))), resume


def train_from_config(config_path: str, *, overrides: Iterable[str] = (), device: Optional[str] = None,
                      seed: int = 0, run_dir: Optional[str] = None, debug: bool = False,
                      log_file: Optional[str] = None, scale_lr: Optional[bool] = None, test_only: bool = False,
                      student_only: bool = False, start_epoch: int = 0, resume: Optional[str] = None,
                      callbacks: Iterable[object] = ()) -> Dict[str, object]:
    """Load, build, train (unless ``test_only``) and test; returns ``{'student': metrics, 'teacher': metrics}``
    (or ``{'preempted': True, 'run_dir': ...}`` after a SIGTERM stop).

    ``resume``: ``'latest'`` (``run_dir/checkpoints/last.pt``) or a checkpoint path, whose run directory
    (``<run_dir>/checkpoints/<file>``) is reused unless ``run_dir`` is given.  ``scale_lr``: multiply the
    learning rate by the world size (None: the config's ``train.scale_lr``).  A training run writes its
    results to ``<run_dir>/results.json`` too."""
    ctx = setup_distributed(device)
    try:
        setup_logging(log_file, ctx.is_main, debug)
        config = load_config(config_path, overrides)
        seed_everything(seed)
        results: Dict[str, object] = {}
        if test_only:
            experiment = build_experiment(config, ctx, seed, scale_lr, for_training=False)
            trainer = Trainer(experiment)
            results["student"] = trainer.test()
        else:
            resume_path = None
            if resume:
                run_dir, resume_path = resolve_resume(resume, run_dir)
            run_dir = run_dir or default_run_dir(experiment_name(config))
            if ctx.is_main:
                if resume_path is None:
                    prepare_run_dir(run_dir)
                add_file_handler(os.path.join(run_dir, "train.log"))
                with open(os.path.join(run_dir, "config.yaml"), "w", encoding="utf-8") as handle:
                    yaml.dump(dict(config), handle, Dumper=_ConfigDumper, sort_keys=False)
                logger.info("run directory: %s", run_dir)
            experiment = build_experiment(config, ctx, seed, scale_lr, for_training=True)
            trainer = Trainer(experiment, run_dir=run_dir, start_epoch=start_epoch, callbacks=callbacks)
            if resume_path:
                trainer.resume(resume_path)
            results["student"] = trainer.fit()
            if results["student"].get("preempted"):
                return {"preempted": True, "run_dir": run_dir}
        if experiment.teacher is not None and not student_only and experiment.test_loader is not None:
            results["teacher"] = trainer.evaluate(experiment.test_loader, side="teacher")
            logger.info("teacher test: top-1 %.2f%%, top-5 %.2f%%", results["teacher"]["top1"],
                        results["teacher"]["top5"])
        if not test_only and ctx.is_main:
            with open(os.path.join(run_dir, "results.json"), "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
        return results
    finally:
        cleanup()


def evaluate_from_config(config_path: str, *, ckpt: Optional[str] = None, teacher: bool = False,
                         overrides: Iterable[str] = (), device: Optional[str] = None) -> Dict[str, float]:
    """Top-1/top-5 on the test loader of the student (or ``teacher``), optionally from ``ckpt``."""
    ctx = setup_distributed(device)
    try:
        setup_logging(None, ctx.is_main)
        config = load_config(config_path, overrides)
        experiment = build_experiment(config, ctx, for_training=False)
        side = experiment.teacher if teacher else experiment.student
        if side is None:
            raise DistillkitError(f"{config_path}: --teacher was given but the config declares no "
                                  f"models.teacher_model.")
        if ckpt:
            load_model_weights(side.model, ckpt, what="--ckpt checkpoint")
        if experiment.test_loader is None and experiment.val_loader is None:
            raise DistillkitError(f"{config_path}: no test.test_data_loader (nor train.val_data_loader) to "
                                  f"evaluate on.")
        trainer = Trainer(experiment)
        return trainer.evaluate(experiment.test_loader or experiment.val_loader, "teacher" if teacher else "student")
    finally:
        cleanup()
