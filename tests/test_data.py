"""The bundled Digits dataset and dataset/loader errors."""
import pytest

from distillkit.config import Config
from distillkit.config.schema import LoaderSettings
from distillkit.data import ShardSampler, build_datasets, build_loader
from distillkit.data.digits import Digits
from distillkit.errors import ConfigError
from tests.conftest import make_image_folder


def test_digits_split_is_deterministic_disjoint_and_complete():
    train, val = Digits("train", image_size=12, val_fraction=0.2), Digits("val", image_size=12, val_fraction=0.2)
    assert len(train) + len(val) == 1797 and len(val) == round(1797 * 0.2)
    again = Digits("val", image_size=12, val_fraction=0.2)
    assert [a.tobytes() for a in again.images[:20]] == [a.tobytes() for a in val.images[:20]]
    train_set = {im.tobytes() + bytes([t]) for im, t in zip(train.images, train.targets)}
    overlap = sum(im.tobytes() + bytes([t]) in train_set for im, t in zip(val.images, val.targets))
    assert overlap <= 5  # the digits data holds a handful of exact duplicate images, nothing more
    image, label = train[0]
    assert image.size == (12, 12) and image.mode == "RGB" and 0 <= label <= 9
    other = Digits("val", image_size=12, val_fraction=0.2, split_seed=1)
    assert other.targets != val.targets


def test_digits_rejects_bad_split():
    with pytest.raises(ConfigError, match="split"):
        Digits("test")


def datasets_config(type_name, root, dataset_id="x/train"):
    return Config({"datasets": {"x": {"type": type_name, "splits": {"train": {
        "dataset_id": dataset_id, "params": {"root": root, "transform_params": [{"type": "ToTensor"}]}}}}}})


def test_image_folder_from_config(tmp_path):
    root = make_image_folder(tmp_path / "train")
    datasets = build_datasets(datasets_config("ImageFolder", root))
    settings = LoaderSettings.parse({"dataset_id": "x/train", "batch_size": 5, "random_sample": False},
                                    "train.val_data_loader")
    images, labels, supp = next(iter(build_loader(settings, datasets, training=False)))
    assert supp == {}
    assert images.shape == (5, 3, 12, 12) and labels.tolist() == [0, 0, 0, 0, 1]


def test_missing_and_empty_roots(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_datasets(datasets_config("ImageFolder", str(tmp_path / "nope")))
    assert "datasets.x.splits.train.params.root" in str(info.value) and "does not exist" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="empty"):
        build_datasets(datasets_config("ImageFolder", str(tmp_path / "empty")))


def test_unknown_dataset_type_and_id(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_datasets(datasets_config("ImageFoldr", str(tmp_path)))
    assert "'ImageFolder'" in str(info.value) and "datasets.x.type" in str(info.value)
    root = make_image_folder(tmp_path / "train")
    datasets = build_datasets(datasets_config("ImageFolder", root))
    with pytest.raises(ConfigError) as info:
        build_loader(LoaderSettings.parse({"dataset_id": "x/trian", "batch_size": 2}, "train.train_data_loader"),
                     datasets, training=True)
    assert "'x/train'" in str(info.value) and "train.train_data_loader.dataset_id" in str(info.value)


def test_shard_sampler_counts_every_sample_once():
    data = list(range(11))
    shards = [list(ShardSampler(data, rank, 3)) for rank in range(3)]
    assert sorted(sum(shards, [])) == data and [len(ShardSampler(data, r, 3)) for r in range(3)] == [4, 4, 3]


def test_a_training_loader_without_a_whole_batch_names_the_batch_size():
    import torch
    from torch.utils.data import TensorDataset

    data = {"d": TensorDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))}
    settings = LoaderSettings.parse({"dataset_id": "d", "batch_size": 16, "drop_last": True},
                                    "train.train_data_loader")
    with pytest.raises(ConfigError) as info:
        build_loader(settings, data, training=True)
    assert "train.train_data_loader.batch_size" in str(info.value) and "4 samples and batch_size 16" in str(info.value)
    assert len(build_loader(settings, data, training=False)) == 0  # an evaluation loader is not refused
    kept = LoaderSettings.parse({"dataset_id": "d", "batch_size": 16}, "train.train_data_loader")
    assert len(build_loader(kept, data, training=True)) == 1  # the last, partial batch
