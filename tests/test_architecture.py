"""The architecture's contracts: import layering, typed settings, one owner per concept."""
import math
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import distillkit
from distillkit.config import load_config
from distillkit.config.schema import LoaderSettings, SideSettings, TrainSettings
from distillkit.engine.best import BestMetric
from distillkit.engine.step import OptimizerStep, step_scheduler
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from distillkit.losses import build_criterion
from distillkit.registry import LOSSES, Registry, register_loss
from tests.conftest import REPO
from tests.test_end_to_end import DIGITS


def test_imports_run_one_way_and_none_is_deferred_to_dodge_a_cycle():
    graph = subprocess.run([sys.executable, "-m", "distillkit.tools.import_graph"], cwd=REPO, capture_output=True,
                           text=True)
    assert graph.returncode == 0, graph.stdout
    assert "0 upward imports, 0 cycles, 0 distillkit imports inside functions" in graph.stdout


def test_settings_carry_the_schema_defaults():
    train = TrainSettings.parse({"num_epochs": 3, "train_data_loader": {"dataset_id": "d", "batch_size": 4},
                                 "optimizer": {"type": "SGD"}, "criterion": {"type": "CrossEntropyLoss"}}, "train")
    assert (train.log_freq, train.keep_last_checkpoints, train.skip_nonfinite) == (100, 2, 0)
    assert train.clip_grad_norm is None
    assert train.train_data_loader.num_workers == 0 and train.train_data_loader.key_path == "train.train_data_loader"
    assert train.student.requires_grad is None and train.student.forward_hook == {}
    assert train.teacher.key_path == "train.teacher" and train.val_data_loader is None
    with pytest.raises(ConfigError, match="required key 'num_epochs'"):
        TrainSettings.parse({"train_data_loader": {"dataset_id": "d", "batch_size": 4}}, "train")


@pytest.mark.parametrize("block, key, words", [
    ({"dataset_id": "d", "batch_size": 0}, "x.batch_size", ">= 1"),
    ({"dataset_id": "d", "batch_size": -3}, "x.batch_size", ">= 1"),
    ({"dataset_id": "d", "batch_size": 4, "num_workers": -1}, "x.num_workers", ">= 0"),
    ({"dataset_id": "d", "batch_size": 10 ** 40}, "x.batch_size", "41 digits"),
    ({"dataset_id": "d", "batch_size": list(range(30000))}, "x.batch_size", "characters"),
])
def test_schema_refuses_values_no_one_means(block, key, words):
    with pytest.raises(ConfigError) as info:
        LoaderSettings.parse(block, "x")
    assert f"'{key}'" in str(info.value) and words in str(info.value) and len(str(info.value)) < 400


def test_model_side_reads_side_settings_and_accepts_a_plain_block():
    settings = SideSettings.parse({"requires_grad": False}, "train.student")
    side = distillkit.model_side.ModelSide(nn.Linear(2, 2), settings)
    assert not side.trainable
    assert distillkit.model_side.ModelSide(nn.Linear(2, 2), {"frozen_modules": []}).trainable


def test_registering_a_name_twice_warns_naming_both():
    registry = Registry("thing")

    def first():
        pass

    def second():
        pass

    registry.register(first, "same")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.register(second, "same")
    assert len(caught) == 1 and "first" in str(caught[0].message) and "second" in str(caught[0].message)
    assert registry["same"] is second


def test_a_misplaced_loss_term_fails_at_build_time():
    @register_loss("ArchTestSubOnly", term="sub")
    class SubOnly(nn.Module):
        def forward(self, student_io, teacher_io, targets):
            return torch.zeros(())

    try:
        with pytest.raises(ConfigError) as info:
            build_criterion({"type": "GeneralizedCustomLoss",
                             "org_term": {"criterion": {"type": "ArchTestSubOnly"}, "factor": 1.0}})
        assert "registered as a sub term" in str(info.value) and "train.criterion.org_term.criterion.type" \
            in str(info.value)
        with pytest.raises(ConfigError, match="registered as an org term"):
            build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"kd": {
                "criterion": {"type": "KDLoss", "params": {"temperature": 1.0, "alpha": 0.5}}, "factor": 1.0}}})
    finally:
        LOSSES._table.pop("ArchTestSubOnly")


def test_optimizer_step_clips_after_unscaling_and_steps():
    weight = nn.Parameter(torch.tensor([1.0, 1.0]))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    step = OptimizerStep(optimizer, clip_grad_norm=0.5)
    step.zero_grad()
    step((weight * torch.tensor([3.0, 4.0])).sum())  # gradient (3, 4), norm 5 -> clipped to (0.3, 0.4)
    assert weight.detach().tolist() == pytest.approx([0.7, 0.6])


def _sgd():
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)


def test_step_scheduler_steps_every_family_per_epoch_and_per_iteration():
    from timm.scheduler import create_scheduler_v2

    torch_sched = torch.optim.lr_scheduler.StepLR(_sgd(), step_size=1, gamma=0.5)
    step_scheduler(torch_sched, 1, per_iteration=True)
    assert torch_sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.5)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(_sgd(), mode="min", patience=0, factor=0.1)
    for count, loss in enumerate([1.0, 2.0]):
        step_scheduler(plateau, count, per_iteration=True, metric=lambda value=loss: value)
    assert plateau.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)  # no improvement at the second loss
    optimizer = _sgd()
    timm_sched = create_scheduler_v2(optimizer, "cosine", num_epochs=2, step_on_epochs=False, updates_per_epoch=5,
                                     min_lr=0.0, warmup_epochs=0)[0]
    step_scheduler(timm_sched, 5, per_iteration=True)  # a quarter through 10 updates: cos schedule by hand
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 5 / 10)))
    optimizer = _sgd()
    timm_epochs = create_scheduler_v2(optimizer, "cosine", num_epochs=4, min_lr=0.0, warmup_epochs=0)[0]
    step_scheduler(timm_epochs, 1, per_iteration=False)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5 * (1 + math.cos(math.pi * 1 / 4)))


def test_best_metric_tracks_min_and_max_and_keeps_its_name():
    loss = BestMetric("loss")
    assert loss.mode == "min" and loss.update(2.0) and not loss.update(3.0) and loss.update(1.0)
    top1 = BestMetric("val_top1")
    assert top1.mode == "max" and top1.update(10.0, snapshot=lambda: {"w": 1}) and top1.best_state == {"w": 1}
    other = BestMetric("val_top1")
    other.load_state_dict({"name": "loss", "mode": "min", "value": 0.1})  # another metric: not comparable
    assert other.value == -math.inf
    other.load_state_dict(top1.state_dict())
    assert other.value == 10.0


def test_callbacks_see_every_step_and_epoch_and_best_metric_can_be_a_loss(in_tmp, write_yaml):
    config = load_config(write_yaml(DIGITS.replace("ckpt: 'student.pt'", "ckpt: ")),
                         ["train.num_epochs=1", "train.best_metric={name: loss, mode: min}"])
    experiment = build_experiment(config)

    class Count:
        steps, epochs = 0, []

        def on_step_end(self, trainer, values):
            Count.steps += 1

        def on_epoch_end(self, trainer, epoch, row):
            Count.epochs.append((epoch, trainer.best.name, trainer.best.value == row["loss"]))

    distillkit.Trainer(experiment, callbacks=[Count()]).run_epochs()
    assert Count.steps == len(experiment.train_loader) and Count.epochs == [(0, "loss", True)]
