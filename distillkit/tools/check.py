"""``distillkit check CONFIG``: build everything, run one training step on one batch, report, save nothing."""
from __future__ import annotations

from typing import List

import torch

from ..config import load_config
from ..engine.distributed import setup_distributed
from ..engine.logs import setup_logging
from ..engine.trackers import check_installed, run_entries
from ..errors import DistillkitError
from ..experiment import build_experiment, build_shared, located
from ..multi.born_again import record_generation
from ..multi.groups import SEPARATOR, model_sides
from ..utils import seed_everything


def _rows(side: str, io_dict: dict) -> List[tuple]:
    rows = []
    for path, slot in io_dict.items():
        if SEPARATOR in path:  # a member of models.teachers / models.students: "<name>:<path>"
            rows += _rows(f"{side} {path.split(SEPARATOR, 1)[0]}", {path.split(SEPARATOR, 1)[1]: slot})
            continue
        for io, value in slot.items():
            for index, tensor in enumerate(value if isinstance(value, (list, tuple)) else [value]):
                name = path if not isinstance(value, (list, tuple)) else f"{path}[{index}]"
                if isinstance(tensor, torch.Tensor):
                    rows.append((side, name, io, str(tuple(tensor.shape)), str(tensor.dtype).replace("torch.", "")))
    return rows


def _model_rows(experiment) -> List[tuple]:
    """One row per model of the run (each teacher, each student) with the paths its hooks capture."""
    rows = []
    for role, side in (("teacher", experiment.teacher), ("student", experiment.student)):
        for name, member in model_sides(side).items():
            hooked = ", ".join(f"{io}: {path}" for path, io in member.capture.paths) or "(no hooks)"
            rows.append((f"{role} {name}".strip(), type(member.model).__name__, hooked))
    return rows


def format_table(rows, header) -> str:
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def check_config(config_path: str, overrides=(), device: str = None, seed: int = 0, strict: bool = False) -> str:
    """The report of one training step of every stage (the same for the same ``seed``); raises the guided error of
    whatever fails."""
    ctx = setup_distributed(device)
    setup_logging(None, ctx.is_main)
    config = load_config(config_path, overrides, strict=strict)
    seed_everything(seed)
    shared = build_shared(config, ctx)
    with located(config):  # train.trackers: names, options and libraries (none is started)
        check_installed(run_entries(shared.run.stages))
    reports = []
    for stage in range(len(shared.run.stages)):
        experiment = build_experiment(config, ctx, seed=seed, for_training=True, stage=stage, shared=shared)
        title = f"stage {stage + 1} ({experiment.settings.key_path}): " if experiment.multi_stage else ""
        with located(config):  # a config error the first step finds (a loss given the wrong output)
            reports.append(title + _one_step(experiment, ctx, config_path))
        record_generation(shared, experiment)
        experiment.close()
    return "\n\n".join(reports + ["check passed."])


def _one_step(experiment, ctx, config_path: str) -> str:
    images, targets, supp = next(iter(experiment.train_loader))
    images, targets = experiment.task.to_device(images, targets, ctx.device, experiment.speed)
    if experiment.mixup is not None:
        images, targets = experiment.mixup(images, targets)
    trainer = experiment.trainer_class(experiment)  # no run directory: it writes nothing
    trainer.train_mode()
    trainer.tell_epoch(0)
    loss, terms, student_io, teacher_io = trainer.forward(images, targets, supp)
    if not torch.isfinite(loss):
        raise DistillkitError(f"{config_path}: the loss of the first batch is {loss.item()}: check the data and the "
                              f"loss terms.")
    trainer.step(loss)
    rows = _rows("teacher", teacher_io) + _rows("student", student_io)
    count = experiment.task.batch_size(images)
    report = [f"config {config_path}: one training step on a batch of {count} images, nothing saved.",
              format_table(_model_rows(experiment), ("side", "model", "hooked (io: paths)")),
              format_table(rows, ("side", "path", "io", "shape", "dtype")) if rows else "(no hooked tensors)",
              format_table([(name, f"{value.item():.6g}") for name, value in terms.items()] +
                           [("total", f"{loss.item():.6g}")], ("loss term", "value (weighted)"))]
    return "\n\n".join(report)
