"""torchdistill 1.x configs (issue 17): each construct in the 1.x form, on generated data, mapped onto the same
Experiment as the 0.x form; errors name the keys as the 1.x file writes them."""
import os
import textwrap

import pytest
import torch
import torch.nn.functional as F

from distillkit.cli import main
from distillkit.config import load_config
from distillkit.engine.trainer import Trainer
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from distillkit.utils import seed_everything

DATASETS = """
datasets:
  &train digits/train: !import_call
    _name: &dataset_name 'digits'
    key: 'distillkit.data.digits.Digits'
    init:
      kwargs:
        split: 'train'
        image_size: 8
        val_fraction: 0.5
        transform: &to_tensor !import_call
          key: 'torchvision.transforms.Compose'
          init:
            kwargs:
              transforms:
                - !import_call {key: 'torchvision.transforms.ToTensor', init: }
  &val digits/val: !import_call
    key: 'distillkit.data.digits.Digits'
    init: {kwargs: {split: 'val', image_size: 8, val_fraction: 0.5, transform: *to_tensor}}
"""

MODELS = """
models:
  teacher_model:
    key: &teacher_key 'cifar_resnet8'
    _weights: &unused !import_get {key: 'torchvision.models.resnet.ResNet18_Weights'}
    kwargs: {num_classes: 10}
    src_ckpt: 'teacher.pt'
  student_model:
    key: 'cifar_resnet8'
    kwargs: {num_classes: 10, width: 1}
    _experiment: &student_experiment 'digits-kd'
    src_ckpt:
    dst_ckpt: !join ['ckpt/', *student_experiment, '.pt']
"""

LOADERS = """
  train_data_loader:
    dataset_id: *train
    sampler: {class_or_func: !import_get {key: 'torch.utils.data.RandomSampler'}, kwargs: }
    kwargs: {batch_size: 64, num_workers: 0, pin_memory: False, drop_last: False}
    cache_output:
  val_data_loader:
    dataset_id: *val
    sampler: &val_sampler {class_or_func: !import_get {key: 'torch.utils.data.SequentialSampler'}, kwargs: }
    kwargs: {batch_size: 200, num_workers: 0}
"""

TRAIN = """
train:
  log_freq: 5
  num_epochs: 2
""" + LOADERS + """
  teacher: {forward_proc: 'forward_batch_only', sequential: [], wrapper: 'DataParallel', requires_grad: False}
  student: {forward_proc: 'forward_batch_only', adaptations: , sequential: [], wrapper: 'DistributedDataParallel',
            requires_grad: True, frozen_modules: []}
  optimizer: {key: 'SGD', kwargs: {lr: 0.05, momentum: 0.9, weight_decay: 0.0005}}
  scheduler: {key: 'MultiStepLR', kwargs: {milestones: [1], gamma: 0.1}}
  criterion:
    key: 'WeightedSumLoss'
    kwargs:
      sub_terms:
        ce:
          criterion: {key: 'CrossEntropyLoss', kwargs: {reduction: 'mean'}}
          criterion_wrapper:
            key: 'SimpleLossWrapper'
            kwargs:
              input: {is_from_teacher: False, module_path: '.', io: 'output'}
              target: {uses_label: True}
          weight: 0.5
        kd:
          criterion:
            key: 'KDLoss'
            kwargs: {student_module_path: '.', student_module_io: 'output', teacher_module_path: '.',
                     teacher_module_io: 'output', temperature: 4.0, alpha: 0.0, reduction: 'batchmean'}
          weight: 0.5
test:
  test_data_loader:
    dataset_id: *val
    sampler: *val_sampler
    kwargs: {batch_size: 100, num_workers: 0}
"""

CONFIG_1X = DATASETS + MODELS + TRAIN

CONFIG_0X = """
datasets:
  digits:
    name: &name 'digits'
    type: 'Digits'
    splits:
      train:
        dataset_id: &train 'digits/train'
        params: {split: 'train', image_size: 8, val_fraction: 0.5, transform_params: [{type: 'ToTensor'}]}
      val:
        dataset_id: &val 'digits/val'
        params: {split: 'val', image_size: 8, val_fraction: 0.5, transform_params: [{type: 'ToTensor'}]}
models:
  teacher_model: {name: 'cifar_resnet8', params: {num_classes: 10}, ckpt: 'teacher.pt'}
  student_model: {name: 'cifar_resnet8', params: {num_classes: 10, width: 1}, ckpt: 'ckpt/digits-kd.pt'}
train:
  log_freq: 5
  num_epochs: 2
  train_data_loader: {dataset_id: *train, random_sample: True, batch_size: 64, num_workers: 0}
  val_data_loader: {dataset_id: *val, random_sample: False, batch_size: 200, num_workers: 0}
  optimizer: {type: 'SGD', params: {lr: 0.05, momentum: 0.9, weight_decay: 0.0005}}
  scheduler: {type: 'MultiStepLR', params: {milestones: [1], gamma: 0.1}}
  criterion:
    type: 'GeneralizedCustomLoss'
    org_term: {criterion: {type: 'KDLoss', params: {temperature: 4.0, alpha: 0.0}}, factor: 0.5}
    sub_terms:
      ce:
        criterion: {type: 'CrossEntropyLoss', params: {reduction: 'mean'}}
        params: {input: {is_from_teacher: False, module_path: '.', io: 'output'}, target: {uses_label: True}}
        factor: 0.5
test:
  test_data_loader: {dataset_id: *val, random_sample: False, batch_size: 100, num_workers: 0}
"""


def _first_batch_loss(config):
    seed_everything(0)
    experiment = build_experiment(config)
    images, targets, supp = next(iter(experiment.train_loader))
    trainer = Trainer(experiment)
    trainer.train_mode()
    loss, terms, _, _ = trainer.forward(images, targets, supp)
    return experiment, images, targets, loss


def test_a_1x_config_is_recognised_and_builds_the_experiment_of_its_0x_twin(write_yaml, in_tmp):
    config = load_config(write_yaml(CONFIG_1X, name="kd_1x.yaml"))
    assert config.generation == "1.x"
    twin = load_config(write_yaml(CONFIG_0X, name="kd_0x.yaml"))
    assert twin.generation == "0.x"
    exp1, images1, targets1, loss1 = _first_batch_loss(config)
    exp0, images0, targets0, loss0 = _first_batch_loss(twin)
    assert torch.equal(images1, images0) and torch.equal(targets1, targets0)  # same data, same sample order
    assert type(exp1.optimizer) is type(exp0.optimizer) and exp1.optimizer.defaults == exp0.optimizer.defaults
    assert exp1.scheduler.milestones == exp0.scheduler.milestones
    assert exp1.val_loader.batch_size == 200 and exp1.student_ckpt == "ckpt/digits-kd.pt"
    # the loss by hand: 0.5 * CE + 0.5 * T^2 KL(teacher || student) at T = 4, on the models the experiment built
    with torch.no_grad():
        exp1.teacher.model.eval()  # a frozen teacher runs in eval mode
        student, teacher = exp1.student.model(images1), exp1.teacher.model(images1)
    by_hand = 0.5 * F.cross_entropy(student, targets1) + 0.5 * 16 * F.kl_div(
        F.log_softmax(student / 4, 1), F.softmax(teacher / 4, 1), reduction="batchmean")
    torch.testing.assert_close(loss1.detach(), by_hand, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss1, loss0)


def test_a_1x_config_trains_and_saves_the_best_student_to_dst_ckpt(write_yaml, in_tmp, capsys):
    path = write_yaml(CONFIG_1X.replace("num_epochs: 2", "num_epochs: 1"), name="kd_1x.yaml")
    assert main(["train", path, "--run-dir", "run", "--device", "cpu"]) == 0
    assert os.path.isfile("ckpt/digits-kd.pt") and os.path.isfile("run/config.yaml")
    recorded = open("run/config.yaml").read()
    assert "!import_call" in recorded and "key: cifar_resnet8" in recorded  # recorded as the file wrote it
    assert main(["train", path, "--run-dir", "run", "--resume", "--device", "cpu",
                 "--set", "train.num_epochs=2", "--allow-config-change"]) == 0
    assert main(["eval", path, "--device", "cpu"]) == 0
    assert "digits-kd.pt" in capsys.readouterr().out + open("run/train.log").read()


def _error(write_yaml, text, *overrides):
    with pytest.raises(ConfigError) as info:
        build_experiment(load_config(write_yaml(text, name="bad.yaml"), overrides))
    return str(info.value)


def test_errors_name_the_key_as_the_1x_file_writes_it(write_yaml, in_tmp):
    message = _error(write_yaml, CONFIG_1X.replace("lr: 0.05", "lr: -1"))
    assert "key 'train.optimizer.kwargs.lr'" in message and "bad.yaml" in message
    line = CONFIG_1X.replace("lr: 0.05", "lr: -1").splitlines().index(
        "  optimizer: {key: 'SGD', kwargs: {lr: -1, momentum: 0.9, weight_decay: 0.0005}}") + 1
    assert f"line {line}" in message
    message = _error(write_yaml, CONFIG_1X.replace("temperature: 4.0", "temprature: 4.0"))
    assert "train.criterion.kwargs.sub_terms.kd.criterion.kwargs" in message and "temperature" in message
    message = _error(write_yaml, CONFIG_1X.replace("key: 'MultiStepLR'", "key: 'MultiStepLr'"))
    assert "key 'train.scheduler.key'" in message and "MultiStepLR" in message
    message = _error(write_yaml, CONFIG_1X.replace("batch_size: 64", "batch_size: 0"))
    assert "key 'train.train_data_loader.kwargs.batch_size'" in message
    message = _error(write_yaml, CONFIG_1X.replace("weight: 0.5\n        kd", "weight: 'half'\n        kd"))
    assert "key 'train.criterion.kwargs.sub_terms.ce.weight'" in message
    message = _error(write_yaml, CONFIG_1X.replace("  optimizer: {key: 'SGD', kwargs:", "  optimizer: {kwargs:"))
    assert "key 'train.optimizer.key'" in message and "the required key 'key' is missing" in message


def test_set_takes_the_1x_key_paths(write_yaml, in_tmp):
    path = write_yaml(CONFIG_1X)
    config = load_config(path, ["train.optimizer.kwargs.lr=0.2",
                                "datasets.digits/val.init.kwargs.val_fraction=0.25"])
    experiment = build_experiment(config)
    assert experiment.optimizer.defaults["lr"] == 0.2
    assert len(experiment.val_loader.dataset) == round(1797 * 0.25)


def test_a_0x_path_set_on_a_1x_loader_is_not_silently_overridden(write_yaml, in_tmp):
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml(CONFIG_1X), ["train.train_data_loader.batch_size=8"])
    assert "train.train_data_loader.kwargs.batch_size" in str(info.value)


def test_scratch_keys_are_not_read_and_strict_accepts_them(write_yaml, in_tmp):
    assert main(["check", write_yaml(CONFIG_1X), "--device", "cpu", "--strict"]) == 0


def test_samplers_other_than_random_and_sequential_are_named_as_not_supported(write_yaml, in_tmp):
    text = CONFIG_1X.replace("'torch.utils.data.RandomSampler'", "'torch.utils.data.WeightedRandomSampler'")
    message = _error(write_yaml, text)
    assert "train.train_data_loader.sampler.class_or_func" in message and "not supported" in message
    text = CONFIG_1X.replace("    cache_output:\n", "    cache_output:\n    batch_sampler: {class_or_func: }\n")
    assert "train.train_data_loader.batch_sampler" in _error(write_yaml, text)
    sequential = CONFIG_1X.replace("'torch.utils.data.RandomSampler'", "'torch.utils.data.SequentialSampler'")
    experiment = build_experiment(load_config(write_yaml(sequential)))
    assert list(experiment.train_loader.sampler)[:5] == [0, 1, 2, 3, 4]


def test_multi_stage_auxiliary_model_wrapper_and_dependencies(write_yaml, in_tmp):
    with open("my_terms.py", "w") as handle:
        handle.write(textwrap.dedent("""
            import torch
            from distillkit import register_loss

            @register_loss(term="sub")
            class OutputMean(torch.nn.Module):
                def __init__(self, module_path):
                    super().__init__()
                    self.module_path = module_path

                def forward(self, student_io, teacher_io, targets):
                    return student_io[self.module_path]["output"].float().mean()
            """))
    stage = """
    optimizer: {{key: 'SGD', kwargs: {{lr: 0.01}}}}
    {teacher}
    criterion:
      key: 'WeightedSumLoss'
      kwargs:
        sub_terms:
          {name}:
            criterion: {{key: '{loss}', kwargs: {kwargs}}}
            weight: 1.0
"""
    text = DATASETS + MODELS + "dependencies: [{name: 'my_terms'}]\ntrain:\n  log_freq: 5\n  stage1:\n" \
        "    num_epochs: 1\n" + textwrap.indent(LOADERS, "  ") + \
        stage.format(name="mean", loss="OutputMean", kwargs="{module_path: '.'}",
                     teacher="teacher: {auxiliary_model_wrapper: {key: 'EmptyModule', kwargs: {}}}") + \
        "  stage2:\n    num_epochs: 1\n" + stage.format(
            name="kd", loss="KDLoss", teacher="teacher: {requires_grad: False}",
            kwargs="{temperature: 2.0, alpha: 0.5, student_module_path: '.', teacher_module_path: '.'}")
    config = load_config(write_yaml(text, name="stages.yaml"))
    assert config["imports"] == ["my_terms"]
    first = build_experiment(config, stage=0)
    assert first.num_stages == 2 and type(first.teacher.root).__name__ == "EmptyModule"
    assert list(first.criterion.sub_criteria) == ["mean"]
    first.close()
    second = build_experiment(config, stage=1)
    assert list(second.criterion.sub_criteria) == ["kd"] and second.epoch_offset == 1
    assert main(["check", os.path.abspath("stages.yaml"), "--device", "cpu"]) == 0


def test_dict_loss_wrapper_weights_each_entry_of_a_dict_output():
    from distillkit.losses.build import build_criterion

    criterion = build_criterion({"type": "GeneralizedCustomLoss", "sub_terms": {"ce": {
        "criterion": {"type": "CrossEntropyLoss", "params": {}}, "factor": 2.0,
        "params": {"input": {"is_from_teacher": False, "module_path": ".", "io": "output"},
                   "target": {"uses_label": True}, "weights": {"out": 1.0, "aux": 0.5}}}}})
    torch.manual_seed(0)
    out, aux, y = torch.randn(4, 3), torch.randn(4, 3), torch.randint(0, 3, (4,))
    total, _ = criterion({"out": out, "aux": aux}, None, {}, {}, y)
    torch.testing.assert_close(total, 2.0 * (F.cross_entropy(out, y) + 0.5 * F.cross_entropy(aux, y)))


@pytest.mark.parametrize("source", [CONFIG_1X, CONFIG_0X], ids=["1x_to_0x", "0x_to_1x"])
def test_convert_writes_the_other_form_and_it_builds_the_same_experiment(source, write_yaml, in_tmp, capsys):
    path = write_yaml(source, name="source.yaml")
    assert main(["convert", path]) == 0
    converted = capsys.readouterr().out
    assert ("key: WeightedSumLoss" in converted) == (source is CONFIG_0X)
    assert ("type: GeneralizedCustomLoss" in converted) == (source is CONFIG_1X)
    with open("converted.yaml", "w") as handle:
        handle.write(converted)
    original, again = load_config(path), load_config("converted.yaml")
    assert {original.generation, again.generation} == {"0.x", "1.x"}
    exp_a, images_a, targets_a, loss_a = _first_batch_loss(original)
    exp_b, images_b, targets_b, loss_b = _first_batch_loss(again)
    assert torch.equal(images_a, images_b) and torch.equal(targets_a, targets_b)
    torch.testing.assert_close(loss_a, loss_b)
    assert exp_a.optimizer.defaults == exp_b.optimizer.defaults and exp_a.student_ckpt == exp_b.student_ckpt
    terms = [sorted(type(m).__name__ for m in e.criterion.modules() if "Loss" in type(m).__name__ and
                    "Generalized" not in type(m).__name__) for e in (exp_a, exp_b)]
    assert terms[0] == terms[1] == ["CrossEntropyLoss", "CrossEntropyLoss", "KDLoss"]
    assert main(["convert", "converted.yaml"]) == 0  # and back again
    assert load_config(write_yaml(capsys.readouterr().out, name="back.yaml")).generation == original.generation


def test_repo_or_dir_loads_a_local_hubconf_and_an_unreachable_repository_is_named(write_yaml, in_tmp, monkeypatch):
    os.makedirs("hub_repo")
    with open("hub_repo/hubconf.py", "w") as handle:
        handle.write("dependencies = ['torch']\n\nfrom distillkit.models.cifar_resnet import CifarResNet\n\n\n"
                     "def tiny_resnet(num_classes=10):\n    return CifarResNet(8, num_classes)\n")
    local = CONFIG_1X.replace("    key: 'cifar_resnet8'\n    kwargs: {num_classes: 10, width: 1}",
                              "    repo_or_dir: 'hub_repo'\n    key: 'tiny_resnet'\n    kwargs: {num_classes: 10}")
    experiment = build_experiment(load_config(write_yaml(local)))
    assert type(experiment.student.model).__name__ == "CifarResNet"

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "load", offline)
    message = _error(write_yaml, local.replace("'hub_repo'", "'someone/some-repo'"))
    assert "models.student_model.repo_or_dir" in message and "no network" in message


def test_find_unused_parameters_given_to_the_wrapper_is_the_side_setting(write_yaml, in_tmp):
    text = CONFIG_1X.replace("requires_grad: True, frozen_modules: []}", "requires_grad: True, frozen_modules: [],\n"
                             "            auxiliary_model_wrapper: {key: 'EmptyModule', "
                             "kwargs: {find_unused_parameters: True}}}")
    config = load_config(write_yaml(text))
    assert config["train"]["student"]["find_unused_parameters"] is True
    assert "find_unused_parameters" not in config["train"]["student"]["auxiliary_model_wrapper"]["params"]


def test_split_dataset_of_1x_configs_matches_torchdistills_and_works_without_it(monkeypatch):
    from distillkit.config import tags
    from distillkit.data.digits import Digits
    from distillkit.data.splits import random_split_dataset

    dataset = Digits(split="val", image_size=8, val_fraction=0.5)
    ours = random_split_dataset(dataset, [0.9, 0.1], 42, [{"transform": None}, {"transform": "marker"}])
    util = pytest.importorskip("torchdistill.datasets.util")
    theirs = util.split_dataset(dataset, [0.9, 0.1], 42, [{"transform": None}, {"transform": "marker"}])
    assert [list(s.indices) for s in ours] == [list(s.indices) for s in theirs]
    assert ours[1].dataset.transform == "marker" and ours[0].dataset.transform is None

    real = tags.import_get

    def without_torchdistill(key, package=None):
        if key.startswith("torchdistill"):
            raise ModuleNotFoundError("No module named 'torchdistill'")
        return real(key, package)

    monkeypatch.setattr(tags, "import_get", without_torchdistill)
    assert tags._imported("torchdistill.datasets.util.split_dataset", None, "!import_call") is random_split_dataset


def test_datasets_declared_by_key_with_transform_configs(write_yaml, in_tmp):
    declared = """
datasets:
  digits:
    key: 'Digits'
    splits:
      train:
        dataset_id: &train 'digits/train'
        kwargs: {split: 'train', image_size: 8, val_fraction: 0.5, transform_configs: [{key: 'ToTensor', kwargs: }]}
      val:
        dataset_id: &val 'digits/val'
        kwargs: {split: 'val', image_size: 8, val_fraction: 0.5, transform_configs: [{key: 'ToTensor'}]}
"""
    text = declared + MODELS + TRAIN
    config = load_config(write_yaml(text))
    exp, images, targets, loss = _first_batch_loss(config)
    _, images0, targets0, loss0 = _first_batch_loss(load_config(write_yaml(CONFIG_0X, name="zero.yaml")))
    assert torch.equal(images, images0) and torch.equal(loss, loss0)
    message = _error(write_yaml, text.replace("[{key: 'ToTensor'}]", "[{key: 'ToTensr'}]"))
    assert "datasets.digits.splits.val.kwargs.transform_configs.0.key" in message and "ToTensor" in message


@pytest.mark.parametrize("name", ["module_wise_configs", "module_wise_kwargs"])  # torchdistill 1.x reads the first
def test_module_wise_kwargs_are_the_0x_module_wise_params(write_yaml, in_tmp, name):
    text = CONFIG_1X.replace("optimizer: {key: 'SGD', kwargs: {lr: 0.05, momentum: 0.9, weight_decay: 0.0005}}",
                             f"optimizer: {{key: 'SGD', kwargs: {{lr: 0.05}}, {name}: [{{module: 'fc', "
                             "kwargs: {lr: 0.5}}, {module: 'layer1x', kwargs: {}}]}")
    message = _error(write_yaml, text)
    assert f"key 'train.optimizer.{name}.1.module'" in message
    experiment = build_experiment(load_config(write_yaml(text.replace("'layer1x'", "'layer1'"))))
    assert [g["lr"] for g in experiment.optimizer.param_groups] == [0.5, 0.05]
