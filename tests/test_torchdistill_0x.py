"""torchdistill 0.x constructs that configs written for it use (issue 15): each in the 0.x form, on generated data."""
import urllib.error

import pytest
import torchvision

from distillkit.config import load_config
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from tests.test_end_to_end import DIGITS

SINGLE_MODEL = DIGITS.replace("  student_model:", "  model:").replace("ckpt: 'student.pt'", "ckpt: ") + """
"""


def test_single_model_configs_read_train_model(write_yaml):
    side = ("  model: {adaptations: , sequential: [], wrapper: 'DistributedDataParallel', requires_grad: True, "
            "frozen_modules: ['layer1']}\n")
    text = SINGLE_MODEL.replace("  optimizer:", side + "  optimizer:")
    experiment = build_experiment(load_config(write_yaml(text)))
    frozen = [name for name, p in experiment.student.model.named_parameters() if not p.requires_grad]
    assert frozen and all(name.startswith("layer1.") for name in frozen)
    assert all(p.requires_grad for name, p in experiment.student.model.named_parameters()
               if not name.startswith("layer1."))


def test_an_offline_download_names_the_root_and_what_to_place_there(write_yaml, monkeypatch, tmp_path):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    text = f"""
datasets:
  cifar10:
    name: &name 'cifar10'
    type: 'CIFAR10'
    splits:
      train:
        dataset_id: 'cifar10/train'
        params: {{root: '{tmp_path}/nodata', train: True, download: True, transform_params: [{{type: 'ToTensor'}}]}}
models:
  model: {{name: 'cifar_resnet8', params: {{num_classes: 10}}}}
train:
  num_epochs: 1
  train_data_loader: {{dataset_id: 'cifar10/train', batch_size: 4}}
  optimizer: {{type: 'SGD', params: {{lr: 0.1}}}}
  criterion: {{type: 'CrossEntropyLoss'}}
"""
    with pytest.raises(ConfigError) as info:
        build_experiment(load_config(write_yaml(text)))
    message = str(info.value)
    assert "datasets.cifar10.splits.train.params.root" in message and "cifar-10-batches-py" in message
    assert "no network" in message
