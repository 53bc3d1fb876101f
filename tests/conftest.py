import os
import subprocess
import sys
import textwrap

import pytest
import torch

torch.set_num_threads(2)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def child_env(**extra) -> dict:
    """The environment of a child process: this checkout importable, CPU only, one thread per process."""
    return dict(os.environ, PYTHONPATH=REPO, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", **extra)


def run_cli(*args, cwd, timeout=300):
    """``python -m distillkit.cli ARGS`` to completion, output captured."""
    return subprocess.run([sys.executable, "-m", "distillkit.cli", *args], cwd=cwd, env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(*args, cwd):
    """``python -m distillkit.cli ARGS`` started in the background (``subprocess.Popen``)."""
    return subprocess.Popen([sys.executable, "-m", "distillkit.cli", *args], cwd=cwd, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def write_yaml(tmp_path):
    """write_yaml(text, name='config.yaml') -> path of a dedented YAML file in tmp_path."""

    def write(text, name="config.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return str(path)

    return write


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_image_folder(root, classes=("a", "b", "c"), per_class=4, size=12, seed=0):
    """A tiny ImageFolder tree of random PNGs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for name in classes:
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(root, name, f"{i}.png"))
    return str(root)
