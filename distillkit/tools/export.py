"""``distillkit export CONFIG --ckpt PATH --out FILE [--format F]``: the student alone, for its own class or for
serving (safetensors, ONNX, TorchScript, a timm folder); special modules, teacher, optimizer and EMA are dropped."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..config import get_path, load_config
from ..data.datasets import build_datasets
from ..errors import ConfigError, DistillkitError
from ..experiment import build_model_with_ckpt, located, student_block
from ..models.builder import build_model
from ..models.checkpoint import load_model_weights
from .export_formats import FORMATS, WRITERS

EXAMPLE_BATCH = 2  # the batch of the traced example (the ONNX batch axis stays dynamic)


def export_student(config_path: str, ckpt: str, out: str, overrides=(), fmt: str = "pt",
                   input_size: Optional[Sequence[int]] = None) -> str:
    """Load ``ckpt`` into the config's student model (eval mode) and write it to ``out`` in ``fmt``: ``pt``
    (``{'model': state_dict}``), ``safetensors``, ``onnx``, ``torchscript`` or ``timm`` (a folder). The traced input
    is ``input_size`` (C, H, W) or the shape of an image of the config's test (else val, else train) dataset."""
    if fmt not in FORMATS:
        raise DistillkitError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}.")
    config = load_config(config_path, overrides)
    key_path, block = student_block(config)
    block = dict(block, ckpt=None)
    model, _ = build_model_with_ckpt(block, key_path, "student")
    load_model_weights(model, ckpt, what="--ckpt checkpoint")
    model.eval()
    example = None
    if fmt != "pt":
        example = torch.randn((EXAMPLE_BATCH,) + tuple(input_size or data_input_size(config)),
                              generator=torch.Generator().manual_seed(0))
    detail = WRITERS[fmt](model, out, example=example, rebuild=lambda: build_model(block, key_path),
                          name=block["name"], key_path=key_path)
    return f"exported {type(model).__name__} ({block['name']}) weights from {ckpt} to {out} ({fmt}); {detail}"


def data_input_size(config) -> tuple:
    """(C, H, W) of the first image of the test loader's dataset (else the val, else the train loader's)."""
    loaders = ("test.test_data_loader", "train.val_data_loader", "train.train_data_loader")
    dataset_id = next((get_path(config, f"{path}.dataset_id", None) for path in loaders
                       if get_path(config, f"{path}.dataset_id", None) is not None), None)
    try:
        with located(config):
            datasets = build_datasets(config)
    except ConfigError as exc:
        raise DistillkitError(f"the input shape to trace comes from the config's data, which could not be read "
                              f"({exc}). Give it with --input-size C H W.") from exc
    dataset = datasets.get(dataset_id) if dataset_id is not None else next(iter(datasets.values()), None)
    sample = dataset[0] if dataset is not None and len(dataset) else None
    image = sample[0] if isinstance(sample, (tuple, list)) else sample
    if not (isinstance(image, torch.Tensor) and image.dim() == 3):
        raise DistillkitError(f"the input shape to trace comes from the config's data, but dataset {dataset_id!r} "
                              f"gives {type(image).__name__} rather than a (C, H, W) tensor. Give it with "
                              f"--input-size C H W.")
    return tuple(image.shape)
