"""ModelSide: a model, its optional special module and its hooks -> (output, io_dict).

Built from a ``train.teacher`` / ``train.student`` block (torchdistill 0.x keys):
``sequential`` (keep only these submodules, in order), ``special`` (wrap in a
special module), ``forward_hook.{input, output}`` (paths to capture),
``requires_grad`` (False freezes everything) and ``frozen_modules`` (paths
frozen and kept in eval mode).  A side with no trainable parameter runs with
no autograd graph and always in eval mode.
"""
from __future__ import annotations

import logging
from typing import Optional, Union

import torch
from torch import nn
from torch.utils._pytree import tree_map

from .config.schema import SideSettings
from .errors import ConfigError, nearest_names
from .hooks import HookCapture, find_module, named_sequential
from .registry import ADAPTATIONS, SPECIAL_MODULES
from .utils import call_with_params

logger = logging.getLogger(__name__)


# torchdistill's forward_proc values that mean what distillkit always does: the model gets the images
# (forward_batch_only, 0.x forward_batch); a loss term that needs the dataset wrapper's extras gets them as supp_dict
# (forward_batch_supp_dict, CRD); SSWrapper4SSKD flattens the (B, 4, C, H, W) views itself (forward_batch4sskd).
# forward_batch_target calls model(images, targets): torchvision's detectors return their loss dict in training.
FORWARD_PROCS = (None, "forward_batch_only", "forward_batch", "forward_batch_supp_dict", "forward_batch4sskd",
                 "forward_batch_target")


def _sequential(model: nn.Module, settings: SideSettings, key_path: str) -> nn.Module:
    """``sequential: [paths]``: only these submodules, in order, each under its own dotted name (torchdistill's);
    ``+name`` inserts the module ``adaptations.name`` (``{type, params}``: the adaptation registry, then
    ``torch.nn``)."""
    adaptations = {}
    for name, block in (settings.adaptations or {}).items():
        where = f"{key_path}.adaptations.{name}"
        if not isinstance(block, dict) or not block.get("type"):
            raise ConfigError("an adaptation needs {type, params}.", key_path=where)
        cls = ADAPTATIONS.resolve(block["type"], key_path=f"{where}.type", fallbacks=(("torch.nn", nn),))
        adaptations[name] = call_with_params(cls, block.get("params"), f"{where}.params")
    unused = sorted(set(adaptations) - {p[1:] for p in settings.sequential if str(p).startswith("+")})
    if unused:
        logger.warning("%s.adaptations %s are not used: sequential lists no %s.", key_path, ", ".join(unused),
                       ", ".join("+" + n for n in unused))
    return named_sequential(model, settings.sequential, key_path, adaptations) if settings.sequential else model


def _special(model: nn.Module, block: Optional[dict], is_teacher: bool, key_path: str) -> Optional[nn.Module]:
    """The special module of ``block`` around ``model``; ``key_path`` ends with the key the file uses."""
    if not block or not block.get("type"):
        return None
    cls = SPECIAL_MODULES.resolve(block["type"], key_path=f"{key_path}.type")
    return call_with_params(cls, block.get("params"), f"{key_path}.params", model, is_teacher,
                            aliases=SPECIAL_MODULES.meta(block["type"]).get("aliases"))


class ModelSide(nn.Module):
    """One side of distillation (teacher or student)."""

    def __init__(self, model: nn.Module, settings: Union[SideSettings, dict, None] = None, is_teacher: bool = False,
                 key_path: str = "train.student", default_forward_proc: Optional[str] = None):
        """``default_forward_proc``: the task's (detection: ``forward_batch_target``), used when the side names
        none and runs the model itself (no special module, no ``sequential``)."""
        super().__init__()
        if not isinstance(settings, SideSettings):
            settings = SideSettings.parse(settings, key_path)
        key_path = settings.key_path
        if settings.forward_proc not in FORWARD_PROCS:
            raise ConfigError(f"forward_proc {settings.forward_proc!r} is not supported; "
                              f"supported: {', '.join(repr(p) for p in FORWARD_PROCS if p)}.",
                              key_path=f"{key_path}.forward_proc",
                              candidates=nearest_names(settings.forward_proc, [p for p in FORWARD_PROCS if p]))
        requires_grad = not is_teacher if settings.requires_grad is None else settings.requires_grad
        self.__dict__["_model"] = model  # the whole model, unregistered: the side's parameters are root's alone
        model = _sequential(model, settings, key_path)
        if requires_grad:  # a side states its own freezing: what an earlier stage froze on this model trains again
            model.requires_grad_(True)
        special = _special(model, settings.special, is_teacher, f"{key_path}.{settings.special_key}")
        self.has_special = special is not None
        self.forward_proc = settings.forward_proc or (
            default_forward_proc if special is None and not settings.sequential else None)
        self.root = special if special is not None else model
        self.is_teacher = is_teacher
        root = self.root
        if not requires_grad:
            root.requires_grad_(False)
        self.frozen_paths = list(settings.frozen_modules)
        for index, path in enumerate(self.frozen_paths):
            find_module(root, path, f"{key_path}.frozen_modules.{index}").requires_grad_(False)
        hooks = settings.forward_hook
        paths = {io: list(hooks.get(io) or []) for io in ("input", "output")}
        for path, io in (special.required_io() if hasattr(special, "required_io") else []):
            if path not in paths[io]:
                paths[io].append(path)
        self.capture = HookCapture(root, paths["input"], paths["output"], f"{key_path}.forward_hook")
        self.inference_mode = False  # train.teacher_inference_mode, set by SpeedSettings
        self.train()

    @property
    def model(self) -> nn.Module:
        """The whole model (without special module, whatever ``sequential`` keeps for training): what a student
        checkpoint holds and what evaluation runs."""
        return self._model

    @property
    def special(self) -> Optional[nn.Module]:
        """The special module, or None. Hook paths are relative to ``root``: this, else the model."""
        return self.root if self.has_special else None

    @property
    def trainable(self) -> bool:
        return any(p.requires_grad for p in self.parameters())

    def train(self, mode: bool = True):
        super().train(mode and self.trainable)
        if mode:
            for path in self.frozen_paths:
                find_module(self.root, path).eval()
        return self

    def forward(self, x, supp_dict: Optional[dict] = None, targets=None):
        """``(output, io_dict)``; ``supp_dict`` (the batch's extras) is accepted for the call shape and unused;
        ``targets`` reach the model under ``forward_proc: forward_batch_target``."""
        if self.inference_mode and not self.trainable:
            with torch.inference_mode():
                output, io_dict = self._forward(x, targets)
            # inference tensors cannot be saved for a backward pass: the loss gets ordinary copies
            return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, (output, io_dict))
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.trainable):
            return self._forward(x, targets)

    def _forward(self, x, targets=None):
        self.capture.pop()
        output = self.root(x, targets) if self.forward_proc == "forward_batch_target" else self.root(x)
        if self.special is not None:
            self.special.post_forward(self.capture.io_dict)
        return output, self.capture.pop()


class NoTeacher(nn.Module):
    """The teacher side of a run without a teacher: ``(None, {})``, with ModelSide's call shape."""

    def forward(self, x, supp_dict: Optional[dict] = None, targets=None):
        return None, {}
