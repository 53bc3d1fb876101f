"""The seed's TaT ImageNet config runs with only the root (and epochs, batch size, workers) changed."""
import os

import pytest
import torch
import torchvision

from distillkit.config import load_config
from distillkit.experiment import build_experiment
from distillkit.runner import train_from_config
from tests.conftest import REPO, make_image_folder

SHIPPED = os.path.join(REPO, "configs", "ilsvrc2012", "tat", "resnet18_from_resnet34_attn.yaml")
SEED = os.path.join(REPO, "..", "shared", "seeds", "003_a427c8449a5cf2fb.txt")
SMALL_MACHINE = ["train.num_epochs=1", "train.train_data_loader.batch_size=4", "train.train_data_loader.num_workers=0",
                 "train.val_data_loader.num_workers=0", "test.test_data_loader.num_workers=0",
                 "test.test_data_loader.batch_size=3"]


@pytest.fixture
def imagenet_like(in_tmp, monkeypatch):
    """A 3-class ImageFolder with train/ and val/, and torchvision 'pretrained' files the test made itself."""
    make_image_folder(in_tmp / "imagenet" / "train", per_class=4, size=24)
    make_image_folder(in_tmp / "imagenet" / "val", per_class=2, size=24, seed=1)
    monkeypatch.setenv("TORCH_HOME", str(in_tmp / "torch_home"))
    cache = in_tmp / "torch_home" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    made = {}
    for seed, (name, weights) in enumerate((("resnet34", torchvision.models.ResNet34_Weights.DEFAULT),
                                            ("resnet18", torchvision.models.ResNet18_Weights.DEFAULT))):
        torch.manual_seed(100 + seed)
        made[name] = torchvision.models.get_model(name, num_classes=1000).state_dict()
        torch.save(made[name], cache / os.path.basename(weights.url))
    return in_tmp, made


def root_overrides(root):
    return [f"datasets.ilsvrc2012.splits.train.params.root={root}/train",
            f"datasets.ilsvrc2012.splits.val.params.root={root}/val"]


def test_shipped_tat_config_builds_as_published(imagenet_like):
    tmp, made = imagenet_like
    config = load_config(SHIPPED, root_overrides(tmp / "imagenet") + SMALL_MACHINE)
    experiment = build_experiment(config)
    teacher, student = experiment.teacher, experiment.student
    assert torch.equal(teacher.model.conv1.weight, made["resnet34"]["conv1.weight"])  # pretrained: True
    assert torch.equal(student.model.conv1.weight, made["resnet18"]["conv1.weight"])
    assert not teacher.trainable and isinstance(teacher.special.embed_dict["key"], torch.nn.Identity)
    optimized = {id(p) for group in experiment.optimizer.param_groups for p in group["params"]}
    for name in ("query", "value"):
        assert all(id(p) in optimized for p in student.special.embed_dict[name].parameters())
    assert experiment.criterion.org_criterion.alpha == 0.1 and experiment.criterion.org_criterion.beta == 0.0
    assert experiment.criterion.sub_factors == {"cs": 0.2}


def seed_config_text():
    text = open(SEED, encoding="utf-8").read()
    start = text.index("datasets:\n  ilsvrc2012:")
    lines = []
    for line in text[start:].splitlines():
        if line and not line[0].isspace() and not line.rstrip().endswith(":"):
            break
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("source", ["shipped", "seed"])
def test_tat_config_trains_end_to_end(imagenet_like, source):
    tmp, _ = imagenet_like
    if source == "seed":
        if not os.path.isfile(SEED):
            pytest.skip("the seed documents are not beside this checkout")
        path = tmp / "seed_config.yaml"
        path.write_text(seed_config_text().replace("/path/to/the/imagenet/folder", str(tmp / "imagenet")))
        overrides = SMALL_MACHINE
    else:
        path, overrides = SHIPPED, root_overrides(tmp / "imagenet") + SMALL_MACHINE
    results = train_from_config(str(path), overrides=overrides, device="cpu", run_dir="run")
    assert results["student"]["count"] == 6 and results["teacher"]["count"] == 6
    import json

    row = json.loads(open("run/metrics.jsonl").read())
    assert row["loss"] == pytest.approx(row["loss/org"] + row["loss/cs"], rel=1e-5) and row["loss/cs"] > 0
    best = torch.load("run/checkpoints/best.pt", weights_only=True)
    assert "root.embed_dict.query.0.weight" in best["student_side"]
    assert os.path.isfile("model/imagenet-resnet18_from_resnet34.pt")
