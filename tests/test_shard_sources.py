"""TarShards from WebDataset-style shard URLs: brace patterns, ``pipe:``, ``s3://`` (through a stand-in ``aws``),
counts without an index, and interchange with webdataset itself (it reads what ``distillkit prepare`` writes;
TarShards reads what webdataset's ShardWriter writes)."""
import io
import json
import os
import shutil
import stat
import sys
import tarfile

import pytest
import torch
from PIL import Image

from distillkit.config.schema import LoaderSettings
from distillkit.data import build_datasets, build_loader
from distillkit.data.shard_sources import read_samples, stream_command
from distillkit.errors import ConfigError
from distillkit.tools.prepare import main as prepare_main
from tests.test_shards import N, epoch, make_folder

wds = pytest.importorskip("webdataset")
PATTERN = "shard-{000000..000004}.tar"  # the 5 shards of 23 samples, 5 per shard


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("sources")
    folder = make_folder(base / "folder")
    assert prepare_main([folder, str(base / "full"), "--shard-size", "5"]) == 0
    return base


def dataset(root, **params):
    params = {"root": root, "shuffle_buffer": 4, **params, "transform_params": [
        {"type": "RandomResizedCrop", "params": {"size": 16}}, {"type": "RandomHorizontalFlip"}, {"type": "ToTensor"}]}
    return build_datasets({"datasets": {"s": {"type": "TarShards", "splits": {"train": {
        "dataset_id": "s/train", "params": params}}}}})


def loader(root, workers=0, training=True, decode="fast", **params):
    settings = LoaderSettings.parse({"dataset_id": "s/train", "batch_size": 3, "num_workers": workers,
                                     "decode": decode}, "train.train_data_loader")
    return build_loader(settings, dataset(root, **params), training=training, seed=0)


def same_batches(a, b):
    return [t for t, _ in a] == [t for t, _ in b] and all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))


def test_brace_pattern_and_pipe_read_the_folders_epoch(prepared):
    """The folder root (index.json) is the reference: a local brace pattern and a pipe:cat pattern of the same
    shards give the same epoch, batch for batch and pixel for pixel, and the classes of the index beside them."""
    full = prepared / "full"
    reference = epoch(loader(str(full), workers=2), 1)
    for root in (str(full / PATTERN), f"pipe:cat {full / PATTERN}", [str(full / PATTERN)]):
        assert same_batches(epoch(loader(root, workers=2), 1), reference), root
    assert dataset(f"pipe:cat {full / PATTERN}")["s/train"].classes == [f"c{k:02d}" for k in range(N)]


def test_resume_inside_an_epoch_over_pipes_is_exact(prepared):
    root = f"pipe:cat {prepared / 'full' / PATTERN}"
    whole = epoch(loader(root, workers=2), 2)
    resumed = epoch(loader(root, workers=2), 2, skip=3)
    assert len(resumed) == len(whole) - 3 and same_batches(resumed, whole[3:])


def test_counts_without_an_index_and_from_a_webdataset_shard_index(prepared, tmp_path):
    """Shards copied away from their index.json are counted by reading them (headers locally, the stream over a
    pipe); the counts equal prepare's index. A WebDataset shard index (shardlist/nsamples) is read as given."""
    written = json.loads((prepared / "full" / "index.json").read_text())
    for shard in written["shards"]:
        shutil.copy(prepared / "full" / shard["name"], tmp_path / shard["name"])
    expected = [s["count"] for s in written["shards"]]
    for root in (str(tmp_path / PATTERN), f"pipe:cat {tmp_path / PATTERN}"):
        shards = dataset(root)["s/train"]
        assert [count for _, count in shards.shards] == expected and shards.classes == [] and len(shards) == N
    index = tmp_path / "wds-index.json"
    index.write_text(json.dumps({"shardlist": [{"url": f"s3://bucket/{s['name']}", "nsamples": s["count"] + 1}
                                               for s in written["shards"]]}))
    assert [c for _, c in dataset(str(tmp_path / PATTERN), index=str(index))["s/train"].shards] == \
        [c + 1 for c in expected]  # taken from the index, not counted


def test_s3_urls_stream_through_the_aws_cli(prepared, tmp_path, monkeypatch):
    """s3:// shards are read with `aws s3 cp URL -`; a stand-in `aws` serving a local folder as the bucket."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aws"
    fake.write_text(f"#!{sys.executable}\nimport os, sys\nurl = [a for a in sys.argv if a.startswith('s3://')][0]\n"
                    f"sys.stdout.buffer.write(open(os.path.join({str(prepared / 'full')!r}, "
                    f"url[len('s3://bucket/'):]), 'rb').read())\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert stream_command("s3://bucket/a.tar").startswith("pipe:aws s3 cp")
    url = "s3://bucket/" + PATTERN
    reference = epoch(loader(str(prepared / "full")), 0)
    assert same_batches(epoch(loader(url, index=str(prepared / "full" / "index.json")), 0), reference)
    assert same_batches(epoch(loader(url), 0), reference)  # counted through the stream


def test_webdataset_reads_what_prepare_writes(prepared):
    """webdataset's own pipeline over prepare's shards: key.jpg + key.cls, the source files' bytes and classes."""
    samples = list(wds.WebDataset(str(prepared / "full" / PATTERN), shardshuffle=False, empty_check=False))
    assert len(samples) == N
    for sample in samples:
        assert set(sample) >= {"__key__", "jpg", "cls"}
        label = int(sample["cls"].decode())
        assert (prepared / "folder" / f"c{label:02d}" / "0.jpg").read_bytes() == sample["jpg"]
    assert sorted(int(s["cls"]) for s in samples) == list(range(N))


def test_tarshards_reads_what_webdataset_shardwriter_writes(tmp_path):
    """Shards written by webdataset's ShardWriter (its own key and encoding conventions) read back sample for
    sample, and an evaluation loader over them sees every written class once."""
    images = []
    for k in range(7):
        buffer = io.BytesIO()
        Image.new("RGB", (20 + k, 18), (10 * k, 0, 0)).save(buffer, format="JPEG")
        images.append(buffer.getvalue())
    with wds.ShardWriter(str(tmp_path / "wds-%06d.tar"), maxcount=3, verbose=0) as sink:
        for k, data in enumerate(images):
            sink.write({"__key__": f"sample{k:04d}", "jpg": data, "cls": 6 - k, "json": {"k": k}})
    pattern = str(tmp_path / "wds-{000000..000002}.tar")
    read = [s for url in wds.shardlists.expand_urls(pattern) for s in read_samples(url)]
    assert read == [(f"sample{k:04d}", images[k], 6 - k) for k in range(7)]
    with tarfile.open(tmp_path / "wds-000000.tar") as tar:  # webdataset's own layout
        assert sorted(tar.getnames())[:3] == ["sample0000.cls", "sample0000.jpg", "sample0000.json"]
    targets = [t for targets, _ in epoch(loader(pattern, training=False, decode="pil"), 0) for t in targets]
    assert sorted(targets) == list(range(7))


def test_missing_shards_and_missing_webdataset_are_config_errors(prepared, monkeypatch):
    with pytest.raises(ConfigError) as info:
        dataset(str(prepared / "full" / "shard-{000000..000009}.tar"))
    assert "shard-000005.tar" in str(info.value) and "params.root" in str(info.value)
    monkeypatch.setitem(sys.modules, "webdataset", None)  # import webdataset now raises ImportError
    with pytest.raises(ConfigError) as info:
        dataset(str(prepared / "full" / PATTERN))
    assert "distillkit[shards]" in str(info.value) and "webdataset" in str(info.value)
    assert len(dataset(str(prepared / "full"))["s/train"]) == N  # a prepare folder needs no webdataset
