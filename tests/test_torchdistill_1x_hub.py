"""``repo_or_dir`` models of torchdistill 1.x configs (issue 22, item 5: its hnd/ghnd ImageNet configs load
sc2-benchmark's models by torch.hub): a dependency the repository's hubconf.py lacks is named as the reason, which
torchdistill's own ``get_model`` fails on too; ``source: 'local'`` in ``kwargs``, as torchdistill needs for a folder,
loads the same model."""
import os

import pytest
import torch

from distillkit.config import load_config
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment

from test_torchdistill_1x import CONFIG_1X

HUBCONF = ("dependencies = ['torch']\n{imports}\nfrom distillkit.models.cifar_resnet import CifarResNet\n\n\n"
           "def tiny_resnet(num_classes=10):\n    return CifarResNet(8, num_classes)\n")
STUDENT = "    key: 'cifar_resnet8'\n    kwargs: {num_classes: 10, width: 1}"


def _hub_repo(folder, imports="", dependencies=None):
    os.makedirs(folder)
    text = HUBCONF.format(imports=imports)
    if dependencies:
        text = text.replace("dependencies = ['torch']", f"dependencies = {dependencies!r}")
    with open(os.path.join(folder, "hubconf.py"), "w") as handle:
        handle.write(text)
    return os.path.abspath(folder)


def _config(write_yaml, folder, kwargs="{num_classes: 10}", key="tiny_resnet"):
    text = CONFIG_1X.replace(STUDENT, f"    repo_or_dir: '{folder}'\n    key: '{key}'\n    kwargs: {kwargs}")
    return load_config(write_yaml(text, name="hub.yaml"))


def _build_error(config):
    with pytest.raises(ConfigError) as info:
        build_experiment(config)
    return str(info.value)


def test_a_module_the_hubconf_imports_and_cannot_find_is_named_and_torchdistill_fails_on_it_too(write_yaml, in_tmp):
    folder = _hub_repo("hub_repo", imports="import distillkit_absent_dependency.layers")
    message = _build_error(_config(write_yaml, folder))
    assert "models.student_model.repo_or_dir" in message and "hub.yaml" in message
    assert "needs 'distillkit_absent_dependency'" in message and "pip install distillkit_absent_dependency" in message
    assert "torchdistill cannot run this config without it either" in message
    assert "Without network" not in message  # the folder is local: no network is involved
    registry = pytest.importorskip("torchdistill.models.registry")
    with pytest.raises(ModuleNotFoundError) as info:  # the claim, checked on torchdistill 1.1.5's own code
        registry.get_model("tiny_resnet", repo_or_dir=folder, source="local", num_classes=10)
    assert info.value.name == "distillkit_absent_dependency"


def test_a_missing_name_of_the_hubconf_dependencies_list_is_named(write_yaml, in_tmp):
    folder = _hub_repo("hub_repo", dependencies=["torch", "distillkit_absent_package"])
    message = _build_error(_config(write_yaml, folder))
    assert "needs 'distillkit_absent_package'" in message and "torchdistill cannot run" in message


def test_source_local_in_kwargs_as_torchdistill_needs_it_builds_torchdistills_model(write_yaml, in_tmp):
    folder = _hub_repo("hub_repo")
    experiment = build_experiment(_config(write_yaml, folder, "{num_classes: 10, source: 'local'}"))
    model = experiment.student.model
    registry = pytest.importorskip("torchdistill.models.registry")
    reference = registry.get_model("tiny_resnet", repo_or_dir=folder, source="local", num_classes=10)
    reference.load_state_dict(model.state_dict())  # the same architecture, parameter for parameter
    images = torch.rand(2, 3, 8, 8)
    model.eval(), reference.eval()
    torch.testing.assert_close(model(images), reference(images))


def test_an_unknown_entry_of_a_local_folder_is_named_without_the_advice_to_clone(write_yaml, in_tmp):
    folder = _hub_repo("hub_repo")
    message = _build_error(_config(write_yaml, folder, key="no_such_entry"))
    assert "no_such_entry" in message and "models.student_model.repo_or_dir" in message
    assert "Without network" not in message and "torchdistill cannot run" not in message
