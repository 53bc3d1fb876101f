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


MULTI_STAGE = DIGITS.replace("ckpt: 'student.pt'", "ckpt: ").replace("""models:
  student_model:""", """models:
  teacher_model: {name: 'cifar_resnet8', params: {num_classes: 10}}
  student_model:""")
MULTI_STAGE = MULTI_STAGE[:MULTI_STAGE.index("\ntrain:") + 1] + """train:
  log_freq: 5
  stage1:
    num_epochs: 1
    train_data_loader: {dataset_id: *train, random_sample: True, batch_size: 64, num_workers: 0}
    val_data_loader: {dataset_id: *val, random_sample: False, batch_size: 200, num_workers: 0}
    student: {frozen_modules: ['fc']}
    optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}
    criterion: {type: 'GeneralizedCustomLoss', org_term: {criterion: {type: 'CrossEntropyLoss'}, factor: 1.0}}
  stage2:
    num_epochs: 1
    optimizer: {type: 'SGD', params: {lr: 0.01}}
    criterion:
      type: 'GeneralizedCustomLoss'
      org_term: {criterion: {type: 'KDLoss', params: {temperature: 2.0, alpha: 0.5}}, factor: 1.0}
test:
  test_data_loader: {dataset_id: *val, random_sample: False, batch_size: 100, num_workers: 0}
"""


def test_multi_stage_runs_each_stage_in_order_on_the_same_models(in_tmp, write_yaml, capsys):
    import json
    import os

    import torch

    from distillkit.cli import main

    config = write_yaml(MULTI_STAGE)
    assert main(["check", config, "--device", "cpu"]) == 0
    report = capsys.readouterr().out
    assert "stage 1 (train.stage1)" in report and "stage 2 (train.stage2)" in report and "loss/" not in report
    assert main(["train", config, "--run-dir", "run", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    assert [(r["epoch"], r["stage"], r["lr"]) for r in rows] == [(0, 1, 0.05), (1, 2, 0.01)]
    assert "loss/org" in rows[1] and rows[0]["loss"] == rows[0]["loss/org"]
    first = torch.load("run/checkpoints/epoch_0000.pt", weights_only=True)
    last = torch.load("run/checkpoints/epoch_0001.pt", weights_only=True)
    assert (first["stage"], last["stage"]) == (0, 1)
    assert not torch.equal(first["model"]["conv1.weight"], last["model"]["conv1.weight"])  # stage 2 trained it
    # each stage has its own optimizer: stage 1 froze fc (weight and bias), stage 2 trains every parameter
    counts = [len(state["optimizer"]["param_groups"][0]["params"]) for state in (first, last)]
    assert counts[1] - counts[0] == 2
    # resuming from the end of stage 1 into a new directory runs stage 2 alone and ends where the straight run did
    assert main(["train", config, "--resume", "run/checkpoints/epoch_0000.pt", "--run-dir", "again",
                 "--device", "cpu"]) == 0
    again = torch.load("again/checkpoints/last.pt", weights_only=True)
    assert again["epoch"] == 1 and again["stage"] == 1
    for key, value in last["model"].items():
        assert torch.equal(value, again["model"][key]), key
    assert [json.loads(line)["epoch"] for line in open("again/metrics.jsonl")] == [1]
    assert os.path.isfile("again/results.json")


def test_a_stage_without_num_epochs_is_named(write_yaml):
    text = MULTI_STAGE.replace("  stage2:\n    num_epochs: 1\n", "  stage2:\n")
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(text))
    assert "train.stage2.num_epochs" in str(info.value)


def test_set_reaches_a_stage(write_yaml):
    config = load_config(write_yaml(MULTI_STAGE), ["train.stage2.num_epochs=3"])
    from distillkit.config.validate import parse_settings

    assert [stage.num_epochs for stage in parse_settings(config).stages] == [1, 3]
    assert parse_settings(config).stages[1].train_data_loader.batch_size == 64  # inherited from stage 1


def test_a_dataset_wrapper_puts_its_extras_in_the_batch_and_the_loss_receives_them(tmp_path, write_yaml):
    import torch
    from torch import nn

    from distillkit import Trainer
    from distillkit.registry import LOSSES, register_loss
    from tests.conftest import make_image_folder

    seen = {}

    @register_loss("WrapperProbe", term="sub")
    class Probe(nn.Module):
        def forward(self, student_io, teacher_io, targets, supp_dict=None):
            seen.update(supp_dict)
            return student_io["fc"]["output"].sum() * 0

    root = make_image_folder(tmp_path / "imgs", per_class=4, size=8)
    wrapper = {"0x": "{name: 'ContrastiveDataset', params: {num_negative_samples: 5, mode: 'exact'}}",
               "1x": "{key: 'CRDDatasetWrapper', kwargs: {num_negative_samples: 5}}"}
    try:
        for form, block in wrapper.items():
            config = load_config(write_yaml(f"""
datasets:
  imgs:
    type: 'ImageFolder'
    splits:
      train: {{dataset_id: 'imgs/train', params: {{root: '{root}', transform_params: [{{type: 'ToTensor'}}]}}}}
models:
  student_model: {{name: 'cifar_resnet8', params: {{num_classes: 3}}}}
train:
  num_epochs: 1
  train_data_loader: {{dataset_id: 'imgs/train', batch_size: 6, dataset_wrapper: {block}}}
  student: {{forward_hook: {{output: ['fc']}}}}
  optimizer: {{type: 'SGD', params: {{lr: 0.1}}}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {{criterion: {{type: 'CrossEntropyLoss'}}, factor: 1.0}}
    sub_terms: {{probe: {{criterion: {{type: 'WrapperProbe'}}, factor: 1.0}}}}
""", f"{form}.yaml"))
            experiment = build_experiment(config)
            images, targets, supp = next(iter(experiment.train_loader))
            assert supp["contrast_idx"].shape == (6, 6) and torch.equal(supp["pos_idx"], supp["contrast_idx"][:, 0])
            Trainer(experiment).forward(images, targets, supp)
            assert torch.equal(seen["pos_idx"], supp["pos_idx"]), form
            # the negatives come from the other classes
            labels = torch.tensor(experiment.train_loader.dataset.org_dataset.targets)
            assert (labels[supp["contrast_idx"][:, 1:]] != labels[supp["pos_idx"]][:, None]).all()
        with pytest.raises(ConfigError) as info:
            build_experiment(load_config(write_yaml(open(tmp_path / "1x.yaml").read().replace(
                "CRDDatasetWrapper", "CRDDatasetWraper"), "typo.yaml")))
        assert "train.train_data_loader.dataset_wrapper.type" in str(info.value) and "'CRDDatasetWrapper'" \
            in str(info.value)
    finally:
        LOSSES._table.pop("WrapperProbe")


def test_0x_parameter_names_are_renamed_in_place_of_the_1x_ones():
    from distillkit.utils import rename_params

    params = {"connectors": {"c1": {"conv_params": {"in_channels": 1}, "bn_params": {"num_features": 2}},
                             "c2": {"conv2d_kwargs": {"in_channels": 3}}},
              "abfs": [{"params": {"in_channel": 4}}, {"path": "x"}]}
    aliases = {"connectors.*.conv_params": "conv2d_kwargs", "connectors.*.bn_params": "bn2d_kwargs",
               "abfs.*.params.in_channel": "in_channels", "abfs.*.params": "kwargs"}
    renamed = rename_params(params, aliases, "special.params")
    assert renamed == {"connectors": {"c1": {"conv2d_kwargs": {"in_channels": 1}, "bn2d_kwargs": {"num_features": 2}},
                                      "c2": {"conv2d_kwargs": {"in_channels": 3}}},
                       "abfs": [{"kwargs": {"in_channels": 4}}, {"path": "x"}]}
    assert params["connectors"]["c1"]["conv_params"] == {"in_channels": 1}  # the config itself is unchanged


def test_a_0x_special_module_block_builds_the_same_module_as_the_1x_one():
    from torch import nn

    from distillkit.model_side import ModelSide

    def side(connector):
        model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        connectors = {"c1": {"io": "output", "path": "student_model.0", **connector}}
        block = {"special": {"type": "Connector4DAB", "params": {"connectors": connectors}}}
        return ModelSide(model, block)

    old = side({"conv_params": {"in_channels": 4, "out_channels": 8, "kernel_size": 1},
                "bn_params": {"num_features": 8}})
    new = side({"conv2d_kwargs": {"in_channels": 4, "out_channels": 8, "kernel_size": 1},
                "bn2d_kwargs": {"num_features": 8}})
    assert {k: v.shape for k, v in old.state_dict().items()} == {k: v.shape for k, v in new.state_dict().items()}


def test_forward_proc_values_of_image_classification_are_accepted_and_others_named():
    from torch import nn

    from distillkit.model_side import ModelSide

    for proc in ("forward_batch_only", "forward_batch_supp_dict", "forward_batch4sskd"):
        ModelSide(nn.Linear(2, 2), {"forward_proc": proc})
    with pytest.raises(ConfigError) as info:
        ModelSide(nn.Linear(2, 2), {"forward_proc": "forward_batch_as_kwargs"}, key_path="train.student")
    assert "train.student.forward_proc" in str(info.value) and "not supported" in str(info.value)


def test_the_sskd_wrapper_leaves_the_shared_dataset_its_transform():
    import torch

    from distillkit.data.wrappers import SSKDDatasetWrapper

    class Squares(torch.utils.data.Dataset):
        transform = staticmethod(lambda image: image * 2)

        def __len__(self):
            return 1

        def __getitem__(self, index):
            image = torch.arange(9.0).reshape(1, 3, 3)
            return (self.transform(image) if self.transform else image), 0

    dataset = Squares()
    first, second = SSKDDatasetWrapper(dataset), SSKDDatasetWrapper(dataset)  # two stages wrap one dataset
    assert dataset.transform is not None
    assert torch.equal(first[0][0], second[0][0])
    assert torch.equal(first[0][0][0], torch.arange(9.0).reshape(1, 3, 3) * 2)


def test_fitnet_stage_trains_an_adaptation_inside_sequential_and_evaluates_the_whole_model(in_tmp, write_yaml):
    import json

    import torch

    from distillkit.cli import main

    stage1 = """  stage1:
    num_epochs: 1
    train_data_loader: {dataset_id: *train, random_sample: True, batch_size: 64, num_workers: 0}
    val_data_loader: {dataset_id: *val, random_sample: False, batch_size: 200, num_workers: 0}
    teacher: {sequential: ['conv1', 'bn1', 'relu', 'layer1'], forward_hook: {output: ['layer1']}}
    student:
      adaptations:
        convreg: {type: 'ConvReg', params: {num_input_channels: 16, num_output_channels: 16, kernel_size: 1,
                                            stride: 1, padding: 0, uses_relu: True}}
        pool: {type: 'MaxPool2d', params: {kernel_size: 1}}
      sequential: ['conv1', 'bn1', 'relu', 'layer1', '+convreg', '+pool']
      forward_hook: {output: ['+pool']}
    optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9}}
    criterion:
      type: 'GeneralizedCustomLoss'
      org_term: {factor: 0.0}
      sub_terms:
        hint:
          criterion: {type: 'MSELoss', params: {reduction: 'sum'}}
          params: {input: {is_from_teacher: False, module_path: '+pool', io: 'output'},
                   target: {is_from_teacher: True, module_path: 'layer1', io: 'output'}}
          factor: 1.0
"""
    text = MULTI_STAGE[:MULTI_STAGE.index("  stage1:")] + stage1 + MULTI_STAGE[MULTI_STAGE.index("  stage2:"):]
    assert main(["train", write_yaml(text), "--run-dir", "run", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in open("run/metrics.jsonl")]
    assert [r["stage"] for r in rows] == [1, 2] and "loss/hint" in rows[0] and rows[0]["val_top1"] > 0
    first = torch.load("run/checkpoints/epoch_0000.pt", weights_only=True)
    assert "fc.weight" in first["model"] and not any(k.startswith("+") for k in first["model"])
    assert any("+convreg.conv.weight" in k for k in first["student_side"])


def test_random_split_cuts_one_dataset_into_sub_datasets_with_their_own_transforms(write_yaml):
    import torch
    from torch.utils.data import random_split

    declared_val = """      val:
        dataset_id: &val !join [*name, '/val']
        params: {split: 'val', image_size: 8, val_fraction: 0.5, transform_params: [{type: 'ToTensor'}]}"""
    text = DIGITS.replace(declared_val, """      dummy:
        dataset_id: 'dummy'
        params: {split: 'val', image_size: 8, val_fraction: 0.5}
        random_split:
          lengths: [0.7, 0.3]
          generator_seed: 42
          sub_splits:
            - {dataset_id: 'digits/sub_train', transform_params: [{type: 'ToTensor'}]}
            - dataset_id: &val 'digits/val'
              transform_params: [{type: 'ToTensor'}, {type: 'Normalize', params: {mean: [0.5], std: [0.25]}}]""")
    experiment = build_experiment(load_config(write_yaml(text)))
    val = experiment.val_loader.dataset
    total = 898  # the digits' val half (1797 images, val_fraction 0.5)
    sizes = [int(0.7 / 1.0 * total), total - int(0.7 / 1.0 * total)]  # torchdistill's rounding, by hand
    expected = random_split(range(total), sizes, generator=torch.Generator().manual_seed(42))[1]
    assert list(val.indices) == list(expected.indices) and len(val) == sizes[1]
    image, _ = val[0]
    plain = val.dataset.__class__(split="val", image_size=8, val_fraction=0.5, channels=3)[val.indices[0]][0]
    from torchvision.transforms.functional import to_tensor
    torch.testing.assert_close(image, (to_tensor(plain) - 0.5) / 0.25)
