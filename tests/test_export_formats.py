"""``distillkit export --format safetensors|onnx|torchscript|timm`` (issue 23, item 3): each export is read back by
its own reader (timm's load_checkpoint, onnxruntime, torch.jit.load, timm.create_model) and gives the student's
outputs; special modules and the teacher are left out."""
import json
import os
import sys

import pytest
import torch

from distillkit.cli import main
from distillkit.config import load_config
from distillkit.experiment import student_block
from distillkit.models import build_model
from tests.test_tools import HOOKED

STUDENT = """  student_model:
    name: 'cifar_resnet8'
    params: {num_classes: 10}
    experiment: 'tiny'
    ckpt: """
VIT = "{name: 'distillable_vit', params: {image_size: 8, patch_size: 4, num_classes: 10, dim: 16, depth: 1, " \
      "heads: 2, dim_head: 8, mlp_dim: 16}}"
TIMM_VIT = "{name: 'timm:vit_tiny_patch16_224', params: {img_size: 8, patch_size: 4, num_classes: 10, depth: 1, " \
           "embed_dim: 16, num_heads: 2}}"


def _student(write_yaml, model=None, text=HOOKED, seed=0):
    """(config path, the student with random weights saved as the checkpoint 'weights.pt')."""
    assert STUDENT in text
    config = write_yaml(text if model is None else text.replace(STUDENT, f"  student_model: {model}"))
    key_path, block = student_block(load_config(config))
    torch.manual_seed(seed)
    student = build_model(dict(block, ckpt=None), key_path)
    torch.save({"model": student.state_dict()}, "weights.pt")
    return config, student.eval()


def _outputs(model, images):
    with torch.no_grad():
        return model(images)


def test_safetensors_loads_with_timm_load_checkpoint_and_drops_special_modules(in_tmp, write_yaml, capsys):
    from safetensors.torch import load_file
    from timm.models import load_checkpoint

    config, student = _student(write_yaml)  # HOOKED: a teacher and an AttnEmbed special module beside the student
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "student.safetensors",
                 "--format", "safetensors"]) == 0
    assert set(load_file("student.safetensors")) == set(student.state_dict())
    fresh = build_model({"name": "cifar_resnet8", "params": {"num_classes": 10}}, "fresh")
    load_checkpoint(fresh, "student.safetensors")
    images = torch.randn(4, 3, 8, 8)
    assert torch.equal(_outputs(fresh.eval(), images), _outputs(student, images))
    assert "checked" in capsys.readouterr().out


def test_onnx_runs_in_onnxruntime_with_a_dynamic_batch(in_tmp, write_yaml):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    config, student = _student(write_yaml, VIT)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "student.onnx", "--format", "onnx"]) == 0
    graph = onnx.load("student.onnx").graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert type(student).__name__ == "DistillableViT" and graph.input[0].name == "images"
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 8, 8]
    session = ort.InferenceSession("student.onnx", providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # the example traced had 2 images
        images = torch.randn(batch, 3, 8, 8)
        found = torch.from_numpy(session.run(None, {"images": images.numpy()})[0])
        assert torch.allclose(found, _outputs(student, images), atol=1e-4)


def test_torchscript_reloads_with_the_same_outputs(in_tmp, write_yaml):
    config, student = _student(write_yaml, text=HOOKED)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "student.ts", "--format", "torchscript"]) == 0
    reloaded = torch.jit.load("student.ts")
    images = torch.randn(3, 3, 8, 8)
    assert torch.allclose(_outputs(reloaded, images), _outputs(student, images), atol=1e-6)


def test_timm_folder_is_what_timm_create_model_loads(in_tmp, write_yaml):
    import timm

    config, student = _student(write_yaml, TIMM_VIT)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "hub", "--format", "timm"]) == 0
    assert sorted(os.listdir("hub")) == ["config.json", "model.safetensors"]
    with open("hub/config.json", encoding="utf-8") as handle:
        hub_config = json.load(handle)
    assert hub_config["architecture"] == "vit_tiny_patch16_224" and hub_config["num_classes"] == 10
    assert hub_config["pretrained_cfg"]["input_size"] == [3, 8, 8]
    images = torch.randn(2, 3, 8, 8)
    from_folder = timm.create_model("local-dir:hub", pretrained=True)
    assert torch.equal(_outputs(from_folder.eval(), images), _outputs(student, images))
    by_name = timm.create_model("vit_tiny_patch16_224", pretrained=True, **hub_config["model_args"],
                                pretrained_cfg_overlay=dict(file="hub/model.safetensors", num_classes=10))
    assert torch.equal(_outputs(by_name.eval(), images), _outputs(student, images))


def test_timm_format_refuses_a_student_timm_cannot_rebuild(in_tmp, write_yaml, capsys):
    config, _ = _student(write_yaml)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "hub", "--format", "timm"]) == 2
    err = capsys.readouterr().err
    assert "not a timm model" in err and "cifar_resnet8" in err and "--format safetensors" in err
    assert not os.path.exists("hub")


def test_input_size_when_the_data_cannot_be_read(in_tmp, write_yaml, capsys):
    missing = HOOKED.replace("type: 'Digits'", "type: 'ImageFolder'")
    for split in ("train", "val"):
        missing = missing.replace(f"split: '{split}', image_size: 8, val_fraction: 0.5,", "root: 'no/such/folder',")
    assert missing.count("no/such/folder") == 2
    config, student = _student(write_yaml, text=missing)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "s.ts", "--format", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "--input-size C H W" in err and "no/such/folder" in err
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "s.ts", "--format", "torchscript",
                 "--input-size", "3", "8", "8"]) == 0
    images = torch.randn(2, 3, 8, 8)
    assert torch.allclose(_outputs(torch.jit.load("s.ts"), images), _outputs(student, images), atol=1e-6)


def test_a_missing_optional_library_is_named_with_the_extra(in_tmp, write_yaml, capsys, monkeypatch):
    config, _ = _student(write_yaml)
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx -> ImportError
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "s.onnx", "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "'onnx'" in err and "pip install 'distillkit[export]'" in err and not os.path.exists("s.onnx")


def test_timm_folder_of_a_distilled_vit_evaluates_as_timm_does(in_tmp, write_yaml, capsys):
    import timm

    distilled = "{name: 'timm:deit_tiny_distilled_patch16_224', params: {img_size: 8, patch_size: 4, " \
                "num_classes: 10, depth: 1, embed_dim: 16, num_heads: 2, eval_output: 'class'}}"
    config, student = _student(write_yaml, distilled)
    assert main(["export", config, "--ckpt", "weights.pt", "--out", "hub", "--format", "timm"]) == 0
    assert "eval_output is not kept" in capsys.readouterr().out
    images = torch.randn(2, 3, 8, 8)
    student.train()
    with torch.no_grad():
        class_logits, dist_logits = student(images)
    reloaded = timm.create_model("local-dir:hub", pretrained=True).eval()
    assert torch.allclose(_outputs(reloaded, images), (class_logits + dist_logits) / 2, atol=1e-6)
