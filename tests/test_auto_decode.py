"""The loader's default ``decode: auto``: the fast path where it computes the dataset's views, torchvision's PIL
path otherwise, with one INFO line naming why. References: an explicit ``decode: pil`` loader with the same seed
(torchvision's own path), and an explicit ``decode: fast`` loader."""
import logging

import pytest
import torch
from torchvision.datasets import ImageFolder

from distillkit.config.schema import LoaderSettings
from distillkit.data import build_datasets, build_loader
from distillkit.data.device_batch import UInt8Batch
from distillkit.errors import BadImageError, ConfigError
from tests.test_input_pipeline import GREY, MEAN, STD, jpeg_folder

VIEW = [{"type": "RandomResizedCrop", "params": {"size": 24}}, {"type": "RandomHorizontalFlip"},
        {"type": "ToTensor"}, {"type": "Normalize", "params": {"mean": list(MEAN), "std": list(STD)}}]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return jpeg_folder(tmp_path_factory.mktemp("auto") / "train", [(60, 45), (45, 60)], per_class=3)


def first_batch(datasets, decode=None, wrapper=None, seed=3):
    block = {"dataset_id": "d/train", "batch_size": 6}
    if decode is not None:
        block["decode"] = decode
    if wrapper is not None:
        block["dataset_wrapper"] = wrapper
    loader = build_loader(LoaderSettings.parse(block, "train.train_data_loader"), datasets, training=True, seed=seed)
    torch.manual_seed(0)
    return next(iter(loader))


def folder_datasets(root, transform_params=VIEW, type_name="ImageFolder"):
    return build_datasets({"datasets": {"d": {"type": type_name, "splits": {"train": {
        "dataset_id": "d/train", "params": {"root": root, "transform_params": transform_params}}}}}})


def decode_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "distillkit.data.decoding"]


def test_default_is_the_fast_path_on_an_image_folder(folder, caplog):
    caplog.set_level(logging.INFO, logger="distillkit.data.decoding")
    datasets = folder_datasets(folder)
    images, targets, _ = first_batch(datasets)
    assert decode_lines(caplog) == ["train.train_data_loader.decode: auto -> fast (views computed from the encoded "
                                    "bytes)"]
    fast_images, fast_targets, _ = first_batch(datasets, "fast")
    assert isinstance(images, UInt8Batch) and torch.equal(images.nhwc, fast_images.nhwc)
    pil_images, pil_targets, _ = first_batch(datasets, "pil")  # torchvision's path, same seed: same crops
    assert torch.equal(targets, pil_targets) and torch.equal(targets, fast_targets)
    assert ((images.to("cpu") - pil_images).abs() * GREY).max() <= 1.001


@pytest.mark.parametrize("case, reason", [
    ("ColorJitter", "ColorJitter"),
    ("wrapper", "dataset_wrapper"),
    ("own getitem", "OwnItems has its own __getitem__"),
])
def test_fallback_to_pil_names_why_and_equals_the_pil_path(folder, caplog, case, reason):
    transform_params = VIEW[:2] + [{"type": "ColorJitter", "params": {"brightness": 0.4}}] + VIEW[2:] \
        if case == "ColorJitter" else VIEW
    datasets = folder_datasets(folder, transform_params)
    if case == "own getitem":
        class OwnItems(ImageFolder):
            def __getitem__(self, index):
                image, target = super().__getitem__(index)
                return image * 0 + 1, target

        datasets = {"d/train": OwnItems(folder, transform=datasets["d/train"].transform)}
    wrapper = {"type": "CRDDatasetWrapper", "params": {"num_negative_samples": 2}} if case == "wrapper" else None
    caplog.set_level(logging.INFO, logger="distillkit.data.decoding")
    images, targets, _ = first_batch(datasets, wrapper=wrapper)
    lines = decode_lines(caplog)
    assert len(lines) == 1 and "auto -> pil" in lines[0] and reason in lines[0], lines
    pil_images, pil_targets, _ = first_batch(datasets, "pil", wrapper=wrapper)
    assert not isinstance(images, UInt8Batch) and torch.equal(images, pil_images) and torch.equal(targets, pil_targets)


def test_in_memory_datasets_keep_the_pil_path(caplog):
    caplog.set_level(logging.INFO, logger="distillkit.data.decoding")
    datasets = build_datasets({"datasets": {"d": {"type": "FakeData", "splits": {"train": {
        "dataset_id": "d/train", "params": {"size": 6, "image_size": [3, 8, 8], "transform_params": VIEW}}}}}})
    images, _, _ = first_batch(datasets)
    lines = decode_lines(caplog)
    assert isinstance(images, torch.Tensor) and images.dtype == torch.float32
    assert len(lines) == 1 and "FakeData does not list image files" in lines[0]


def test_tarshards_default_is_fast_unless_the_transform_needs_pil(tmp_path, caplog):
    from distillkit.tools.prepare import main as prepare_main

    folder = jpeg_folder(tmp_path / "folder", [(60, 45)], per_class=3)
    assert prepare_main([folder, str(tmp_path / "shards"), "--shard-size", "4"]) == 0
    caplog.set_level(logging.INFO, logger="distillkit.data.decoding")
    for transform_params, kind in ((VIEW, UInt8Batch), (VIEW[:2] + [{"type": "Grayscale", "params": {
            "num_output_channels": 3}}] + VIEW[2:], torch.Tensor)):
        datasets = folder_datasets(str(tmp_path / "shards"), transform_params, "TarShards")
        assert isinstance(first_batch(datasets)[0], kind)
    lines = decode_lines(caplog)
    assert "auto -> fast" in lines[0] and "auto -> pil" in lines[1] and "Grayscale" in lines[1]


def test_a_decode_typo_names_the_choices(folder):
    with pytest.raises(ConfigError) as info:
        first_batch(folder_datasets(folder), "fsat")
    assert "train.train_data_loader.decode" in str(info.value) and "auto" in str(info.value)
    assert "fast" in str(info.value)


@pytest.mark.parametrize("skip", [False, True])
def test_the_fast_path_keeps_the_unreadable_file_guard(tmp_path, skip):
    """A truncated JPEG under decode: auto (-> fast): named in one paragraph, or with skip_bad_images the next
    file of its class stands in, exactly as on the PIL path (the reference)."""
    from tests.test_robustness_data_launch import TRUNCATED, bad_folder

    truncated, _ = bad_folder(tmp_path)
    block = {"type": "ImageFolder", "skip_bad_images": skip, "splits": {"train": {"dataset_id": "f/train", "params": {
        "root": str(tmp_path), "transform_params": [{"type": "CenterCrop", "params": {"size": 8}},
                                                    {"type": "ToTensor"}]}}}}
    datasets = build_datasets({"datasets": {"f": block}})
    views = {}
    for decode in ("auto", "pil"):
        settings = LoaderSettings.parse({"dataset_id": "f/train", "batch_size": 2, "decode": decode}, "train.x")
        dataset = build_loader(settings, datasets, training=True).dataset
        if not skip:
            with pytest.raises(BadImageError) as info:
                dataset[TRUNCATED]
            assert info.value.path == truncated and "skip_bad_images: true" in str(info.value)
            continue
        views[decode] = [dataset[i][0] for i in (TRUNCATED, 0)]
    if skip:
        assert views["auto"][0].dtype == torch.uint8 and torch.equal(views["auto"][0], views["auto"][1])
        assert torch.equal(views["auto"][0].permute(2, 0, 1).float() / 255, views["pil"][0])


def test_a_pil_record_replayed_under_auto_names_decode_pil(tmp_path):
    """A teacher-cache record made by the PIL path (the default before auto) is refused under decode: fast with
    the fix named; another difference gets no such hint."""
    from types import SimpleNamespace

    from distillkit.engine.teacher_cache import TeacherCache
    from distillkit.errors import DistillkitError

    ctx = SimpleNamespace(world_size=1, rank=0, device="cpu")
    meta = {"transform": ["RandomResizedCrop(size=(8, 8))", "ToTensor()"], "num_samples": 4, "world_size": 1,
            "top_k": None, "teacher": "abc"}
    torch.save({"meta": meta}, tmp_path / "epoch_0000.rank0-of-1.pt")
    for signature, hinted in ((meta["transform"] + ["decode: fast"], True), (["ToTensor()", "decode: fast"], False)):
        cache = TeacherCache(str(tmp_path), None, signature, 4, ctx, teacher="abc")
        with pytest.raises(DistillkitError) as info:
            cache.begin_epoch(0, sampler=None)
        assert "made with a different transform" in str(info.value)
        assert ("set decode: pil on train.train_data_loader" in str(info.value)) == hinted
