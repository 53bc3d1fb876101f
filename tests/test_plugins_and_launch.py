"""A config's imports: list loads user plugins; train_local.sh and the example runner drive the same code."""
import json
import os
import subprocess

import pytest

from distillkit.config import load_config
from distillkit.errors import ConfigError
from distillkit.experiment import build_experiment
from tests.conftest import REPO, child_env
from tests.test_end_to_end import DIGITS

PLUGIN = '''
import torch
from distillkit import register_loss

@register_loss
class HalfCrossEntropy(torch.nn.Module):
    """Test plugin: 0.5 * CE."""
    def forward(self, student_output, teacher_output, targets):
        return 0.5 * torch.nn.functional.cross_entropy(student_output, targets)
'''


def test_imports_load_plugin_losses(in_tmp, write_yaml):
    (in_tmp / "my_plugin_for_test.py").write_text(PLUGIN)
    text = "imports: ['my_plugin_for_test']\n" + DIGITS.replace("type: 'CrossEntropyLoss'", "type: 'HalfCrossEntropy'")
    experiment = build_experiment(load_config(write_yaml(text)), for_training=False)
    assert type(experiment.criterion.org_criterion).__name__ == "HalfCrossEntropy"


def test_missing_plugin_module_is_located(in_tmp, write_yaml):
    path = write_yaml("imports: ['no_such_plugin_module']\n" + DIGITS)
    with pytest.raises(ConfigError) as info:
        build_experiment(load_config(path), for_training=False)
    assert "imports.0" in str(info.value) and "line 1" in str(info.value)


def test_train_local_sh_runs_a_config_through_torchrun(in_tmp, write_yaml):
    write_yaml(DIGITS.replace("num_epochs: 2", "num_epochs: 1"), "config.yaml")
    env = child_env(NUM_GPUS="1")
    # CONFIG and --run-dir are relative to the caller's directory, wherever the script lives.
    result = subprocess.run([os.path.join(REPO, "train_local.sh"), "config.yaml", "--run-dir", "run",
                             "--device", "cpu", "--set", "train.log_freq=1000"], cwd=in_tmp, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.load(open(in_tmp / "run" / "results.json"))
    assert results["student"]["count"] == round(1797 * 0.5) and 0 <= results["student"]["top1"] <= 100
