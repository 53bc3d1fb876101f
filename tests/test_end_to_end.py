"""Tiny full runs on CPU: train, evaluate, write the run directory, reload checkpoints."""
import json
import os

import pytest
import torch

from distillkit.cli import main
from distillkit.data.digits import Digits
from distillkit.registry import MODELS
from tests.conftest import make_image_folder, run_cli

DIGITS = """
datasets:
  digits:
    name: &name 'digits'
    type: 'Digits'
    splits:
      train:
        dataset_id: &train !join [*name, '/train']
        params: {split: 'train', image_size: 8, val_fraction: 0.5,
                 transform_params: [{type: 'ToTensor', params: }]}
      val:
        dataset_id: &val !join [*name, '/val']
        params: {split: 'val', image_size: 8, val_fraction: 0.5, transform_params: [{type: 'ToTensor'}]}
models:
  student_model:
    name: 'cifar_resnet8'
    params: {num_classes: 10}
    experiment: 'tiny'
    ckpt: 'student.pt'
train:
  log_freq: 5
  num_epochs: 2
  train_data_loader: {dataset_id: *train, random_sample: True, batch_size: 64, num_workers: 0}
  val_data_loader: {dataset_id: *val, random_sample: False, batch_size: 200, num_workers: 0}
  optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}
  scheduler: {type: 'StepLR', params: {step_size: 1, gamma: 0.5}}
  apex: {requires: False, opt_level: '01'}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {criterion: {type: 'CrossEntropyLoss', params: {}}, factor: 1.0}
test:
  test_data_loader: {dataset_id: *val, random_sample: False, batch_size: 100, num_workers: 0}
"""


def accuracy_by_hand(model, dataset):
    """Top-1 of ``model`` on ``dataset``, computed with a plain loop independent of distillkit's evaluator."""
    from torchvision.transforms.functional import to_tensor

    model.eval()
    correct = 0
    with torch.no_grad():
        for image, label in zip(dataset.images, dataset.targets):
            correct += int(model(to_tensor(image)[None]).argmax(1).item() == label)
    return 100.0 * correct / len(dataset)


def test_train_writes_run_dir_and_reloadable_checkpoints(in_tmp, write_yaml, capsys):
    config = write_yaml(DIGITS)
    assert main(["train", config, "--run-dir", "run", "--device", "cpu", "--set", "train.log_freq=5"]) == 0
    files = sorted(os.listdir("run"))
    assert [f for f in files if f != "tensorboard"] == [".lock", "checkpoints", "config.yaml", "metrics.jsonl",
                                                        "results.json", "train.log"]
    assert sorted(os.listdir("run/checkpoints")) == ["best.pt", "epoch_0000.pt", "epoch_0001.pt", "last.pt"]
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [0, 1]
    for row in rows:
        assert {"lr", "loss", "loss/org", "val_top1", "val_top5", "images_per_s", "seconds"} <= set(row)
        assert row["loss"] == pytest.approx(row["loss/org"])
    assert rows[0]["lr"] == pytest.approx(0.05) and rows[1]["lr"] == pytest.approx(0.025)
    best = torch.load("run/checkpoints/best.pt", weights_only=True)
    last = torch.load("run/checkpoints/last.pt", weights_only=True)
    assert last["epoch"] == 1 and {"model", "optimizer", "scheduler", "global_step"} <= set(last)
    model = MODELS["cifar_resnet8"](num_classes=10)
    model.load_state_dict(best["model"])
    val = Digits("val", image_size=8, val_fraction=0.5)
    by_hand = accuracy_by_hand(model, val)
    assert by_hand == pytest.approx(max(r["val_top1"] for r in rows), abs=1e-6)
    assert best["best_metric"]["name"] == "val_top1" and best["best_metric"]["mode"] == "max"
    assert by_hand == pytest.approx(best["best_metric"]["value"], abs=1e-6)
    saved = torch.load("student.pt", weights_only=True)  # models.student_model.ckpt holds the best weights
    assert saved["best_value"] == pytest.approx(by_hand) and saved["best_metric"]["name"] == "val_top1"
    assert "student test top-1" in capsys.readouterr().out
    assert main(["eval", config, "--ckpt", "run/checkpoints/best.pt", "--device", "cpu"]) == 0
    assert f"top-1 {by_hand:.2f}%" in capsys.readouterr().out
    assert "digits/train" in open("run/config.yaml").read()  # the resolved config (tags applied)


def test_existing_run_dir_with_checkpoints_is_not_overwritten(in_tmp, write_yaml, capsys):
    os.makedirs("run/checkpoints")
    with open("run/checkpoints/best.pt", "wb") as handle:
        handle.write(b"precious")
    assert main(["train", write_yaml(DIGITS), "--run-dir", "run"]) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert open("run/checkpoints/best.pt", "rb").read() == b"precious"


SEED_FORMAT = """
datasets:
  toy:
    name: &dataset_name 'toy'
    type: 'ImageFolder'
    root: &root_dir '{root}'
    splits:
      train:
        dataset_id: &toy_train !join [*dataset_name, '/train']
        params:
          root: !join [*root_dir, '/train']
          transform_params:
            - type: 'RandomResizedCrop'
              params:
                size: &input_size [16, 16]
            - type: 'RandomHorizontalFlip'
              params:
                p: 0.5
            - &totensor
              type: 'ToTensor'
              params:
            - &normalize
              type: 'Normalize'
              params:
                mean: [0.485, 0.456, 0.406]
                std: [0.229, 0.224, 0.225]
      val:
        dataset_id: &toy_val !join [*dataset_name, '/val']
        params:
          root: !join [*root_dir, '/val']
          transform_params:
            - type: 'Resize'
              params:
                size: 18
            - type: 'CenterCrop'
              params:
                size: *input_size
            - *totensor
            - *normalize
models:
  teacher_model:
    name: &teacher_model_name 'resnet18'
    params:
      num_classes: 3
      pretrained: False
    experiment: &teacher_experiment !join ['toy', '-', *teacher_model_name]
    ckpt: !join ['./resource/ckpt/', *teacher_experiment, '.pt']
  student_model:
    name: &student_model_name 'cifar_resnet8'
    params:
      num_classes: 3
    experiment: &student_experiment !join ['toy', '-', *student_model_name, '_from_', *teacher_model_name]
    ckpt: !join ['./model/', *student_experiment, '.pt']
train:
  log_freq: 200
  num_epochs: 1
  train_data_loader:
    dataset_id: *toy_train
    random_sample: True
    batch_size: 4
    num_workers: 0
    cache_output:
  val_data_loader:
    dataset_id: *toy_val
    random_sample: False
    batch_size: 5
    num_workers: 0
  teacher:
    sequential: []
    forward_hook:
      input: []
      output: ['fc']
    wrapper:
    requires_grad: False
  student:
    adaptations:
    sequential: []
    forward_hook:
      input: ['fc']
      output: ['fc']
    wrapper: 'DistributedDataParallel'
    requires_grad: True
    frozen_modules: []
  apex:
    requires: False
    opt_level: '01'
  optimizer:
    type: 'AdamW'
    params:
      lr: 0.001
      weight_decay: 0.0005
  scheduler:
    type: 'MultiStepLR'
    params:
      milestones: [30, 60, 90]
      gamma: 0.1
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term:
      criterion:
        type: 'KDLoss'
        params:
          temperature: 4.0
          alpha: 0.5
          reduction: 'batchmean'
      factor: 1.0
    sub_terms:
      logits_mse:
        criterion:
          type: 'MSELoss'
          params:
            input: {{is_from_teacher: False, module_path: 'fc', io: 'output'}}
            target: {{is_from_teacher: True, module_path: 'fc', io: 'output'}}
        factor: 0.5
test:
  test_data_loader:
    dataset_id: *toy_val
    random_sample: False
    batch_size: 1
    num_workers: 0
"""


def test_seed_format_kd_config_on_image_folder(in_tmp, write_yaml):
    make_image_folder(in_tmp / "data" / "train", per_class=4, size=20)
    make_image_folder(in_tmp / "data" / "val", per_class=2, size=20, seed=1)
    import torchvision

    torch.manual_seed(123)
    teacher = torchvision.models.resnet18(num_classes=3)
    os.makedirs("resource/ckpt")
    torch.save({"model": teacher.state_dict()}, "resource/ckpt/toy-resnet18.pt")
    config = write_yaml(SEED_FORMAT.format(root=str(in_tmp / "data")))
    from distillkit.runner import train_from_config

    results = train_from_config(config, run_dir="run", device="cpu")
    row = json.loads(open("run/metrics.jsonl").read())
    assert {"loss/org", "loss/logits_mse"} <= set(row)
    assert row["loss"] == pytest.approx(row["loss/org"] + row["loss/logits_mse"], rel=1e-5)
    assert results["student"]["count"] == 6 and results["teacher"]["count"] == 6
    # The teacher ran from its checkpoint and stayed frozen: its test accuracy is that of the saved weights.
    from torchvision import datasets, transforms

    val = datasets.ImageFolder(str(in_tmp / "data" / "val"), transforms.Compose([
        transforms.Resize(18), transforms.CenterCrop(16), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
    teacher.eval()
    with torch.no_grad():
        correct = sum(int(teacher(x[None]).argmax(1).item() == y) for x, y in val)
    assert results["teacher"]["top1"] == pytest.approx(100.0 * correct / len(val))
    assert os.path.isfile("model/toy-cifar_resnet8_from_resnet18.pt")


def test_cli_errors_are_one_paragraph_without_traceback(in_tmp, write_yaml):
    config = write_yaml(DIGITS.replace("type: 'CrossEntropyLoss'", "type: 'CrossEntropyLos'"))
    result = run_cli("train", config, "--run-dir", "run", cwd=in_tmp)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "'CrossEntropyLoss'" in result.stderr and "train.criterion.org_term.criterion.type" in result.stderr
    assert f"{config}, line " in result.stderr and len(result.stderr.strip().splitlines()) == 1
    debug = run_cli("train", config, "--run-dir", "run2", "--debug", cwd=in_tmp)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_cuda_request_without_cuda_is_explained(in_tmp, write_yaml):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("train", write_yaml(DIGITS), "--device", "cuda", cwd=in_tmp)
    assert result.returncode == 2 and "--device cpu" in result.stderr and "Traceback" not in result.stderr
