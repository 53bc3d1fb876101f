"""The file formats of ``distillkit export --format``: each writes the student (in eval mode) and reloads what it
wrote through the format's own reader to compare outputs on a fresh batch (a check, not a trust)."""
from __future__ import annotations

import contextlib
import copy
import importlib
import logging
import os
import shutil
import tempfile
import warnings
from typing import Callable, Dict

import torch
from torch import nn

from ..errors import DistillkitError
from ..models.checkpoint import save_atomic

logger = logging.getLogger(__name__)

FORMATS = ("pt", "safetensors", "onnx", "torchscript", "timm")
TOLERANCE = 1e-4  # max |difference| of logits between the student and its reloaded export


def require(module: str, fmt: str):
    """Import an optional library of a format, or one paragraph naming the package and the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        raise DistillkitError(f"--format {fmt} needs the package {package!r}, which is not installed. Install the "
                              f"export extra: pip install 'distillkit[export]' (onnx, onnxscript, onnxruntime, "
                              f"safetensors), or pip install {package}.") from exc


@contextlib.contextmanager
def atomic_path(path: str, directory: bool = False):
    """A temporary path beside ``path`` that replaces it once the block succeeds (nothing half-written is left)."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    target = tmp if directory else os.path.join(tmp, os.path.basename(path))
    try:
        yield target
        if directory:
            os.makedirs(path, exist_ok=True)
            for name in os.listdir(tmp):
                os.replace(os.path.join(tmp, name), os.path.join(path, name))
        else:
            os.replace(target, path)
    except OSError as exc:
        raise DistillkitError(f"could not write {path!r}: {exc}.") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compare(reference: nn.Module, run: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor,
            what: str, out: str) -> str:
    """Run the student and its reloaded export on a batch of another size; refuse a difference over TOLERANCE."""
    batch = torch.randn((example.shape[0] + 1,) + tuple(example.shape[1:]), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(batch)
        found = torch.as_tensor(run(batch))
    if found.shape != expected.shape:
        raise DistillkitError(f"{out}: the {what} gives outputs of shape {tuple(found.shape)} on a batch of "
                              f"{batch.shape[0]}, the student {tuple(expected.shape)}; the file is kept for a look.")
    diff = (found.float() - expected.float()).abs().max().item()
    if diff > TOLERANCE:
        raise DistillkitError(f"{out}: the {what} differs from the student by up to {diff:.3g} (tolerance "
                              f"{TOLERANCE:g}) on a batch of {batch.shape[0]}; the file is kept for a look.")
    return f"checked: the {what} matches the student (max |difference| {diff:.2g} on a batch of {batch.shape[0]})"


def write_pt(model: nn.Module, out: str, **_) -> str:
    save_atomic({"model": model.state_dict()}, out)
    return f"load them with model.load_state_dict(torch.load({out!r}, weights_only=True)['model'])."


def plain_tensors(model: nn.Module) -> Dict[str, torch.Tensor]:
    """The state_dict as contiguous CPU tensors that share no memory (safetensors refuses shared storage)."""
    return {key: value.detach().cpu().contiguous().clone() for key, value in model.state_dict().items()}


def write_safetensors(model: nn.Module, out: str, example: torch.Tensor, rebuild: Callable[[], nn.Module],
                      **_) -> str:
    safetensors_torch = require("safetensors.torch", "safetensors")
    with atomic_path(out) as tmp:
        safetensors_torch.save_file(plain_tensors(model), tmp, metadata={"format": "pt"})
    from timm.models import load_checkpoint

    fresh = rebuild()
    load_checkpoint(fresh, out)
    check = compare(model, fresh.eval(), example, "reloaded safetensors file (timm.models.load_checkpoint)", out)
    return f"{check}; load it with timm.models.load_checkpoint(model, {out!r}) or " \
           f"model.load_state_dict(safetensors.torch.load_file({out!r}))."


def write_onnx(model: nn.Module, out: str, example: torch.Tensor, opset: int = 18, **_) -> str:
    require("onnx", "onnx")
    require("onnxscript", "onnx")
    batch = torch.export.Dim("batch")
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals, not the user's concern
        try:
            program = torch.onnx.export(model, (example,), tmp, input_names=["images"], output_names=["logits"],
                                        dynamic_shapes=({0: batch},), opset_version=opset, dynamo=True,
                                        verbose=False, external_data=False)
        except Exception as exc:  # the exporter's many error types: one paragraph with its message
            raise DistillkitError(f"torch.onnx.export could not export the student ({type(model).__name__}): "
                                  f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Try "
                                  f"--format torchscript, or --opset.") from exc
        if program is not None and not os.path.isfile(tmp):  # pragma: no cover - older torch returns the program
            program.save(tmp)
    try:
        ort = importlib.import_module("onnxruntime")
    except ImportError:
        return "not checked (onnxruntime is not installed: pip install 'distillkit[export]'); input 'images' " \
               "(batch axis dynamic), output 'logits'."
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    check = compare(model, lambda x: session.run(None, {"images": x.numpy()})[0], example,
                    "ONNX file run by onnxruntime", out)
    return f"{check}; input 'images' (batch axis dynamic), output 'logits'."


def write_torchscript(model: nn.Module, out: str, example: torch.Tensor, **_) -> str:
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on Python values turned into constants
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced, tmp)
        reloaded = torch.jit.load(tmp)
    check = compare(model, reloaded, example, "reloaded TorchScript module (torch.jit.load)", out)
    return f"{check}; load it with torch.jit.load({out!r})."


def is_timm_model(model: nn.Module) -> bool:
    return type(model).__module__.startswith("timm.") and isinstance(getattr(model, "pretrained_cfg", None), dict)


def write_timm(model: nn.Module, out: str, example: torch.Tensor, name: str, key_path: str, **_) -> str:
    if not is_timm_model(model):
        raise DistillkitError(f"--format timm writes timm's own folder (config.json + model.safetensors), which timm "
                              f"rebuilds only for its own architectures; the student ({key_path}.name: {name!r}) is "
                              f"{type(model).__module__}.{type(model).__name__}, not a timm model. Use --format "
                              f"safetensors, onnx or torchscript (a timm student is named 'timm:<name>').")
    require("safetensors.torch", "timm")
    import timm
    from timm.models import save_for_hf

    with atomic_path(out, directory=True) as tmp:
        save_for_hf(model, tmp, safe_serialization=True)
    reloaded = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    note, reference = "", model
    if "forward_head" in vars(model):  # a distilled ViT with eval_output 'class'/'distill' (configure_timm_distilled)
        reference = copy.deepcopy(model)
        del reference.forward_head
        note = " (timm evaluates a distilled ViT to the mean of its two heads: the config's eval_output is not kept)"
    check = compare(reference, reloaded, example, "model timm rebuilds from the folder", out)
    return f"{check}; load it with timm.create_model('local-dir:{out}', pretrained=True){note}."


WRITERS = {"pt": write_pt, "safetensors": write_safetensors, "onnx": write_onnx, "torchscript": write_torchscript,
           "timm": write_timm}
