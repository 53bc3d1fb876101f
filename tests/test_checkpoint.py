"""Checkpoint files: atomic writes, weights_only reads, and errors that name the file."""
import argparse
import os

import pytest
import torch
from torch import nn

from distillkit.models.checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_atomic


def test_save_atomic_round_trip_leaves_no_temp_files(tmp_path):
    path = str(tmp_path / "sub" / "ckpt.pt")
    model = nn.Linear(3, 2)
    save_atomic({"model": model.state_dict(), "epoch": 3}, path)
    assert os.listdir(tmp_path / "sub") == ["ckpt.pt"]
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 3 and torch.equal(loaded["model"]["weight"], model.weight)


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "bad.pt"
    save_atomic({"model": nn.Linear(30, 20).state_dict()}, str(path))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(str(path))
    assert str(path) in str(info.value) and "truncated" in str(info.value)


def test_foreign_objects_are_refused(tmp_path):
    path = tmp_path / "pickled.pt"
    torch.save({"model": {}, "obj": nn.Linear(2, 2)}, str(path))
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(str(path))


def test_key_and_shape_mismatches_list_both_sides(tmp_path):
    path = str(tmp_path / "ckpt.pt")
    save_atomic({"model": nn.Sequential(nn.Linear(3, 2)).state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_model_weights(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2)), path)
    assert "1.weight" in str(info.value) and path in str(info.value)
    with pytest.raises(CheckpointError) as info:
        load_model_weights(nn.Sequential(nn.Linear(4, 2)), path)
    assert "(2, 3)" in str(info.value) and "(2, 4)" in str(info.value)


def test_ddp_prefix_and_missing_file(tmp_path):
    path = str(tmp_path / "ddp.pt")
    source = nn.Linear(3, 2)
    save_atomic({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)
    target = nn.Linear(3, 2)
    load_model_weights(target, path)
    assert torch.equal(target.weight, source.weight)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "none.pt"))


def test_a_checkpoint_saved_by_torchdistills_scripts_loads(tmp_path):
    """torchdistill saves {model, optimizer, best_value, lr_scheduler, args} with its argparse.Namespace."""
    from distillkit.models.cifar_resnet import CifarResNet

    source = CifarResNet(8, 10)
    path = tmp_path / "torchdistill.pt"
    torch.save({"model": source.state_dict(), "optimizer": None, "best_value": 0.9, "lr_scheduler": None,
                "args": argparse.Namespace(config="x.yaml", device="cuda")}, path)
    target = CifarResNet(8, 10)
    load_model_weights(target, str(path), what="teacher checkpoint")
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
