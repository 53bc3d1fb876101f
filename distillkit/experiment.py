"""build_experiment(config): everything a run needs, built and validated.

Order: plugins, datasets, loaders, models (+ checkpoints), teacher and student
sides, criterion, optimizer, scheduler.  Any :class:`ConfigError` raised on the
way is located in the config file (line and key path) before it leaves.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from .data import build_datasets, build_loader
from .engine.amp import AmpSettings
from .engine.distributed import DistContext, wrap_side
from .engine.recipe import build_ema, build_mixup
from .engine.speed import SpeedSettings
from .engine.teacher_cache import TeacherCache, check_cacheable, weights_fingerprint
from .data.replay import ReplayPlan
from .errors import ConfigError, DistillkitError
from .losses import build_criterion
from .model_side import ModelSide
from .models import build_model, load_model_weights
from .plugins import import_modules, load_entry_point_plugins
from .utils import call_with_params

logger = logging.getLogger("distillkit")


@dataclass
class Experiment:
    config: dict
    ctx: DistContext
    student: ModelSide
    criterion: nn.Module
    train_loader: object = None
    val_loader: object = None
    test_loader: object = None
    teacher: Optional[ModelSide] = None
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: object = None
    scheduling_step: int = 0
    student_module: Optional[nn.Module] = None  # the student side, DDP-wrapped when distributed
    teacher_module: Optional[nn.Module] = None
    amp: AmpSettings = field(default_factory=AmpSettings)
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    teacher_cache: object = None  # TeacherCache when train.teacher_cache is set
    num_epochs: int = 1
    log_freq: int = 100
    student_ckpt: Optional[str] = None
    best_value: float = float("-inf")
    mixup: object = None  # timm Mixup/CutMix applied to each training batch (the teacher sees it too)
    ema: object = None  # timm ModelEmaV3 of the student model
    name: str = "experiment"


def student_block(config: dict):
    models = config["models"]
    return ("models.student_model", models["student_model"]) if "student_model" in models \
        else ("models.model", models["model"])


def build_model_with_ckpt(block: dict, key_path: str, role: str):
    """Build a model; load ``ckpt`` when the file exists (torchdistill 0.x behaviour)."""
    model = build_model(block, key_path)
    ckpt = block.get("ckpt")
    checkpoint = None
    if ckpt and os.path.isfile(ckpt):
        checkpoint = load_model_weights(model, ckpt, what=f"{role} checkpoint ({key_path}.ckpt)")
        logger.info("%s: loaded weights from %s", role, ckpt)
    elif ckpt and role == "teacher":
        logger.warning("teacher checkpoint %s (%s.ckpt) does not exist: the teacher keeps its initial weights%s.",
                       ckpt, key_path, " (pretrained)" if (block.get("params") or {}).get("pretrained") else
                       " (random!)")
    return model, checkpoint


def build_optimizer(block: dict, parameters, world_size: int, adjust_lr: bool, key_path="train.optimizer"):
    cls = getattr(torch.optim, str(block["type"]), None)
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        from .errors import nearest_names
        names = [n for n in dir(torch.optim) if isinstance(getattr(torch.optim, n), type)
                 and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)]
        raise ConfigError(f"unknown optimizer {block['type']!r}; optimizers come from torch.optim.",
                          key_path=f"{key_path}.type", candidates=nearest_names(str(block["type"]), names))
    params = dict(block.get("params") or {})
    if adjust_lr and "lr" in params:
        params["lr"] = float(params["lr"]) * world_size
    if not parameters:
        raise ConfigError("nothing to optimize: every parameter of the student (and its special module) is frozen.",
                          key_path="train.student.requires_grad")
    return call_with_params(cls, params, f"{key_path}.params", parameters)


def build_scheduler(block: Optional[dict], optimizer, num_epochs: int = 1, key_path="train.scheduler"):
    """torch.optim.lr_scheduler.<type>, or ``timm:<sched>`` (cosine, step, ...: timm's create_scheduler_v2,
    stepped per epoch, with ``warmup_epochs``, ``warmup_lr``, ``min_lr`` ...)."""
    if not block or not block.get("type"):
        return None
    if str(block["type"]).startswith("timm:"):
        from timm.scheduler import create_scheduler_v2

        params = dict(block.get("params") or {})
        params.setdefault("num_epochs", num_epochs)
        return call_with_params(create_scheduler_v2, params, f"{key_path}.params", optimizer,
                                str(block["type"])[len("timm:"):])[0]
    from torch.optim import lr_scheduler

    cls = getattr(lr_scheduler, str(block["type"]), None)
    if not isinstance(cls, type):
        from .errors import nearest_names
        names = [n for n in dir(lr_scheduler) if n[0].isupper() and n.endswith(("LR", "Plateau"))]
        raise ConfigError(f"unknown scheduler {block['type']!r}; schedulers come from torch.optim.lr_scheduler.",
                          key_path=f"{key_path}.type", candidates=nearest_names(str(block["type"]), names))
    return call_with_params(cls, block.get("params"), f"{key_path}.params", optimizer)


def build_experiment(config, ctx: Optional[DistContext] = None, seed: int = 0, adjust_lr: Optional[bool] = None,
                     for_training: bool = True) -> Experiment:
    """Everything a run needs; errors are located in the config file."""
    ctx = ctx or DistContext()
    try:
        return _build(config, ctx, seed, adjust_lr, for_training)
    except ConfigError as exc:
        line = config.line_of(exc.key_path) if hasattr(config, "line_of") else None
        raise exc.locate(file=getattr(config, "file", None), line=line)


def _build(config, ctx, seed, adjust_lr, for_training) -> Experiment:
    load_entry_point_plugins()
    config_dir = os.path.dirname(os.path.abspath(config.file)) if getattr(config, "file", None) else None
    import_modules(config.get("imports"), search_dir=config_dir)
    train = config.get("train") or {}
    datasets = build_datasets(config)
    loader_kwargs = dict(rank=ctx.rank, world_size=ctx.world_size, seed=seed, pin_memory=ctx.device.type == "cuda")

    def loader(block, path, training):
        return build_loader(block, datasets, path, training=training, **loader_kwargs) if block else None

    teacher = teacher_model = None
    if config["models"].get("teacher_model"):
        teacher_model, _ = build_model_with_ckpt(config["models"]["teacher_model"], "models.teacher_model", "teacher")
        teacher = ModelSide(teacher_model, train.get("teacher"), is_teacher=True, key_path="train.teacher")
    student_path, block = student_block(config)
    student_model, student_ckpt = build_model_with_ckpt(block, student_path, "student")
    student = ModelSide(student_model, train.get("student"), is_teacher=False, key_path="train.student")
    experiment = Experiment(config=config, ctx=ctx, student=student.to(ctx.device),
                            criterion=build_criterion(train["criterion"]).to(ctx.device),
                            teacher=teacher.to(ctx.device) if teacher is not None else None,
                            num_epochs=int(train.get("num_epochs", 1)), log_freq=int(train.get("log_freq") or 100),
                            student_ckpt=block.get("ckpt"), name=block.get("experiment") or block["name"],
                            amp=AmpSettings.from_train_block(train, ctx.device),
                            speed=SpeedSettings.from_train_block(train))
    for side in (experiment.student, experiment.teacher):
        if side is not None:
            experiment.speed.prepare_side(side)
    if student_ckpt is not None and isinstance(student_ckpt, dict) and "best_value" in student_ckpt:
        experiment.best_value = float(student_ckpt["best_value"])
    test_block = (config.get("test") or {}).get("test_data_loader")
    experiment.test_loader = loader(test_block, "test.test_data_loader", False)
    experiment.val_loader = loader(train.get("val_data_loader"), "train.val_data_loader", False)
    if not for_training:
        return experiment
    cache_block = train.get("teacher_cache")
    plan = replay_plan(config, datasets, train["train_data_loader"]["dataset_id"]) if cache_block else None
    experiment.train_loader = build_loader(train["train_data_loader"], datasets, "train.train_data_loader",
                                           training=True, replay_plan=plan, **loader_kwargs)
    experiment.student_module = wrap_side(student, ctx, train.get("student"), "train.student")
    experiment.teacher_module = wrap_side(teacher, ctx, train.get("teacher"), "train.teacher") \
        if teacher is not None else None
    trainable = [p for p in student.parameters() if p.requires_grad]
    if teacher is not None:
        trainable += [p for p in teacher.parameters() if p.requires_grad]
    if adjust_lr is None:
        adjust_lr = bool(train.get("adjust_lr", False))
    experiment.optimizer = build_optimizer(train["optimizer"], trainable, ctx.world_size, adjust_lr)
    base_lr = (train["optimizer"].get("params") or {}).get("lr")
    if base_lr is not None:
        logger.info("learning rate %.6g%s", experiment.optimizer.param_groups[0]["lr"],
                    f" (base {base_lr} x world size {ctx.world_size}, adjust_lr)" if adjust_lr else
                    f" (not scaled by the world size {ctx.world_size}; -adjust_lr scales it)")
    experiment.scheduler = build_scheduler(train.get("scheduler"), experiment.optimizer, experiment.num_epochs)
    experiment.mixup = build_mixup(train.get("mixup"))
    experiment.ema = build_ema(train.get("model_ema"), student.model)
    experiment.scheduling_step = int((train.get("scheduler") or {}).get("scheduling_step", 0) or 0)
    if cache_block:
        check_cacheable(config, experiment)
        experiment.teacher_cache = TeacherCache(str(cache_block["dir"]), cache_block.get("top_k", 10), plan.signature,
                                                len(experiment.train_loader.dataset), ctx,
                                                weights_fingerprint(experiment.teacher.root))
    return experiment


def replay_plan(config: dict, datasets: dict, dataset_id: str) -> ReplayPlan:
    """The replayable form of the training dataset's transform (errors name its transform_params)."""
    key_path = "train.train_data_loader.dataset_id"
    for name, block in config["datasets"].items():
        for split, split_block in block["splits"].items():
            if split_block.get("dataset_id") == dataset_id:
                key_path = f"datasets.{name}.splits.{split}.params.transform_params"
    dataset = datasets.get(dataset_id)
    if not hasattr(dataset, "transform"):
        raise ConfigError(f"train.teacher_cache needs a dataset with a 'transform' to record views; "
                          f"{type(dataset).__name__} has none.", key_path=key_path)
    return ReplayPlan(dataset.transform, key_path)


__all__ = ["Experiment", "build_experiment", "DistillkitError"]
