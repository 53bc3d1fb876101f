"""Name resolution: distillkit's registries first, then torchvision / torch / timm, with nearest-name errors."""
import pytest
import torch
from torch import nn

import distillkit  # noqa: F401
from distillkit.config.schema import SchedulerSettings, TypedBlock
from distillkit.data.transforms import build_transform
from distillkit.engine.optim import build_optimizer, build_scheduler
from distillkit.errors import ConfigError
from distillkit.losses import build_criterion
from distillkit.losses.build import IOTermAdapter, OrgTermAdapter
from distillkit.models import build_model
from distillkit.registry import LOSSES, Registry, register_loss, register_model, register_transform


def test_register_bare_and_named():
    registry = Registry("thing")

    @registry.register
    def alpha():
        return 1

    @registry.register("Beta")
    def beta():
        return 2

    assert registry.resolve("alpha")() == 1 and registry.resolve("Beta")() == 2
    assert "beta" not in registry


def test_unknown_name_lists_nearest_across_sources():
    with pytest.raises(ConfigError) as info:
        LOSSES.resolve("MSELos", key_path="x.type", fallbacks=(("torch.nn", nn),))
    assert "'MSELoss'" in str(info.value) and "x.type" in str(info.value)


def test_loss_registry_then_torch_nn():
    @register_loss("TestOnlyLoss")
    class TestOnlyLoss(nn.Module):
        def forward(self, s, t, y):
            return s.sum() * 0

    crit = build_criterion({"type": "GeneralizedCustomLoss",
                            "org_term": {"criterion": {"type": "TestOnlyLoss"}, "factor": 1.0},
                            "sub_terms": {"mse": {"criterion": {"type": "MSELoss", "params": {
                                "input": {"is_from_teacher": False, "module_path": "fc", "io": "output"},
                                "target": {"is_from_teacher": True, "module_path": "fc", "io": "output"}}},
                                "factor": 2.0}}})
    assert isinstance(crit.org_criterion, TestOnlyLoss)
    assert isinstance(crit.sub_criteria["mse"], IOTermAdapter)
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 0.0]])
    total, terms = crit(s, None, {"fc": {"output": s}}, {"fc": {"output": t}}, None)
    assert terms["mse"].item() == pytest.approx(2.0 * (1 + 4) / 2)
    assert total.item() == pytest.approx(5.0)


def test_plain_nn_loss_as_criterion_is_an_org_term():
    crit = build_criterion({"type": "CrossEntropyLoss", "params": {"label_smoothing": 0.0}})
    assert isinstance(crit.org_criterion, OrgTermAdapter)
    logits, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    total, _ = crit(logits, None, {}, {}, y)
    assert total.item() == pytest.approx(-torch.log_softmax(logits, 1)[0, 0].item())


def test_unknown_loss_names_nearest():
    with pytest.raises(ConfigError) as info:
        build_criterion({"type": "GeneralizedCustomLoss", "org_term": {"criterion": {"type": "KDLos"}}})
    assert "'KDLoss'" in str(info.value) and "train.criterion.org_term.criterion.type" in str(info.value)


def test_model_resolution_order():
    @register_model("resnet18")
    def shadow(num_classes=3):
        return nn.Linear(2, num_classes)

    try:
        assert isinstance(build_model({"name": "resnet18", "params": {}}, "models.m"), nn.Linear)
    finally:
        from distillkit.registry import MODELS
        MODELS._table.pop("resnet18")
    tv = build_model({"name": "resnet18", "params": {"num_classes": 7, "pretrained": False}}, "models.m")
    assert type(tv).__module__.startswith("torchvision") and tv.fc.out_features == 7
    vit = build_model({"name": "timm:resnet10t", "params": {"num_classes": 4}}, "models.m")
    assert type(vit).__module__.startswith("timm") and vit.num_classes == 4
    plain = build_model({"name": "resnet10t", "params": {"num_classes": 5}}, "models.m")  # timm by plain name
    assert type(plain).__module__.startswith("timm") and plain.num_classes == 5


def test_unknown_model_and_bad_params():
    with pytest.raises(ConfigError) as info:
        build_model({"name": "resnet1B"}, "models.student_model")
    assert "resnet18" in str(info.value) and "models.student_model.name" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_model({"name": "cifar_resnet8", "params": {"num_clases": 3}}, "models.student_model")
    assert "num_classes" in str(info.value) and "models.student_model.params" in str(info.value)


def test_transforms_registry_then_torchvision():
    @register_transform("TimesTwo")
    class TimesTwo:
        def __call__(self, x):
            return x * 2

    pipeline = build_transform([{"type": "TimesTwo"}, {"type": "Normalize", "params": {"mean": [1.0], "std": [2.0]}}],
                               "p.transform_params")
    out = pipeline(torch.full((1, 2, 2), 3.0))
    assert torch.allclose(out, torch.full((1, 2, 2), (6.0 - 1.0) / 2.0))
    with pytest.raises(ConfigError) as info:
        build_transform([{"type": "ToTensr"}], "p.transform_params")
    assert "'ToTensor'" in str(info.value) and "p.transform_params.0.type" in str(info.value)


def test_optimizer_and_scheduler_from_torch():
    params = [nn.Parameter(torch.zeros(2))]
    def optimizer(block):
        return TypedBlock.parse(block, "train.optimizer")

    def scheduler(block):
        return SchedulerSettings.parse(block, "train.scheduler")

    opt = build_optimizer(optimizer({"type": "AdamW", "params": {"lr": 0.01}}), params, world_size=4, scale_lr=True)
    assert isinstance(opt, torch.optim.AdamW) and opt.param_groups[0]["lr"] == pytest.approx(0.04)
    sched = build_scheduler(scheduler({"type": "MultiStepLR", "params": {"milestones": [1], "gamma": 0.5}}), opt, 1, 1)
    assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR)
    with pytest.raises(ConfigError) as info:
        build_optimizer(optimizer({"type": "AdamX"}), params, 1, False)
    assert "'Adam" in str(info.value) and "train.optimizer.type" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_scheduler(scheduler({"type": "MultiStep"}), opt, 1, 1)
    assert "'MultiStepLR'" in str(info.value) and "train.scheduler.type" in str(info.value)


def test_torch_nn_sub_term_reads_input_and_target_from_the_terms_own_params():
    """torchdistill 0.x writes a torch.nn sub term's input/target beside its criterion, in the term's params."""
    spec = {"input": {"is_from_teacher": False, "module_path": "a", "io": "output"},
            "target": {"is_from_teacher": True, "module_path": "b", "io": "output"}}
    beside = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"l2": {
        "criterion": {"type": "MSELoss", "params": {"reduction": "sum"}}, "params": spec, "factor": 0.5}}})
    inside = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"l2": {
        "criterion": {"type": "MSELoss", "params": {"reduction": "sum", **spec}}, "factor": 0.5}}})
    student = {"a": {"output": torch.tensor([[1.0, 2.0], [3.0, 4.0]])}}
    teacher = {"b": {"output": torch.tensor([[0.0, 2.0], [1.0, 1.0]])}}
    expected = 0.5 * (1 + 0 + 4 + 9)
    assert beside(None, None, student, teacher, None)[0].item() == pytest.approx(expected)
    assert inside(None, None, student, teacher, None)[0].item() == pytest.approx(expected)
