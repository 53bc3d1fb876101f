"""Speed settings change how a step runs, never what it computes."""
import pytest
import torch
from test_teacher_cache import first_epoch, teacher_ckpt  # noqa: F401  (fixture)
from torch import nn

from distillkit.config.schema import TrainSettings
from distillkit.engine.speed import SpeedSettings
from distillkit.errors import ConfigError
from distillkit.model_side import ModelSide


def train_settings(**keys):
    block = {"num_epochs": 1, "train_data_loader": {"dataset_id": "x", "batch_size": 1},
             "optimizer": {"type": "SGD"}, "criterion": {"type": "CrossEntropyLoss"}, **keys}
    return TrainSettings.parse(block, "train")


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


@pytest.mark.parametrize("lines", ["  channels_last: true\n", "  teacher_inference_mode: true\n",
                                   "  compile: {backend: eager}\n"])
def test_a_speed_setting_trains_the_same_epoch(write_yaml, teacher_ckpt, lines):  # noqa: F811
    base_first, base_row, base_weights = first_epoch(write_yaml, teacher_ckpt)
    first, row, weights = first_epoch(write_yaml, teacher_ckpt, train_lines=lines, name="fast.yaml")
    assert first == pytest.approx(base_first, rel=1e-5)
    assert row["loss"] == pytest.approx(base_row["loss"], rel=1e-4)
    assert set(weights) == set(base_weights)  # checkpoints keep their parameter names (compile in place)
    for key in base_weights:
        # other kernels, 3 SGD steps
        torch.testing.assert_close(weights[key].contiguous(), base_weights[key], rtol=1e-3, atol=1e-3)


def test_channels_last_and_inference_mode_reach_the_models():
    settings = SpeedSettings.from_settings(train_settings(channels_last=True, teacher_inference_mode=True))
    teacher = ModelSide(small_net(), {"requires_grad": False, "forward_hook": {"output": ["0"]}}, is_teacher=True)
    settings.prepare_side(teacher)
    assert teacher.root[0].weight.is_contiguous(memory_format=torch.channels_last)
    x = settings.to_device(torch.randn(2, 3, 8, 8), "cpu")
    assert x.is_contiguous(memory_format=torch.channels_last)
    out, io = teacher(x)
    # usable in a loss that is backpropagated: not inference tensors
    assert not out.is_inference() and not io["0"]["output"].is_inference()
    student = nn.Linear(5, 5)
    (student(out) * out).sum().backward()
    assert student.weight.grad is not None


def test_compile_setting_is_checked():
    settings = SpeedSettings.from_settings(train_settings(compile={"mode": "max-autotune"}))
    assert settings.compile == {"mode": "max-autotune"}
    with pytest.raises(ConfigError, match="train.compile"):
        SpeedSettings.from_settings(train_settings(compile="fast"))
