"""Unreadable image files (named in one paragraph, or skipped and counted) and train_local.sh's command forms."""
import logging
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from distillkit.cli import main
from distillkit.data import build_datasets
from distillkit.errors import BadImageError, ConfigError
from tests.conftest import REPO, child_env, make_image_folder
from tests.test_distributed import write_config

# ImageFolder order: a/0.png a/1.png a/2.png a/truncated.jpg (items 0-3), b/0.png ... b/text.png (items 4-7).
TRUNCATED, TEXT = 3, 7


def bad_folder(root):
    """Two classes of three PNGs, plus a truncated JPEG in class a and a text file named .png in class b."""
    make_image_folder(root, classes=("a", "b"), per_class=3, size=12)
    pixels = np.random.default_rng(1).integers(0, 255, size=(32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(root / "a" / "whole.jpg")
    data = (root / "a" / "whole.jpg").read_bytes()
    (root / "a" / "whole.jpg").unlink()
    (root / "a" / "truncated.jpg").write_bytes(data[:len(data) // 2])
    (root / "b" / "text.png").write_text("class b notes: not an image\n")
    return str(root / "a" / "truncated.jpg"), str(root / "b" / "text.png")


def folder_dataset(root, dataset_keys=None, split_keys=None):
    split = {"dataset_id": "f/train", "params": {"root": str(root), "transform_params": [{"type": "ToTensor"}]}}
    split.update(split_keys or {})
    block = {"type": "ImageFolder", "splits": {"train": split}}
    block.update(dataset_keys or {})
    return build_datasets({"datasets": {"f": block}})["f/train"]


class Records(logging.Handler):
    """The guard's warnings, whatever the distillkit logger's propagation."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def guard_log():
    handler = Records()
    logger = logging.getLogger("distillkit.data.guard")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def test_unreadable_files_are_named_in_one_paragraph(tmp_path):
    truncated, text = bad_folder(tmp_path)
    dataset = folder_dataset(tmp_path)
    assert dataset[0][1] == 0 and dataset[4][1] == 1  # readable files load as before
    for index, path, reason in ((TRUNCATED, truncated, "(OSError: "),
                                (TEXT, text, "(UnidentifiedImageError: cannot identify image file")):
        with pytest.raises(BadImageError) as info:
            dataset[index]
        message = str(info.value)
        assert message.startswith(f"datasets.f.splits.train: the file {path!r} could not be read as an image")
        assert reason in message and "set datasets.f.skip_bad_images: true to skip" in message
        assert "\n" not in message and info.value.path == path


def test_the_error_from_a_worker_process_is_the_same_paragraph(tmp_path):
    bad_folder(tmp_path)
    dataset = folder_dataset(tmp_path)
    with pytest.raises(BadImageError) as here:
        dataset[TRUNCATED]
    with pytest.raises(BadImageError) as worker:
        for _ in DataLoader(dataset, batch_size=2, num_workers=1):
            pass
    assert str(worker.value) == str(here.value)  # torch re-raised it as BadImageError(traceback text)


def test_skip_bad_images_reads_the_next_file_of_the_class_and_counts(tmp_path, guard_log):
    truncated, text = bad_folder(tmp_path)
    dataset = folder_dataset(tmp_path, dataset_keys={"skip_bad_images": True})
    image, target = dataset[TRUNCATED]
    assert target == 0 and torch.equal(image, dataset[0][0])  # a/0.png: the next file of class a, cyclically
    image, target = dataset[TEXT]
    assert target == 1 and torch.equal(image, dataset[4][0])  # b/0.png
    assert torch.equal(dataset[TRUNCATED][0], dataset[0][0])  # the same stand-in every time
    assert len(guard_log) == 3
    assert f"skipped the unreadable file {truncated!r}" in guard_log[0] and "1 skipped so far" in guard_log[0]
    assert f"skipped the unreadable file {text!r}" in guard_log[1] and "2 skipped so far" in guard_log[1]
    assert "3 skipped so far" in guard_log[2]
    assert "(datasets.f.skip_bad_images: true)" in guard_log[0]


def test_the_split_key_wins_and_wrong_values_are_refused(tmp_path, guard_log):
    bad_folder(tmp_path)
    dataset = folder_dataset(tmp_path, dataset_keys={"skip_bad_images": False},
                             split_keys={"skip_bad_images": True})
    assert dataset[TEXT][1] == 1
    assert "(datasets.f.splits.train.skip_bad_images: true)" in guard_log[0]
    with pytest.raises(ConfigError) as info:
        folder_dataset(tmp_path, split_keys={"skip_bad_images": "yes"})
    assert "datasets.f.splits.train.skip_bad_images" in str(info.value)
    digits = {"type": "Digits", "skip_bad_images": True,
              "splits": {"train": {"dataset_id": "d/train", "params": {"split": "train"}}}}
    with pytest.raises(ConfigError) as info:
        build_datasets({"datasets": {"d": digits}})
    assert "key 'datasets.d.skip_bad_images'" in str(info.value) and "Digits reads its data another way" in str(
        info.value)


RUN = """
imports: ['tests.dist_plugin']
datasets:
  f:
    type: 'ImageFolder'
SKIP
    splits:
      train:
        dataset_id: 'f/train'
        params: {root: 'ROOT', transform_params: [{type: 'ToTensor'}]}
models:
  student_model: {name: 'tiny_convnet_no_bn', params: {num_classes: 2}, ckpt: }
train:
  log_freq: 1
  num_epochs: 1
  train_data_loader: {dataset_id: 'f/train', random_sample: False, batch_size: 4, num_workers: 1}
  val_data_loader: {dataset_id: 'f/train', random_sample: False, batch_size: 8, num_workers: 0}
  optimizer: {type: 'SGD', params: {lr: 0.1}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {criterion: {type: 'CrossEntropyLoss'}, factor: 1.0}
"""


def test_a_run_names_the_file_or_skips_it_from_its_worker(in_tmp, write_yaml, capsys, monkeypatch):
    monkeypatch.syspath_prepend(REPO)
    (in_tmp / "data").mkdir()
    truncated, text = bad_folder(in_tmp / "data")
    failing = write_yaml(RUN.replace("ROOT", str(in_tmp / "data")).replace("SKIP\n", ""), "failing.yaml")
    assert main(["train", failing, "--run-dir", "failed", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"distillkit: error: datasets.f.splits.train: the file {truncated!r} "
                                              f"could not be read as an image (OSError: ")
    assert truncated in err and "Traceback" not in err
    skipping = write_yaml(RUN.replace("ROOT", str(in_tmp / "data")).replace("SKIP", "    skip_bad_images: true"),
                          "skipping.yaml")
    assert main(["train", skipping, "--run-dir", "skipped", "--device", "cpu"]) == 0
    log = open(in_tmp / "skipped" / "train.log").read()
    # The training loader's worker process met both files; validation (this process) went on counting.
    assert f"skipped the unreadable file {truncated!r} (OSError: " in log.split("1 skipped so far")[0].splitlines()[-1]
    assert f"skipped the unreadable file {text!r} (Unidentified" in log.split("2 skipped so far")[0].splitlines()[-1]
    assert "3 skipped so far" in log and "epoch 0 step 2/2" in log


# ---------------------------------------------------------------- train_local.sh
def launch(*args, cwd, **env):
    return subprocess.run([os.path.join(REPO, "train_local.sh"), *args], cwd=cwd,
                          env=child_env(DISTILLKIT_DIST_TIMEOUT="60", **env), capture_output=True, text=True,
                          timeout=300)


def test_train_local_sh_seed_form_with_two_processes_and_caller_relative_paths(tmp_path):
    config = os.path.basename(write_config(tmp_path, 4))  # relative to the caller's directory
    result = launch(config, "--log", "logs/seed.txt", "-adjust_lr", "--run-dir", "run", "--device", "cpu",
                    cwd=tmp_path, NUM_GPUS="2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["best.pt", "epoch_0000.pt", "epoch_0001.pt",
                                                                    "last.pt"]
    log = open(tmp_path / "logs" / "seed.txt").read()  # --log reached the runner (torchrun never saw it)
    assert "run directory: run" in log and "world size 2" in log
    assert result.stdout.count("student test top-1") == 1


def test_train_local_sh_failing_config_ends_with_the_runners_paragraph(tmp_path):
    (tmp_path / "bad.yaml").write_text(open(write_config(tmp_path, 4)).read().replace("num_epochs: 2",
                                                                                      "num_epoch: 2"))
    result = launch("bad.yaml", "--device", "cpu", cwd=tmp_path, NUM_GPUS="2", LOG="logs/env.txt")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("distillkit: error: bad.yaml, line ") and "'num_epochs'" in lines[-1]
    assert "Traceback" not in result.stderr and "ChildFailedError" not in result.stderr
    assert "failed (exitcode" not in result.stderr
    assert os.path.isfile(tmp_path / "logs" / "env.txt")  # LOG=FILE reached the runner
