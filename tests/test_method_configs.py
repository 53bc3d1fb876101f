"""Every shipped config builds and takes one training step (``distillkit check``): the digits configs on the bundled
data, the ImageNet ones on a tiny generated ImageFolder (32-pixel crops, batches of 2, no pretrained weights)."""
import glob
import os

import pytest

from distillkit.config import load_config
from distillkit.config.schema import stage_blocks
from distillkit.config.validate import validate_config
from distillkit.tools.check import check_config
from tests.conftest import REPO, make_image_folder


def shipped(folder: str) -> list:
    return sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", folder, "**", "*.yaml"),
                                                               recursive=True)
                  if os.path.basename(p) != "data.yaml")


DIGITS_CONFIGS = shipped("digits")
IMAGENET_CONFIGS = shipped("ilsvrc2012")
# DeiT's ViTs take 224-pixel inputs only and its teacher has 84M parameters: too slow for a step here
# (tests/test_deit.py runs its recipe in miniature); these are parsed and validated.
VALIDATED_ONLY = [c for c in IMAGENET_CONFIGS if c.split(os.sep)[2] == "deit"]
# Student4KnowledgeReview's fused-map sizes are those of 224-pixel inputs.
FULL_SIZE = {"kr"}
TINY_TRAIN_IMAGES = 3 * 4  # make_image_folder: 3 classes x 4 images
CROP = 32


def test_every_method_has_a_digits_config():
    assert len(DIGITS_CONFIGS) >= 15


def own_stage_blocks(config) -> list:
    """``[(key path, block)]`` of the training stages as the file writes them (without what they inherit); the
    train block itself where the stages are written by distillkit (``train.born_again``)."""
    train = config["train"]
    written = [(key_path, train if key_path == "train" else train[key_path.split(".")[1]])
               for key_path, _ in stage_blocks(train) if key_path == "train" or key_path.split(".")[1] in train]
    return written or [("train", train)]


def batch_size_overrides(config, batch_size: int) -> list:
    """``--set``s giving each training stage that has its own loader ``batch_size`` and no worker processes (a stage
    without one keeps the previous stage's)."""
    return [f"{key_path}.train_data_loader.{key}={value}" for key_path, block in own_stage_blocks(config)
            if "train_data_loader" in block for key, value in (("batch_size", batch_size), ("num_workers", 0))]


@pytest.mark.parametrize("config", DIGITS_CONFIGS)
def test_digits_config_passes_check(config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative ckpt paths: no teacher file here, so the teacher keeps its initial weights
    path = os.path.join(REPO, config)
    report = check_config(path, batch_size_overrides(load_config(path), 8), "cpu")
    assert report.endswith("check passed.") and "total" in report


@pytest.fixture(scope="module")
def tiny_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    make_image_folder(root / "train", per_class=TINY_TRAIN_IMAGES // 3, size=CROP)
    make_image_folder(root / "val", per_class=2, size=CROP, seed=1)
    return root


def small_machine_overrides(config, root, crop) -> list:
    """The dataset roots on the tiny ImageFolder, ``crop``-pixel crops (None: as written), batches of 2, no pretrained
    weights (no download), and CRD's memory bank sized to the tiny training set (one row per training image)."""
    overrides = []
    for name, dataset in config["datasets"].items():
        for split, block in dataset["splits"].items():
            where = f"datasets.{name}.splits.{split}.params"
            overrides.append(f"{where}.root={root / split}")
            for index, transform in enumerate((block["params"].get("transform_params") or []) if crop else []):
                if transform["type"] in ("RandomResizedCrop", "Resize", "CenterCrop"):
                    overrides.append(f"{where}.transform_params.{index}.params.size=[{crop}, {crop}]")
    for side, block in config["models"].items():
        if "pretrained" in (block.get("params") or {}):
            overrides.append(f"models.{side}.params.pretrained=False")
    for key_path, block in own_stage_blocks(config):
        for term, spec in ((block.get("criterion") or {}).get("sub_terms") or {}).items():
            if spec["criterion"]["type"] == "CRDLoss":
                where = f"{key_path}.criterion.sub_terms.{term}.criterion.params"
                overrides += [f"{where}.output_size={TINY_TRAIN_IMAGES}", f"{where}.num_samples={TINY_TRAIN_IMAGES}"]
    return overrides + batch_size_overrides(config, 2)


@pytest.mark.parametrize("config", [c for c in IMAGENET_CONFIGS if c not in VALIDATED_ONLY])
def test_imagenet_config_passes_check_on_a_tiny_image_folder(config, tiny_imagenet, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative ckpt paths: nothing is loaded, nothing is written in the checkout
    path = os.path.join(REPO, config)
    crop = None if config.split(os.sep)[2] in FULL_SIZE else CROP
    report = check_config(path, small_machine_overrides(load_config(path), tiny_imagenet, crop), "cpu")
    assert report.endswith("check passed.") and "total" in report


@pytest.mark.parametrize("config", VALIDATED_ONLY)
def test_imagenet_config_parses_and_validates(config):
    validate_config(load_config(os.path.join(REPO, config)))
