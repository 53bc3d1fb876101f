"""train.teacher_cache: exact replay of recorded views and teacher logits (FKD-style), and its refusals."""
import math
import os

import pytest
import torch
from torchvision import transforms as T

from distillkit.config import load_config
from distillkit.data.replay import ReplayPlan
from distillkit.engine.teacher_cache import compress_logits, expand_logits
from distillkit.engine.trainer import Trainer
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from distillkit.runner import seed_everything

CONFIG = """
datasets:
  fake:
    type: FakeData
    splits:
      train:
        dataset_id: fake/train
        params:
          size: 48
          image_size: [3, 16, 16]
          num_classes: 10
          transform_params:
            - {type: RandomResizedCrop, params: {size: 12, scale: [0.4, 1.0]}}
            - {type: RandomHorizontalFlip, params: {p: 0.5}}
            - {type: ToTensor}
            - {type: Normalize, params: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}
models:
  teacher_model: {name: cifar_resnet8, params: {num_classes: 10}, ckpt: TEACHER}
  student_model: {name: cifar_resnet8, params: {num_classes: 10}, experiment: s}
train:
  num_epochs: 1
  train_data_loader: {dataset_id: fake/train, batch_size: 16, num_workers: 0}
  optimizer: {type: SGD, params: {lr: 0.1, momentum: 0.9}}
  teacher: {requires_grad: False}
  criterion:
    type: GeneralizedCustomLoss
    org_term: {criterion: {type: KDLoss, params: {temperature: 4.0, alpha: 0.5}}, factor: 1.0}
"""


@pytest.fixture
def teacher_ckpt(tmp_path):
    from distillkit.models import build_model

    torch.manual_seed(123)
    path = tmp_path / "teacher.pt"
    model = build_model({"name": "cifar_resnet8", "params": {"num_classes": 10}}, "models.teacher_model")
    torch.save({"model": model.state_dict()}, path)
    return str(path)


class StepLosses:
    """A Trainer callback that keeps every step's loss."""

    def __init__(self, losses):
        self.losses = losses

    def on_step_end(self, trainer, values):
        self.losses.append(values["loss"].item())


def first_epoch(write_yaml, teacher_ckpt, cache=None, name="c.yaml", train_lines="", forbid_teacher=False):
    """Train one epoch from seed 0; returns (first-step loss, epoch row, student weights)."""
    text = CONFIG.replace("TEACHER", teacher_ckpt) + train_lines
    if cache is not None:
        text += f"  teacher_cache: {cache}\n"
    config = load_config(write_yaml(text, name))
    seed_everything(0)
    experiment = build_experiment(config, seed=0)
    if forbid_teacher:
        def no_forward(*args):
            raise AssertionError("the teacher ran during a replay")
        experiment.teacher.model.forward = no_forward
    losses = []
    trainer = Trainer(experiment, callbacks=[StepLosses(losses)])
    row = trainer.train_one_epoch(0)
    return losses[0], row, experiment.student.model.state_dict()


def test_compress_keeps_top_k_probabilities_and_spreads_the_rest():
    logits = torch.tensor([[3.0, 1.0, 0.0, -2.0]])
    values, indices, rest = compress_logits(logits, 2)
    assert values.tolist() == [[3.0, 1.0]] and indices.tolist() == [[0, 1]]
    assert rest.item() == pytest.approx(math.log((1 + math.exp(-2)) / 2))
    full = expand_logits(values, indices, rest, 4)
    p, q = logits.softmax(1)[0], full.softmax(1)[0]
    assert q[:2].tolist() == pytest.approx(p[:2].tolist())          # top-k probabilities exact
    assert q[2].item() == pytest.approx(q[3].item())                 # the rest spread evenly
    assert q[2:].sum().item() == pytest.approx(p[2:].sum().item())
    assert torch.equal(expand_logits(*compress_logits(logits, None), 4), logits)  # all classes: exact


def test_recorded_views_are_the_plain_pipeline_views_and_replay_exactly():
    from PIL import Image

    image = Image.fromarray((torch.rand(20, 24, 3) * 255).byte().numpy())
    pipeline = T.Compose([T.RandomResizedCrop(10, scale=(0.3, 1.0)), T.RandomCrop(8, padding=2),
                          T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.ToTensor()])
    plan = ReplayPlan(pipeline)
    assert plan.num_params == 4 + 4 + 1 + 1
    for seed in range(6):
        torch.manual_seed(seed)
        expected = pipeline(image)
        torch.manual_seed(seed)
        view, params = plan.sample(image)
        assert torch.equal(view, expected)
        torch.manual_seed(1000 + seed)  # replay draws no random numbers
        assert torch.equal(plan.replay(image, params), expected)


def test_unreplayable_transform_is_refused():
    with pytest.raises(ConfigError) as info:
        ReplayPlan(T.Compose([T.RandomResizedCrop(8), T.ColorJitter(0.4)]), "datasets.d.splits.train.params.x")
    assert "ColorJitter" in str(info.value) and "datasets.d.splits.train.params.x" in str(info.value)


def test_first_step_and_epoch_same_live_recorded_and_replayed(write_yaml, teacher_ckpt, tmp_path):
    live_first, live_row, live_weights = first_epoch(write_yaml, teacher_ckpt)
    cache = f"{{dir: {tmp_path / 'exact'}, top_k: null}}"
    rec_first, rec_row, rec_weights = first_epoch(write_yaml, teacher_ckpt, cache)
    assert os.path.isfile(tmp_path / "exact" / "epoch_0000.rank0-of-1.pt")
    rep_first, rep_row, rep_weights = first_epoch(write_yaml, teacher_ckpt, cache, forbid_teacher=True)
    assert live_first == pytest.approx(rec_first, rel=1e-6) and rec_first == rep_first
    assert live_row["loss"] == pytest.approx(rep_row["loss"], rel=1e-6)
    for key in live_weights:
        torch.testing.assert_close(rep_weights[key], live_weights[key], rtol=1e-5, atol=1e-6)
    assert all(torch.equal(rep_weights[k], rec_weights[k]) for k in rec_weights)


def test_top_k_record_and_replay_agree(write_yaml, teacher_ckpt, tmp_path):
    live_first, _, _ = first_epoch(write_yaml, teacher_ckpt)
    cache = f"{{dir: {tmp_path / 'top3'}, top_k: 3}}"
    rec_first, rec_row, _ = first_epoch(write_yaml, teacher_ckpt, cache)
    rep_first, rep_row, _ = first_epoch(write_yaml, teacher_ckpt, cache)
    assert rec_first == rep_first and rec_row["loss"] == rep_row["loss"]
    assert rec_first != pytest.approx(live_first, rel=1e-6)  # 3 of 10 logits kept: a (documented) approximation
    record = torch.load(tmp_path / "top3" / "epoch_0000.rank0-of-1.pt")
    assert record["values"].shape == (48, 3) and sorted(record["index"].tolist()) == list(range(48))


def test_record_made_for_another_pipeline_is_refused(write_yaml, teacher_ckpt, tmp_path):
    cache = f"{{dir: {tmp_path / 'c'}, top_k: 5}}"
    first_epoch(write_yaml, teacher_ckpt, cache)
    global CONFIG
    saved = CONFIG
    CONFIG = CONFIG.replace("size: 12, scale", "size: 10, scale")
    try:
        with pytest.raises(Exception, match="different transform"):
            first_epoch(write_yaml, teacher_ckpt, cache, name="other.yaml")
    finally:
        CONFIG = saved


def test_record_made_with_another_teacher_is_refused(write_yaml, teacher_ckpt, tmp_path):
    cache = f"{{dir: {tmp_path / 'c'}, top_k: 5}}"
    first_epoch(write_yaml, teacher_ckpt, cache)
    torch.save({"model": {k: v + 1 if v.is_floating_point() else v
                          for k, v in torch.load(teacher_ckpt)["model"].items()}}, teacher_ckpt)
    with pytest.raises(Exception, match="different teacher"):
        first_epoch(write_yaml, teacher_ckpt, cache)


@pytest.mark.parametrize("change, key", [
    ("  teacher: {requires_grad: False, forward_hook: {output: [layer3]}}", "train.teacher.forward_hook"),
    ("  teacher: {requires_grad: False}\n  mixup: {mixup_alpha: 0.8}", "train.mixup"),
])
def test_configs_that_cannot_replay_exactly_are_refused(write_yaml, teacher_ckpt, tmp_path, change, key):
    text = CONFIG.replace("TEACHER", teacher_ckpt).replace("  teacher: {requires_grad: False}", change)
    text += f"  teacher_cache: {{dir: {tmp_path / 'c'}}}\n"
    config = load_config(write_yaml(text))
    with pytest.raises(ConfigError) as info:
        build_experiment(config)
    assert key in str(info.value) and "teacher_cache" in str(info.value)
