"""torchdistill keys that were dropped before issue 15: ``optimizer.grad_accum_step`` / ``max_grad_norm``,
``auxiliary_model_wrapper`` and ``criterion.func2extract_org_loss``; values are worked out by hand."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from distillkit.config import load_config
from distillkit.engine.step import OptimizerStep
from distillkit.engine.trainer import Trainer
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from distillkit.losses.build import build_criterion
from tests.test_end_to_end import DIGITS


def _sgd_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Linear(5, 3)
    return model, torch.optim.SGD(model.parameters(), lr=0.5)


def test_grad_accum_step_gives_the_step_of_one_batch_of_all_the_micro_batches():
    torch.manual_seed(1)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    model, optimizer = _sgd_model()
    weight0, bias0 = model.weight.detach().clone(), model.bias.detach().clone()
    step = OptimizerStep(optimizer, grad_accum_step=2)
    assert step(F.cross_entropy(model(x[:4]), y[:4])) is False
    assert torch.equal(model.weight, weight0)  # nothing applied after the first of two
    assert step(F.cross_entropy(model(x[4:]), y[4:])) is True
    # by hand: one SGD step on the mean loss of all 8 samples
    weight, bias = weight0.clone().requires_grad_(), bias0.clone().requires_grad_()
    F.cross_entropy(x @ weight.T + bias, y).backward()
    torch.testing.assert_close(model.weight, weight0 - 0.5 * weight.grad)
    torch.testing.assert_close(model.bias, bias0 - 0.5 * bias.grad)
    assert all(p.grad is None for p in model.parameters())  # zeroed for the next accumulation


def test_a_resume_between_micro_batches_goes_on_with_the_accumulated_gradient():
    torch.manual_seed(2)
    batches = [(torch.randn(4, 5), torch.randint(0, 3, (4,))) for _ in range(3)]
    model, optimizer = _sgd_model()
    uninterrupted = OptimizerStep(optimizer, grad_accum_step=3)
    for x, y in batches:
        uninterrupted(F.cross_entropy(model(x), y))
    resumed_model, resumed_optimizer = _sgd_model()
    first = OptimizerStep(resumed_optimizer, grad_accum_step=3)
    first(F.cross_entropy(resumed_model(batches[0][0]), batches[0][1]))
    state = copy.deepcopy(first.state_dict())
    fresh_model, fresh_optimizer = _sgd_model()  # a new process: same initial weights, no gradient
    second = OptimizerStep(fresh_optimizer, grad_accum_step=3)
    second.load_state_dict(state)
    for x, y in batches[1:]:
        second(F.cross_entropy(fresh_model(x), y))
    torch.testing.assert_close(fresh_model.weight, model.weight)
    assert second.pending == 0


def test_max_grad_norm_clips_the_gradient_before_the_step():
    model, optimizer = _sgd_model()
    weight0 = torch.cat([p.detach().flatten() for p in model.parameters()])
    step = OptimizerStep(optimizer, clip_grad_norm=0.01)
    step(1000 * model(torch.ones(2, 5)).sum())
    moved = torch.cat([p.detach().flatten() for p in model.parameters()]) - weight0
    assert moved.norm().item() == pytest.approx(0.5 * 0.01, rel=1e-4)  # lr x the clipped norm


def _config(write_yaml, optimizer_extra="", train_extra="", student_extra=""):
    text = DIGITS.replace("ckpt: 'student.pt'", "ckpt: ").replace(
        "optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}",
        "optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}" + optimizer_extra + "}")
    text = text.replace("  scheduler:", train_extra + "  student: {" + student_extra + "}\n  scheduler:")
    return load_config(write_yaml(text))


def test_optimizer_keys_of_a_0x_config_reach_the_training_loop(write_yaml):
    experiment = build_experiment(_config(write_yaml, ", grad_accum_step: 3, max_grad_norm: 2.5"))
    trainer = Trainer(experiment)
    assert (trainer.step.grad_accum_step, trainer.step.clip_grad_norm) == (3, 2.5)
    applied = []
    original = experiment.optimizer.step
    experiment.optimizer.step = lambda *a, **k: applied.append(1) or original(*a, **k)
    trainer.train_one_epoch(0)
    batches = len(experiment.train_loader)
    assert trainer.global_step == batches and len(applied) == batches // 3


def test_two_names_of_the_clipping_norm_with_different_values_are_refused(write_yaml):
    with pytest.raises(ConfigError) as info:
        build_experiment(_config(write_yaml, ", max_grad_norm: 1.0", train_extra="  clip_grad_norm: 2.0\n"))
    assert "train.optimizer.max_grad_norm" in str(info.value)


def test_auxiliary_model_wrapper_is_the_special_module(write_yaml):
    block = "auxiliary_model_wrapper: {type: 'EmptyModule', params: {}}"
    experiment = build_experiment(_config(write_yaml, student_extra=block))
    assert experiment.student.has_special and type(experiment.student.root).__name__ == "EmptyModule"
    with pytest.raises(ConfigError) as info:
        build_experiment(_config(write_yaml, student_extra=block + ", special: {type: 'EmptyModule'}"))
    assert "train.student.auxiliary_model_wrapper" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_experiment(_config(write_yaml, student_extra="auxiliary_model_wrapper: {type: 'EmptyModul'}"))
    assert "train.student.auxiliary_model_wrapper.type" in str(info.value)


def _ce_criterion(factor):
    return build_criterion({"type": "GeneralizedCustomLoss",
                            "org_term": {"criterion": {"type": "CrossEntropyLoss"}, "factor": factor}})


def test_the_default_org_extraction_sums_the_loss_over_each_output_of_a_tuple():
    torch.manual_seed(3)
    logits, aux, y = torch.randn(4, 5), torch.randn(4, 5), torch.randint(0, 5, (4,))
    total, terms = _ce_criterion(0.5)((logits, aux), None, {}, {}, y)
    by_hand = 0.5 * (F.cross_entropy(logits, y) + F.cross_entropy(aux, y))
    torch.testing.assert_close(total, by_hand)
    torch.testing.assert_close(_ce_criterion({0: 1.0, 1: 0.4})((logits, aux), None, {}, {}, y)[0],
                               F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y))


def test_func2extract_org_loss_dict_variants():
    torch.manual_seed(4)
    out, aux, y = torch.randn(4, 5), torch.randn(4, 5), torch.randint(0, 5, (4,))
    per_key = build_criterion({"type": "GeneralizedCustomLoss", "func2extract_org_loss": "extract_simple_org_loss_dict",
                               "org_term": {"criterion": {"type": "CrossEntropyLoss"}, "factor": 1.0}})
    torch.testing.assert_close(per_key({"out": out, "aux": aux}, None, {}, {}, y)[0],
                               F.cross_entropy(out, y) + F.cross_entropy(aux, y))
    model_losses = build_criterion({"type": "GeneralizedCustomLoss", "func2extract_org_loss": "extract_org_loss_dict",
                                    "org_term": {"factor": 2.0}})
    losses = {"loss_box": torch.tensor(0.25), "loss_cls": torch.tensor(1.5)}
    torch.testing.assert_close(model_losses(losses, None, {}, {}, y)[0], torch.tensor(3.5))
    with pytest.raises(ConfigError) as info:
        build_criterion({"type": "GeneralizedCustomLoss", "func2extract_org_loss": "extract_simple_org_los",
                         "org_term": {"criterion": {"type": "CrossEntropyLoss"}}})
    assert "train.criterion.func2extract_org_loss" in str(info.value) and "extract_simple_org_loss" in str(info.value)


def test_a_whole_output_dict_given_to_the_org_loss_names_the_extractor_to_set():
    """torchdistill's legacy coco2017 fcn_resnet50 config sets no func2extract_org_loss: its CrossEntropyLoss gets
    the segmentation model's {'out': ...} (a TypeError in torchdistill 0.3.3 too)."""
    default = build_criterion({"type": "GeneralizedCustomLoss",
                               "org_term": {"criterion": {"type": "CrossEntropyLoss"}, "factor": 1.0}},
                              "train.stage1.criterion")
    with pytest.raises(ConfigError) as info:
        default({"out": torch.randn(2, 3, 4, 4)}, None, {}, {}, torch.zeros(2, 4, 4, dtype=torch.long))
    message = str(info.value)
    assert "train.stage1.criterion.func2extract_org_loss" in message and "CrossEntropyLoss" in message
    assert "'extract_simple_org_loss_dict'" in message and "['out']" in message


def test_module_wise_params_make_one_group_per_listed_module(write_yaml):
    groups = ", module_wise_params: [{module: 'fc', params: {lr: 0.5}}, {module: 'layer1', params: {}}]"
    experiment = build_experiment(_config(write_yaml, groups))
    model = experiment.student.model
    assert [g["lr"] for g in experiment.optimizer.param_groups] == [0.5, 0.05]
    assert [set(map(id, g["params"])) for g in experiment.optimizer.param_groups] == [
        set(map(id, model.fc.parameters())), set(map(id, model.layer1.parameters()))]
    with pytest.raises(ConfigError) as info:
        build_experiment(_config(write_yaml, ", module_wise_params: [{module: 'fcc'}]"))
    assert "train.optimizer.module_wise_params.0.module" in str(info.value)
