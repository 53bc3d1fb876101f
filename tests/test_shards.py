"""``distillkit prepare`` and the TarShards dataset: coverage over ranks and workers, determinism, exact resume."""
import io
import json
import math
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from distillkit.config.schema import LoaderSettings
from distillkit.data import build_datasets, build_loader
from distillkit.data.device_batch import UInt8Batch
from distillkit.data.tar_reader import read_shard, tar_members
from distillkit.errors import ConfigError
from distillkit.tools.prepare import main as prepare_main

N = 23  # samples: one class each, so a target names its sample


def make_folder(root, count=N):
    rng = np.random.default_rng(0)
    for k in range(count):
        os.makedirs(os.path.join(root, f"c{k:02d}"), exist_ok=True)
        width, height = (60, 45) if k % 3 else (45, 60)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, f"c{k:02d}", "0.jpg"), quality=90)
    return str(root)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    base = tmp_path_factory.mktemp("shards")
    folder = make_folder(base / "folder")
    assert prepare_main([folder, str(base / "full"), "--shard-size", "5"]) == 0
    assert prepare_main([folder, str(base / "small"), "--shard-size", "4", "--max-side", "32"]) == 0
    return base


def stream_loader(root, decode="fast", rank=0, world_size=1, workers=0, training=True, batch_size=3, seed=0):
    params = {"root": root, "shuffle_buffer": 4, "transform_params": [
        {"type": "RandomResizedCrop", "params": {"size": 16}}, {"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}]}
    datasets = build_datasets({"datasets": {"s": {"type": "TarShards", "splits": {"train": {
        "dataset_id": "s/train", "params": params}}}}})
    settings = LoaderSettings.parse({"dataset_id": "s/train", "batch_size": batch_size, "num_workers": workers,
                                     "decode": decode}, "train.train_data_loader")
    return build_loader(settings, datasets, training=training, rank=rank, world_size=world_size, seed=seed)


def epoch(loader, number, skip=0):
    loader.sampler.set_epoch(number)
    if skip:
        loader.sampler.skip_next(skip * loader.batch_size)
    batches = []
    for images, targets, _ in loader:
        pixels = images.nhwc if isinstance(images, UInt8Batch) else images
        batches.append((targets.tolist(), pixels.clone()))
    return batches


def test_prepare_writes_shards_and_index(shards):
    index = json.loads((shards / "full" / "index.json").read_text())
    assert index["total"] == N and [s["count"] for s in index["shards"]] == [5, 5, 5, 5, 3]
    assert index["classes"] == [f"c{k:02d}" for k in range(N)]
    samples = [s for shard in index["shards"] for s in read_shard(str(shards / "full" / shard["name"]))]
    assert sorted(label for _, _, label in samples) == list(range(N))  # every sample once, shuffled over shards
    assert [label for _, _, label in samples] != list(range(N))
    for _, data, label in samples:  # small enough: copied byte for byte
        with open(shards / "folder" / f"c{label:02d}" / "0.jpg", "rb") as handle:
            assert handle.read() == data
    small = json.loads((shards / "small" / "index.json").read_text())
    for shard in small["shards"]:
        for _, data, _ in read_shard(str(shards / "small" / shard["name"])):
            assert max(Image.open(io.BytesIO(data)).size) == 32


def test_tar_reader_reads_what_tarfile_writes(tmp_path):
    long_dir = "d" * 120
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
        path = str(tmp_path / f"{fmt}.tar")
        with tarfile.open(path, "w", format=fmt) as tar:
            for k, name in enumerate([f"{long_dir if fmt != tarfile.USTAR_FORMAT else 'x'}/{k:03d}.jpg" for k in
                                      range(3)]):
                for member, data in ((name, bytes([k]) * (700 + k)), (name.replace(".jpg", ".cls"), str(k).encode())):
                    info = tarfile.TarInfo(member)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        with open(path, "rb") as handle:
            names = [name for name, _, _ in tar_members(handle)]
        assert len(names) == 6 and names[0].endswith("000.jpg") and len(names[0]) > 100 * (fmt != tarfile.USTAR_FORMAT)
        samples = list(read_shard(path, skip=1, count=2))
        assert [(len(data), label) for _, data, label in samples] == [(701, 1), (702, 2)]


@pytest.mark.parametrize("workers", [0, 2])
def test_ranks_and_workers_cover_every_sample(shards, workers):
    root = str(shards / "full")
    seen = []
    for rank in range(2):
        loader = stream_loader(root, rank=rank, world_size=2, workers=workers)
        batches = epoch(loader, 0)
        assert len(batches) == len(loader)
        labels = [t for targets, _ in batches for t in targets]
        per_worker = -(-(-(-N // 2)) // max(1, workers))  # ceil(ceil(N / 2) / workers)
        assert len(labels) == per_worker * max(1, workers)  # padded: every rank the same count
        seen += labels
    assert set(seen) == set(range(N)) and len(seen) - N <= 2 * max(1, workers)
    evaluated = []  # evaluation: no shuffle, no padding, every sample exactly once
    for rank in range(2):
        evaluated += [t for targets, _ in epoch(stream_loader(root, rank=rank, world_size=2, workers=workers,
                                                              training=False), 0) for t in targets]
    assert sorted(evaluated) == list(range(N))


def test_epochs_are_deterministic_and_differ(shards):
    loader = stream_loader(str(shards / "small"), workers=2)
    first, again, second = epoch(loader, 0), epoch(loader, 0), epoch(loader, 1)
    assert [t for t, _ in first] == [t for t, _ in again]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(first, again))
    assert [t for t, _ in first] != [t for t, _ in second]


@pytest.mark.parametrize("workers, decode", [(0, "fast"), (2, "fast"), (2, "pil")])
def test_resume_inside_an_epoch_is_exact(shards, workers, decode):
    """A run stopped after k batches resumes with batch k + 1: the same targets and the same pixels."""
    loader = stream_loader(str(shards / "full"), workers=workers, decode=decode)
    whole = epoch(loader, 3)
    for k in (1, 4):
        resumed = epoch(stream_loader(str(shards / "full"), workers=workers, decode=decode), 3, skip=k)
        assert len(resumed) == len(whole) - k
        assert [t for t, _ in resumed] == [t for t, _ in whole[k:]]
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(resumed, whole[k:]))
        assert [t for t, _ in epoch(loader, 3)] == [t for t, _ in whole]
    loader.sampler.skip_next(2 * loader.batch_size)
    assert len(epoch(loader, 3)) == len(whole) - 2
    assert [t for t, _ in epoch(loader, 3)] == [t for t, _ in whole]  # the skip applies to one pass only


def test_teacher_cache_with_shards_is_refused(shards):
    from distillkit.data.replay import ReplayPlan

    params = {"root": str(shards / "full"), "transform_params": [{"type": "RandomResizedCrop", "params": {"size": 8}},
                                                                  {"type": "ToTensor"}]}
    datasets = build_datasets({"datasets": {"s": {"type": "TarShards", "splits": {"train": {
        "dataset_id": "s/train", "params": params}}}}})
    settings = LoaderSettings.parse({"dataset_id": "s/train", "batch_size": 2}, "train.train_data_loader")
    with pytest.raises(ConfigError) as info:
        build_loader(settings, datasets, training=True, replay_plan=ReplayPlan(datasets["s/train"].transform))
    assert "train.teacher_cache" in str(info.value) and "train.train_data_loader.dataset_id" in str(info.value)


def test_missing_index_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_datasets({"datasets": {"s": {"type": "TarShards", "splits": {"train": {
            "dataset_id": "s/train", "params": {"root": str(tmp_path)}}}}}})
    assert "index.json" in str(info.value) and "distillkit prepare" in str(info.value)


def test_trainer_trains_from_shards(shards, write_yaml):
    from distillkit.config import load_config
    from distillkit.engine.trainer import Trainer
    from distillkit.experiment import build_experiment

    text = f"""
datasets:
  s:
    type: TarShards
    splits:
      train:
        dataset_id: s/train
        params:
          root: {shards / 'small'}
          transform_params:
            - {{type: RandomResizedCrop, params: {{size: 16}}}}
            - {{type: RandomHorizontalFlip}}
            - {{type: ToTensor}}
            - {{type: Normalize, params: {{mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}}}
models:
  student_model: {{name: cifar_resnet8, params: {{num_classes: {N}}}, experiment: s}}
train:
  num_epochs: 1
  channels_last: true
  train_data_loader: {{dataset_id: s/train, batch_size: 8, decode: fast}}
  optimizer: {{type: SGD, params: {{lr: 0.1}}}}
  criterion: {{type: GeneralizedCustomLoss, org_term: {{criterion: {{type: CrossEntropyLoss}}, factor: 1.0}}}}
"""
    experiment = build_experiment(load_config(write_yaml(text)), seed=0)
    row = Trainer(experiment).train_one_epoch(0)
    assert len(experiment.train_loader) == 3 and math.isfinite(row["loss"])
