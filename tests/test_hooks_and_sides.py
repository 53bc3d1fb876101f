"""Forward hooks into io_dict, special-module paths, and the teacher/student ModelSide behaviour."""
import pytest
import torch
from torch import nn

from distillkit.errors import ConfigError
from distillkit.hooks import HookCapture
from distillkit.model_side import ModelSide
from distillkit.models.special import SpecialModule
from distillkit.registry import register_special_module


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(5, 3), nn.BatchNorm1d(3)))


def test_capture_matches_manual_forward():
    net = small_net()
    capture = HookCapture(net, input_paths=["2.0"], output_paths=["0", "2"])
    x = torch.randn(6, 4)
    out = net(x)
    io = capture.pop()
    assert capture.pop() == {}
    capture.remove()
    hidden = torch.relu(net[0](x))
    assert torch.allclose(io["0"]["output"], net[0](x))
    assert torch.allclose(io["2.0"]["input"], hidden)
    assert torch.equal(io["2"]["output"], out)


def test_bad_hook_path_names_nearest():
    with pytest.raises(ConfigError) as info:
        HookCapture(small_net(), output_paths=["2.00"], key_path="train.student.forward_hook")
    assert "'2.0'" in str(info.value) and "train.student.forward_hook.output.0" in str(info.value)


@register_special_module("TestDoubler")
class Doubler(SpecialModule):
    def __init__(self, model, is_teacher, path):
        super().__init__(model, is_teacher)
        self.path = path
        self.embed_dict = nn.ModuleDict({"twice": nn.Linear(3, 3, bias=False)})
        nn.init.eye_(self.embed_dict["twice"].weight)
        self.embed_dict["twice"].weight.data *= 2

    def required_io(self):
        return [(self.path, "output")]

    def post_forward(self, io_dict):
        self.embed_dict["twice"](io_dict[self.path]["output"])


def test_special_module_outputs_land_in_io_dict():
    side = ModelSide(small_net(), {"special": {"type": "TestDoubler", "params": {"path": "model.2"}},
                                   "forward_hook": {"output": ["model.2", "embed_dict.twice"]}})
    out, io = side(torch.randn(6, 4))
    assert torch.allclose(io["embed_dict.twice"]["output"], 2 * io["model.2"]["output"])
    assert torch.equal(out, io["model.2"]["output"])
    assert side.model is side.special.model


def test_frozen_teacher_runs_in_eval_mode_without_graph():
    teacher = ModelSide(small_net(), {"requires_grad": False}, is_teacher=True)
    teacher.train()
    assert not teacher.training and not teacher.model[2][1].training
    out, _ = teacher(torch.randn(6, 4))
    assert out.grad_fn is None and not out.requires_grad


def test_teacher_defaults_to_frozen_student_to_trainable():
    assert not ModelSide(small_net(), None, is_teacher=True).trainable
    assert ModelSide(small_net(), None, is_teacher=False).trainable


def test_frozen_modules_stay_in_eval_and_untrainable():
    side = ModelSide(small_net(), {"special": {"type": "TestDoubler", "params": {"path": "model.2"}},
                                   "requires_grad": True, "frozen_modules": ["model"]}, is_teacher=True)
    side.train()
    assert side.trainable and side.special.embed_dict.training
    assert not side.model.training and not side.model[2][1].training
    assert all(not p.requires_grad for p in side.model.parameters())
    out, _ = side(torch.randn(6, 4))
    assert out.grad_fn is None  # the frozen backbone builds no graph


def test_negative_indices_and_the_root_path_as_torchdistill_writes_them():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2), nn.Tanh()))
    side = ModelSide(model, {"forward_hook": {"output": ["2.-1", ".", "-3"]}})
    out, io = side(torch.randn(5, 3))
    assert torch.equal(io["."]["output"], out) and torch.equal(io["2.-1"]["output"], out)
    assert io["-3"]["output"].shape == (5, 4)


def test_a_dataset_root_may_start_with_a_tilde(tmp_path, monkeypatch):
    from distillkit.config import Config
    from distillkit.data import build_datasets
    from tests.conftest import make_image_folder

    monkeypatch.setenv("HOME", str(tmp_path))
    make_image_folder(tmp_path / "imgs")
    datasets = build_datasets(Config({"datasets": {"x": {"type": "ImageFolder", "splits": {"train": {
        "dataset_id": "x/train", "params": {"root": "~/imgs", "transform_params": [{"type": "ToTensor"}]}}}}}}))
    assert len(datasets["x/train"]) == 12
