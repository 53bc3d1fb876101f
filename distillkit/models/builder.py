"""Models from ``models.<role>.{name, params, ckpt, repo_or_dir}``.

Name resolution: distillkit's model registry, then ``torchvision.models``
(``params.pretrained: True`` selects torchvision's default weights), then timm
(``timm:<name>``, or any name timm knows).  ``repo_or_dir`` loads through
``torch.hub`` as torchdistill 0.x did.
"""
from __future__ import annotations

import copy
import logging
import os
import re
import types

import torch
from torch import nn

from ..errors import ConfigError, nearest_names
from ..registry import MODELS
from ..utils import call_with_params
from .distillable_vit import EVAL_OUTPUTS, select_eval_output

logger = logging.getLogger(__name__)


def _torchvision_builder(name: str):
    import torchvision.models as tvm

    try:
        return tvm.get_model_builder(name)
    except ValueError:
        return None


def _timm():
    try:
        import timm
    except ImportError:  # pragma: no cover - timm is a dependency
        return None
    return timm


def _torchvision_call(builder, params: dict, key_path: str) -> nn.Module:
    """torchdistill 0.x's ``pretrained`` / ``pretrained_backbone`` select torchvision's default weights (or none)."""
    for old, new in (("pretrained", "weights"), ("pretrained_backbone", "weights_backbone")):
        value = params.pop(old, None)
        if value is not None and new not in params:
            params[new] = "DEFAULT" if value else None
    try:
        return call_with_params(builder, params, key_path)
    except (OSError, RuntimeError) as exc:  # urllib's URLError is an OSError: weights that cannot be downloaded
        if "weights" not in str(exc).lower() and not isinstance(exc, OSError):
            raise
        raise ConfigError(f"torchvision could not get the pretrained weights of {builder.__name__}: {exc}. Without "
                          f"network, put the weight file in {torch.hub.get_dir()}/checkpoints (torchvision looks "
                          f"there first), or train from scratch: pretrained: False and pretrained_backbone: False "
                          f"(torchdistill 1.x: weights: null, weights_backbone: null).", key_path=key_path) from exc


def configure_timm_distilled(model: nn.Module, eval_output: str = "mean_logits") -> nn.Module:
    """Turn on a timm distilled ViT's training mode that returns ``(class, distillation)`` logits, and make
    evaluation return ``eval_output``: ``mean_logits`` (timm's own average), ``class`` or ``distill``."""
    if eval_output not in EVAL_OUTPUTS:
        raise ConfigError(f"eval_output must be one of {EVAL_OUTPUTS}, found {eval_output!r}.",
                          key_path="params.eval_output")
    model.set_distilled_training(True)
    if eval_output != "mean_logits":
        timm_head = type(model).forward_head

        def forward_head(self, x, pre_logits: bool = False):
            if self.training or pre_logits:
                return timm_head(self, x, pre_logits)
            return select_eval_output(self.head(self.head_drop(x[:, 0])), self.head_dist(x[:, 1]), eval_output)

        model.forward_head = types.MethodType(forward_head, model)  # a bound method survives deepcopy (EMA)
    return model


def _create_timm(timm, name: str, params: dict, params_path: str) -> nn.Module:
    eval_output = params.pop("eval_output", "mean_logits")
    model = call_with_params(timm.create_model, params, params_path, name)
    if hasattr(model, "set_distilled_training"):
        configure_timm_distilled(model, eval_output)
    return model


def _missing_modules(exc: BaseException) -> list:
    """The modules a hub repository's code needs and cannot import: an ``import`` in its hubconf.py that fails, or
    torch.hub's check of the hubconf's ``dependencies`` list; ``[]`` for any other failure."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return [exc.name.split(".")[0]]
    match = re.fullmatch(r"Missing dependencies: (.+)", str(exc)) if isinstance(exc, RuntimeError) else None
    return match.group(1).split(", ") if match else []


# torch.hub models that distillkit also builds, with the same module tree and state_dict keys (torchdistill 1.x's
# GHND configs load sc2-benchmark's R-CNNs): used when torch.hub cannot load them. sc2-benchmark's classification
# models (custom_resnet152, ...) are not here: their module paths differ from distillkit's head-network models.
HUB_EQUIVALENTS = {"yoshitomo-matsubara/sc2-benchmark": ("custom_fasterrcnn_resnet_fpn", "custom_maskrcnn_resnet_fpn")}


def _hub_model(repo_or_dir: str, name: str, params: dict, key_path: str) -> nn.Module:
    """``torch.hub.load(repo_or_dir, name, **params)`` (a folder: its hubconf.py; ``params.source`` as torch.hub's
    own, which torchdistill passes on), its failures (offline, an unknown entry, a missing dependency) as one
    paragraph."""
    folder = os.path.expanduser(repo_or_dir)
    source = params.pop("source", "local" if os.path.isdir(folder) else "github")
    try:
        return torch.hub.load(folder if source == "local" else repo_or_dir, name, source=source, **params)
    except (OSError, RuntimeError, ValueError, ImportError, AttributeError) as exc:
        missing = _missing_modules(exc)
        if missing:
            raise ConfigError(
                f"torch.hub could not load {name!r} from {repo_or_dir!r}: the repository's hubconf.py needs "
                f"{', '.join(map(repr, missing))}, not installed here ({exc}). Install it (`pip install "
                f"{' '.join(missing)}`, or the package that provides it) and run again. "
                f"torchdistill cannot run this config without it either: it builds the model by the same "
                f"torch.hub.load(repo_or_dir, key, **kwargs), which imports that hubconf.py.",
                key_path=f"{key_path}.repo_or_dir") from exc
        hint = (" Without network, clone the repository and set repo_or_dir to its folder (torch.hub reads a local "
                "hubconf.py)." if source == "github" else "")
        raise ConfigError(f"torch.hub could not load {name!r} from {repo_or_dir!r}: {exc}.{hint}",
                          key_path=f"{key_path}.repo_or_dir") from exc


def build_model(block: dict, key_path: str) -> nn.Module:
    """Build the model of one ``models.<role>`` block (its ``ckpt`` is not loaded here)."""
    name = block["name"]
    params = copy.deepcopy(block.get("params") or {})
    params_path = f"{key_path}.params"
    if block.get("repo_or_dir"):  # as torchdistill 1.x: the repository's model, even where a name is also ours
        try:
            return _hub_model(block["repo_or_dir"], name, params, key_path)
        except ConfigError:
            if name not in HUB_EQUIVALENTS.get(block["repo_or_dir"], ()):
                raise
            logger.warning("%s: torch.hub could not load %r from %s; distillkit's %s (same modules and state_dict "
                           "keys) is used instead.", key_path, name, block["repo_or_dir"], name)
            return call_with_params(MODELS[name], params, params_path)
    timm = _timm()
    if isinstance(name, str) and name.startswith("timm:"):
        timm_name = name[len("timm:"):]
        if timm is None or not timm.is_model(timm_name):
            raise ConfigError(f"timm knows no model {timm_name!r}.", key_path=f"{key_path}.name",
                              candidates=nearest_names(timm_name, timm.list_models() if timm else []))
        return _create_timm(timm, timm_name, params, params_path)
    if name in MODELS:
        return call_with_params(MODELS[name], params, params_path)
    builder = _torchvision_builder(name)
    if builder is not None:
        return _torchvision_call(builder, params, params_path)
    if timm is not None and timm.is_model(name):
        return _create_timm(timm, name, params, params_path)
    import torchvision.models as tvm

    known = list(MODELS.names()) + list(tvm.list_models()) + (list(timm.list_models()) if timm else [])
    raise ConfigError(f"unknown model {name!r}; it is not in distillkit's model registry, torchvision.models "
                      f"or timm.", key_path=f"{key_path}.name", candidates=nearest_names(name, known),
                      hint="Use 'timm:<name>' for a timm model, or register your own with @register_model.")
