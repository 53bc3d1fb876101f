"""build_experiment(config): everything a run needs, built and validated.

Order: settings (the schema), plugins, datasets, loaders, models (+ checkpoints), teacher
and student sides, criterion, optimizer, scheduler.  Any :class:`ConfigError` raised on
the way is located in the config file (line and key path) before it leaves.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from .config.schema import ModelSettings, RunSettings, TrainSettings
from .config.validate import parse_settings
from .data import build_datasets, build_loader
from .data.replay import ReplayPlan
from .engine.amp import AmpSettings
from .engine.best import BestMetric
from .engine.distributed import DistContext
from .engine.optim import build_optimizer, build_scheduler, module_wise_groups
from .engine.recipe import build_ema, build_mixup
from .engine.speed import SpeedSettings
from .engine.trainer import Trainer
from .engine.teacher_cache import CachedTeacher, TeacherCache, check_cacheable, weights_fingerprint
from .errors import ConfigError
from .losses import build_criterion
from .model_side import ModelSide, NoTeacher
from .models import build_model, load_model_weights
from .multi.born_again import generation_teacher, reinitialize
from .multi.groups import SideGroup, member_settings, model_sides, wrap_any
from .multi.mutual import MutualLoss, check_mutual, group_optimizers
from .multi.mutual_trainer import MutualTrainer
from .plugins import import_modules, load_entry_point_plugins
from .tasks import ClassificationTask, Task, resolve_task

logger = logging.getLogger(__name__)


@dataclass
class Experiment:
    config: dict
    settings: TrainSettings
    ctx: DistContext
    student: ModelSide
    criterion: nn.Module
    train_loader: object = None
    val_loader: object = None
    test_loader: object = None
    teacher: Optional[ModelSide] = None
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: object = None
    student_module: Optional[nn.Module] = None  # the student side, DDP-wrapped when distributed
    teacher_module: Optional[nn.Module] = None
    teacher_forward: Callable = field(default_factory=NoTeacher)  # (images, supp_dict=) -> (output, io_dict)
    task: Task = field(default_factory=ClassificationTask)  # batches to the device, evaluation, metric names
    amp: AmpSettings = field(default_factory=AmpSettings)
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    teacher_cache: Optional[TeacherCache] = None
    student_ckpt: Optional[str] = None
    student_ckpt_best: Optional[BestMetric] = None  # the best value stored in the student's ckpt file
    mixup: object = None  # timm Mixup/CutMix applied to each training batch (the teacher sees it too)
    ema: object = None  # timm ModelEmaV3 of the student model
    name: str = "experiment"
    stage: int = 0  # the training stage (train.stage<N>, N = stage + 1) this experiment is
    num_stages: int = 1
    epoch_offset: int = 0  # the epochs of the earlier stages: this stage's epochs are numbered after them
    trainer_class: type = Trainer  # what trains this experiment (deep mutual learning: MutualTrainer)
    fresh_student: bool = False  # the student starts this stage from fresh weights (born-again)
    generations: dict = field(default_factory=dict)  # {stage: final student weights} later stages learn from
    student_ckpts: dict = field(default_factory=dict)  # models.students: {name: where its best weights go}
    student_bests: dict = field(default_factory=dict)  # models.students: {name: BestMetric of its ckpt file}

    @property
    def multi_stage(self) -> bool:
        return self.num_stages > 1

    def close(self) -> None:
        """Remove this stage's hooks from the shared models (the next stage hooks them anew)."""
        for side in list(model_sides(self.student).values()) + list(model_sides(self.teacher).values()):
            side.capture.remove()

    @property
    def num_epochs(self) -> int:
        return self.settings.num_epochs

    @property
    def log_freq(self) -> int:
        return self.settings.log_freq

    @property
    def scheduling_step(self) -> int:
        return self.settings.scheduler.scheduling_step if self.settings.scheduler else 0

    def new_best_metric(self) -> BestMetric:
        """The tracker of ``train.best_metric``: by default the task's primary validation metric (val_top1,
        max) with a validation loader, else the training loss (min)."""
        chosen = self.settings.best_metric
        name = chosen.name or (f"val_{self.task.primary}" if self.val_loader is not None else "loss")
        if chosen.mode not in (None, "max", "min"):
            raise ConfigError(f"expected 'max' or 'min', found {chosen.mode!r}.", key_path="train.best_metric.mode")
        task_metric = name.removeprefix("val_").removesuffix("_ema") in self.task.metrics  # accuracies, mIoU, mAP
        return BestMetric(name, chosen.mode or ("max" if task_metric else None))


def student_block(config: dict):
    """``(key path, block)`` of the trained model: models.student_model, else models.model (models.students: the
    first student)."""
    models = config["models"]
    if "students" in models:
        name = next(iter(models["students"]))
        return f"models.students.{name}", models["students"][name]
    return ("models.student_model", models["student_model"]) if "student_model" in models \
        else ("models.model", models["model"])


MAX_NAME_LENGTH = 200  # run directories are named after the experiment; file systems allow 255 bytes


def experiment_name(config: dict) -> str:
    """The student's ``experiment`` (else its model name): it names the default run directory."""
    key_path, block = student_block(config)
    name = str(block.get("experiment") or block["name"])
    if max(len(part.encode()) for part in name.split("/")) > MAX_NAME_LENGTH:
        raise ConfigError(f"the experiment name ({len(name.encode())} bytes) names the run directory, so it must be "
                          f"at most {MAX_NAME_LENGTH} bytes (between '/').", key_path=f"{key_path}.experiment",
                          file=getattr(config, "file", None), line=config.line_of(f"{key_path}.experiment")
                          if hasattr(config, "line_of") else None)
    return name


def build_model_with_ckpt(block: dict, key_path: str, role: str):
    """Build a model; load ``ckpt`` (1.x: ``src_ckpt``) when the file exists (torchdistill's behaviour).
    Returns ``(model, checkpoint)``; ``checkpoint`` (what the file held) only when the student's best weights are
    saved to the same file (an earlier run's best is then kept unless beaten)."""
    settings = ModelSettings.parse(block, key_path)
    model = build_model(block, key_path)
    source, key = settings.load_from, "src_ckpt" if settings.src_ckpt else "ckpt"
    checkpoint = None
    if source and os.path.isfile(source):
        checkpoint = load_model_weights(model, source, what=f"{role} checkpoint ({key_path}.{key})")
        logger.info("%s: loaded weights from %s", role, source)
    elif source and role == "teacher":
        logger.warning("teacher checkpoint %s (%s.%s) does not exist: the teacher keeps its initial weights%s.",
                       source, key_path, key, " (pretrained)" if settings.params.get("pretrained") else " (random!)")
    return model, checkpoint if source == settings.save_to else None


@dataclass
class SharedParts:
    """What every stage of a run uses: the settings, the datasets and the models (built once)."""
    run: RunSettings
    datasets: dict
    student_model: nn.Module  # models.students: {name: model}
    teacher_model: Optional[nn.Module] = None  # models.teachers: {name: model}
    stored: object = None  # what the student's ckpt file held when the run started (models.students: per name)
    task: Task = field(default_factory=ClassificationTask)
    generations: dict = field(default_factory=dict)  # {stage: its final student weights}: born-again teachers


def build_shared(config, ctx: DistContext, run: Optional[RunSettings] = None) -> SharedParts:
    """Settings (``run``: parsed already), plugins, datasets and models; located errors like build_experiment's."""
    with located(config):
        run = run or parse_settings(config)
        load_entry_point_plugins()
        config_dir = os.path.dirname(os.path.abspath(config.file)) if getattr(config, "file", None) else None
        import_modules(run.imports, search_dir=config_dir)
        task = resolve_task(config, run.task)
        datasets = build_datasets(config)
        models, teacher_model = config["models"], None
        if models.get("teachers"):  # each teacher loads its own checkpoint; errors name models.teachers.<name>
            teacher_model = {name: build_model_with_ckpt(block, f"models.teachers.{name}", "teacher")[0].to(ctx.device)
                             for name, block in models["teachers"].items()}
        elif models.get("teacher_model"):
            teacher_model = build_model_with_ckpt(models["teacher_model"], "models.teacher_model", "teacher")[0] \
                .to(ctx.device)
        if models.get("students"):
            built = {name: build_model_with_ckpt(block, f"models.students.{name}", "student")
                     for name, block in models["students"].items()}
            return SharedParts(run, datasets, {name: model.to(ctx.device) for name, (model, _) in built.items()},
                               teacher_model, {name: stored for name, (_, stored) in built.items()}, task)
        student_path, block = student_block(config)
        student_model, stored = build_model_with_ckpt(block, student_path, "student")
        return SharedParts(run, datasets, student_model.to(ctx.device), teacher_model, stored, task)


@contextlib.contextmanager
def located(config):
    """Locate a ConfigError raised inside in the config's file (line of its key path)."""
    try:
        yield
    except ConfigError as exc:
        raise config.locate(exc) if hasattr(config, "locate") else exc


def build_experiment(config, ctx: Optional[DistContext] = None, seed: int = 0, scale_lr: Optional[bool] = None,
                     for_training: bool = True, stage: int = -1, shared: Optional[SharedParts] = None) -> Experiment:
    """Everything one training stage needs (``stage``: its index, -1 the last; a single-stage config has one);
    errors are located in the config file.  ``shared``: the parts built once for the whole run (built here
    when not given).  ``scale_lr``: multiply the learning rate by the world size (None: ``train.scale_lr``)."""
    ctx = ctx or DistContext()
    shared = shared or build_shared(config, ctx)
    with located(config):
        return _build(config, ctx, seed, scale_lr, for_training, shared, stage % len(shared.run.stages))


def _build(config, ctx: DistContext, seed: int, scale_lr: Optional[bool], for_training: bool, shared: SharedParts,
           stage: int) -> Experiment:
    run, datasets = shared.run, shared.datasets
    train = run.stages[stage]
    loader_options = dict(rank=ctx.rank, world_size=ctx.world_size, seed=seed, pin_memory=ctx.device.type == "cuda",
                          collate=shared.task.collate)
    forward_proc = shared.task.default_forward_proc
    teacher, criterion_path = None, f"{train.key_path}.criterion"
    born_again_teacher = generation_teacher(shared, train, stage, for_training)
    if isinstance(shared.teacher_model, dict):
        teacher = _group(shared.teacher_model, train.teacher, train.teachers, f"{train.key_path}.teachers", True) \
            .to(ctx.device)
    elif shared.teacher_model is not None or born_again_teacher is not None:
        teacher = ModelSide(born_again_teacher if born_again_teacher is not None else shared.teacher_model,
                            train.teacher, is_teacher=True, default_forward_proc=forward_proc).to(ctx.device)
    student_path, block = student_block(config)
    side_settings = train.model if train.model is not None and "student" not in train.raw else train.student
    if isinstance(shared.student_model, dict):  # deep mutual learning
        check_mutual(train, teacher)
        student = _group(shared.student_model, side_settings, train.students, f"{train.key_path}.students", False) \
            .to(ctx.device)
        criterion = MutualLoss(train.criterion.raw, criterion_path, student.names).to(ctx.device)
    else:
        if side_settings.reinitialize:
            reinitialize(shared.student_model, block, student_path, seed, stage)
        student = ModelSide(shared.student_model, side_settings, is_teacher=False,
                            default_forward_proc=forward_proc).to(ctx.device)
        criterion = build_criterion(train.criterion.raw, criterion_path,
                                    teachers=teacher.names if isinstance(teacher, SideGroup) else None).to(ctx.device)
    exp = Experiment(config=config, settings=train, ctx=ctx, student=student, criterion=criterion, teacher=teacher,
                     student_ckpt=None if isinstance(student, SideGroup) else ModelSettings.parse(
                         block, student_path).save_to, name=experiment_name(config),
                     amp=AmpSettings.from_settings(train, ctx.device), speed=SpeedSettings.from_settings(train),
                     stage=stage, num_stages=len(run.stages), task=shared.task,
                     epoch_offset=sum(s.num_epochs for s in run.stages[:stage]),
                     fresh_student=side_settings.reinitialize, generations=shared.generations)
    if isinstance(student, SideGroup):
        _per_student_checkpoints(exp, config, shared.stored)
    for side in list(model_sides(exp.student).values()) + list(model_sides(exp.teacher).values()):
        exp.speed.prepare_side(side)
    exp.test_loader = build_loader(run.test.test_data_loader, datasets, training=False, **loader_options) \
        if run.test.test_data_loader else None
    exp.val_loader = build_loader(train.val_data_loader, datasets, training=False, **loader_options) \
        if train.val_data_loader else None
    exp.student_ckpt_best = _stored_best(exp.new_best_metric(), None if exp.student_ckpts else shared.stored)
    if not for_training:
        return exp
    plan = replay_plan(config, datasets, train.train_data_loader.dataset_id) if train.teacher_cache else None
    exp.train_loader = build_loader(train.train_data_loader, datasets, training=True, replay_plan=plan,
                                    **loader_options)
    exp.student_module = wrap_any(student, ctx, side_settings)
    if teacher is not None:
        exp.teacher_module = wrap_any(teacher, ctx, train.teacher)
        exp.teacher_forward = exp.teacher_module
    trainable = [p for side in (student, teacher) if side is not None for p in side.parameters() if p.requires_grad]
    scale = (train.scale_lr or train.adjust_lr) if scale_lr is None else scale_lr
    if train.optimizer.module_wise_params:
        trainable = module_wise_groups(train.optimizer, student, teacher, ctx.world_size, scale)
    if train.adjust_lr:
        logger.warning("train.adjust_lr is read as train.scale_lr (the learning rate x the world size); note that "
                       "the runner's -adjust_lr flag, as in TaT's scripts, does not scale.")
    if isinstance(student, SideGroup):  # one optimizer and scheduler per student
        exp.optimizer, exp.scheduler = group_optimizers(train, student, ctx.world_size, scale, len(exp.train_loader))
    else:
        exp.optimizer = build_optimizer(train.optimizer, trainable, ctx.world_size, scale)
    base_lr = train.optimizer.params.get("lr")
    if base_lr is not None:
        logger.info("learning rate %.6g%s", exp.optimizer.param_groups[0]["lr"],
                    f" (base {base_lr} x world size {ctx.world_size}: --scale-lr / train.scale_lr)" if scale else
                    f" (as written, not scaled by the world size {ctx.world_size}; --scale-lr scales it)")
    if not isinstance(student, SideGroup):
        exp.scheduler = build_scheduler(train.scheduler, exp.optimizer, train.num_epochs, len(exp.train_loader))
    exp.mixup = build_mixup(train.mixup)
    if exp.mixup is not None and not exp.task.supports_mixup:
        raise ConfigError(f"train.mixup mixes image-level labels; the {exp.task.name} task has none: remove it.",
                          key_path=f"{train.key_path}.mixup")
    exp.ema = build_ema(train.model_ema, student.model)
    if train.teacher_cache:
        check_cacheable(train, teacher, criterion)
        exp.teacher_cache = TeacherCache(train.teacher_cache.dir, train.teacher_cache.top_k, plan.signature,
                                         len(exp.train_loader.dataset), ctx, weights_fingerprint(teacher.root))
        exp.teacher_forward = CachedTeacher(exp.teacher_module, exp.teacher_cache)
    return exp


def _group(models: dict, defaults, blocks, key_path: str, is_teacher: bool) -> SideGroup:
    """The side of ``models.teachers`` / ``models.students``: one ModelSide per name, its settings
    ``<key_path>.<name>`` over the common side block."""
    settings = member_settings(list(models), defaults, blocks, key_path)
    return SideGroup({name: ModelSide(model, settings[name], is_teacher=is_teacher)
                      for name, model in models.items()}, is_teacher, settings)


def _per_student_checkpoints(exp: Experiment, config, stored: dict) -> None:
    """Deep mutual learning: where each student's best weights go, and the best already stored there."""
    exp.trainer_class = MutualTrainer
    for name, block in config["models"]["students"].items():
        exp.student_ckpts[name] = ModelSettings.parse(block, f"models.students.{name}").save_to
        exp.student_bests[name] = _stored_best(BestMetric(f"val_{exp.task.primary}/{name}", "max"), stored.get(name))


def _stored_best(best: BestMetric, stored) -> BestMetric:
    """``best`` seeded with the value kept in the student's ckpt file (``stored``, from an earlier run): a new
    run overwrites that file only when it beats it, measured by the same metric."""
    if isinstance(stored, dict) and "best_metric" in stored:
        best.load_state_dict(stored["best_metric"])
    elif isinstance(stored, dict) and "best_value" in stored:  # written before the metric was named
        best.load_state_dict({"name": "val_top1", "mode": "max", "value": stored["best_value"]})
    return best


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


__all__ = ["Experiment", "build_experiment", "student_block", "experiment_name"]
