"""The Python API beside the YAML (issue 23, item 1): DistillWrapper, DistillableViT.to_vit, distillkit.train on a
config path or dict, and the README's "Python API" code, run as written."""
import copy
import json
import os
import re
import textwrap

import pytest
import torch
from torch import nn

import distillkit
from distillkit import DistillableViT, DistillWrapper, ViT
from distillkit.api.training import split_options
from distillkit.config import load_yaml_file
from distillkit.errors import ConfigError, ShapeMismatchError
from distillkit.models import build_model
from tests.conftest import REPO
from tests.test_end_to_end import DIGITS
from tests.test_torchdistill_1x import CONFIG_1X

TINY = dict(image_size=8, patch_size=4, num_classes=5, dim=16, depth=2, heads=2, dim_head=8, mlp_dim=16)


def _setup(seed=0):
    torch.manual_seed(seed)
    student = DistillableViT(**TINY)
    teacher = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 8 * 8, 5))  # dropout: eval mode matters
    images, labels = torch.randn(6, 3, 8, 8), torch.randint(0, 5, (6,))
    return student, teacher, images, labels


def _by_hand(class_logits, dist_logits, teacher_logits, labels, temperature, alpha, hard=False):
    """(1 - alpha) * CE(z_cls, y) + alpha * distill, written out from the formulas."""
    log_p = class_logits.log_softmax(1)
    ce = -log_p[torch.arange(len(labels)), labels].mean()
    if hard:
        distill = -dist_logits.log_softmax(1)[torch.arange(len(labels)), teacher_logits.argmax(1)].mean()
    else:
        p_t = (teacher_logits / temperature).softmax(1)
        log_q = (dist_logits / temperature).log_softmax(1)
        distill = temperature ** 2 * (p_t * (p_t.log() - log_q)).sum() / len(labels)
    return (1 - alpha) * ce + alpha * distill


def test_wrapper_soft_loss_is_the_formula_and_the_teacher_gets_no_gradient():
    student, teacher, images, labels = _setup()
    distiller = DistillWrapper(student=student, teacher=teacher, temperature=3, alpha=0.5)
    distiller.train()
    assert student.training and not teacher.training
    loss = distiller(images, labels)
    with torch.no_grad():
        teacher_logits = teacher(images)  # eval mode: dropout off
        class_logits, dist_logits = student.forward_heads(images)
    assert torch.allclose(loss, _by_hand(class_logits, dist_logits, teacher_logits, labels, 3.0, 0.5), atol=1e-6)
    per_call = distiller(images, labels, temperature=1.5, alpha=0.9)
    assert torch.allclose(per_call, _by_hand(class_logits, dist_logits, teacher_logits, labels, 1.5, 0.9), atol=1e-6)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.dist_token.grad is not None and student.head_dist.weight.grad.abs().sum() > 0


def test_wrapper_hard_loss_uses_the_teacher_argmax():
    student, teacher, images, labels = _setup(1)
    distiller = DistillWrapper(student=student, teacher=teacher, alpha=0.3, hard=True)
    loss = distiller(images, labels)
    with torch.no_grad():
        teacher_logits = teacher.eval()(images)
        class_logits, dist_logits = student.forward_heads(images)
        expected = _by_hand(class_logits, dist_logits, teacher_logits, labels, 1.0, 0.3, hard=True)
    assert torch.allclose(loss, expected, atol=1e-6)


def test_wrapper_refuses_a_one_head_student_and_bad_settings():
    _, teacher, images, labels = _setup()
    with pytest.raises(ShapeMismatchError, match="DistillableViT"):
        DistillWrapper(student=nn.Sequential(nn.Flatten(), nn.Linear(192, 5)), teacher=teacher)(images, labels)
    with pytest.raises(ConfigError, match="alpha"):
        DistillWrapper(student=DistillableViT(**TINY), teacher=teacher, alpha=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        DistillWrapper(student=DistillableViT(**TINY), teacher=teacher)(images, labels, temperature=0)


def test_to_vit_gives_the_class_head_outputs_and_a_registered_model():
    student, _, images, _ = _setup(2)
    student.eval()
    vit = student.to_vit()
    assert isinstance(vit, ViT) and not vit.training
    assert not any(k.startswith("head_dist") or k == "dist_token" for k in vit.state_dict())
    with torch.no_grad():
        class_logits, _ = student.forward_heads(images)
        assert torch.allclose(vit(images), class_logits, atol=1e-6)
        assert not torch.allclose(student(images), class_logits)  # mean_logits: the plain ViT is the class head only
        rebuilt = build_model({"name": "vit", "params": dict(TINY, register_tokens=1)}, "models.student_model")
        rebuilt.load_state_dict(vit.state_dict())
        assert torch.allclose(rebuilt.eval()(images), class_logits, atol=1e-6)


def test_to_vit_without_the_token_runs_the_sequence_minus_it():
    student, _, images, _ = _setup(3)
    student.eval()
    vit = student.to_vit(keep_distillation_token=False).eval()
    with torch.no_grad():
        tokens = student.tokens(images)
        tokens = torch.cat((tokens[:, :1], tokens[:, 2:]), dim=1)  # drop [dist] and its positional embedding
        expected = student.head(student.norm(student.blocks(tokens))[:, 0])
        assert torch.allclose(vit(images), expected, atol=1e-6)
    assert vit.pos_embedding.shape[1] == student.pos_embedding.shape[1] - 1


@pytest.mark.parametrize("text", [DIGITS, CONFIG_1X], ids=["0.x", "1.x"])
def test_train_on_a_dict_equals_the_file(in_tmp, write_yaml, text):
    path = write_yaml(text)
    data, _ = load_yaml_file(path)  # the file's values as a Python dict (tags already applied)
    kept = copy.deepcopy(data)
    from_file = distillkit.train(path, device="cpu", test_only=True)
    from_dict = distillkit.train(data, device="cpu", test_only=True)
    assert from_dict == from_file and set(from_dict) == {"student", "teacher"} - ({"teacher"} if text is DIGITS
                                                                                       else set())
    assert data.keys() == kept.keys() and data["train"]["num_epochs"] == kept["train"]["num_epochs"]


@pytest.mark.parametrize("text,key", [(DIGITS, "name"), (CONFIG_1X, "key")], ids=["0.x", "1.x"])
def test_a_dict_gets_the_errors_of_the_file(in_tmp, write_yaml, text, key):
    path = write_yaml(text.replace("'cifar_resnet8'", "'cifar_resnet88'"))
    data, _ = load_yaml_file(path)
    messages = []
    for source in (path, data):
        with pytest.raises(ConfigError) as caught:
            distillkit.train(source, device="cpu", test_only=True)
        messages.append(str(caught.value))
    assert re.match(rf"key 'models\.(student|teacher)_model\.{key}': unknown model 'cifar_resnet88'", messages[1])
    assert messages[0].startswith(f"{path}, line ") and messages[0].endswith(messages[1])


def test_train_keywords_are_run_options_or_key_paths():
    options, pairs = split_options({"device": "cpu", "train__num_epochs": 1, "train.optimizer.params.lr": 0.1,
                                    "test": {"test_data_loader": None}})
    assert options == {"device": "cpu"}
    assert pairs == [("train.num_epochs", 1), ("train.optimizer.params.lr", 0.1), ("test", {"test_data_loader": None})]
    with pytest.raises(ConfigError, match="'devise'.*Nearest valid names: 'device'"):
        distillkit.train({}, devise="cpu")


def test_a_misspelt_override_names_the_nearest_key(in_tmp, write_yaml):
    data, _ = load_yaml_file(write_yaml(DIGITS))
    with pytest.raises(ConfigError, match="train.num_epohcs=1.*Nearest valid names: 'num_epochs'"):
        distillkit.train(data, device="cpu", **{"train.num_epohcs": 1})


def _readme_python_api_blocks():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        text = handle.read()
    section = text[text.index("\n## Python API\n"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_readme_python_api_example_runs_as_written(in_tmp, capsys):
    blocks = _readme_python_api_blocks()
    assert len(blocks) >= 2
    namespace = {}
    for block in blocks:
        exec(compile(textwrap.dedent(block), "README.md (Python API)", "exec"), namespace)
    results = namespace["results"]
    with open(os.path.join("runs", "api-demo", "results.json"), encoding="utf-8") as handle:
        assert json.load(handle) == results
    assert f"top-1 {results['student']['top1']:.2f}%" in capsys.readouterr().out
    assert 10.0 < results["student"]["top1"] <= 100.0
