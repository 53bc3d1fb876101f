"""``distillkit modules MODEL``: every module path of a model with its output shape, for forward_hook paths."""
from __future__ import annotations

from typing import Dict, Sequence

import torch

from ..models import build_model
from .check import format_table


def module_table(name: str, input_size: Sequence[int] = (3, 224, 224), params: Dict = None) -> str:
    model = build_model({"name": name, "params": dict(params or {})}, "modules")
    model.eval()
    shapes, handles = {}, []

    def describe(output):
        if isinstance(output, torch.Tensor):
            return str(tuple(output.shape))
        if isinstance(output, (tuple, list)):
            return "(" + ", ".join(describe(o) for o in output) + ")"
        return type(output).__name__

    def recorder(path):
        def record(module, inputs, output):  # returns None: the output is left untouched
            shapes.setdefault(path, describe(output))

        return record

    for path, module in model.named_modules():
        if path:
            handles.append(module.register_forward_hook(recorder(path)))
    with torch.no_grad():
        model(torch.zeros(1, *input_size))
    for handle in handles:
        handle.remove()
    rows = [(path, type(module).__name__, shapes.get(path, "(not called)"))
            for path, module in model.named_modules() if path]
    return format_table(rows, ("path", "type", "output shape")) + \
        f"\n\nInput (1, {', '.join(map(str, input_size))}). Hook paths: models as is; under a special module " \
        f"prefix 'model.' (e.g. model.{rows[-1][0] if rows else 'layer4'})."
