"""Every shipped digits config builds and takes one training step (``distillkit check``), on the bundled data."""
import glob
import os

import pytest

from distillkit.tools.check import check_config
from tests.conftest import REPO

DIGITS_CONFIGS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "configs", "digits", "*.yaml"))
                        if os.path.basename(p) != "data.yaml")


def test_every_method_has_a_digits_config():
    assert len(DIGITS_CONFIGS) >= 15


@pytest.mark.parametrize("config", DIGITS_CONFIGS)
def test_digits_config_passes_check(config, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # relative ckpt paths: no teacher file here, so the teacher keeps its initial weights
    report = check_config(os.path.join(REPO, config), ["train.train_data_loader.batch_size=8"], "cpu")
    assert report.endswith("check passed.") and "total" in report
