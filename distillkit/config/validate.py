"""Structural validation of a loaded config, before anything is built.

Checks required sections, value types and near-miss key spellings, each with
an error that names the file, line and key path.  Names (loss types, models,
datasets) are checked later, by the registries, with the nearest valid names.
"""
from __future__ import annotations

import logging
from typing import Dict, Optional, Tuple

from ..errors import nearest_names
from .paths import join_path

logger = logging.getLogger(__name__)

# type label -> python types ; bool is not an int here.
_TYPES = {
    "mapping": (dict,), "list": (list, tuple), "str": (str,), "bool": (bool,),
    "int": (int,), "number": (int, float),
}

# A block spec: {key: (type labels, required)}; a nested spec validates the value too.
LOADER = {"dataset_id": ("str", True), "random_sample": ("bool", False), "batch_size": ("int", True),
          "num_workers": ("int", False), "cache_output": ("any", False), "pin_memory": ("bool", False),
          "drop_last": ("bool", False), "persistent_workers": ("bool", False),
          "prefetch_factor": ("int", False), "repeated_aug": ("int", False)}
MODEL = {"name": ("str", True), "params": ("mapping", False), "experiment": ("str", False),
         "ckpt": ("str", False), "repo_or_dir": ("str", False)}
SIDE = {"sequential": ("list", False), "special": ("mapping", False), "forward_hook": ("mapping", False),
        "wrapper": ("str", False), "requires_grad": ("bool", False), "frozen_modules": ("list", False),
        "adaptations": ("any", False), "find_unused_parameters": ("bool", False),
        "sync_bn": ("bool", False)}
TYPED = {"type": ("str", True), "params": ("mapping", False)}
SCHEDULER = dict(TYPED, scheduling_step=("int", False))
CRITERION = {"type": ("str", True), "params": ("mapping", False), "org_term": ("mapping", False),
             "sub_terms": ("mapping", False)}
TRAIN = {"log_freq": ("int", False), "num_epochs": ("int", True), "train_data_loader": (LOADER, True),
         "val_data_loader": (LOADER, False), "teacher": (SIDE, False), "student": (SIDE, False),
         "optimizer": (TYPED, True), "scheduler": (SCHEDULER, False), "criterion": (CRITERION, True),
         "apex": ("mapping", False), "amp": ("mapping", False), "clip_grad_norm": ("number", False),
         "adjust_lr": ("bool", False), "mixup": ("mapping", False), "model_ema": ("mapping", False),
         "keep_last_checkpoints": ("int", False), "skip_nonfinite": ("int", False),
         "channels_last": ("bool", False), "compile": ("any", False), "teacher_inference_mode": ("bool", False),
         "teacher_cache": ({"dir": ("str", True), "top_k": ("any", False)}, False)}
TOP = {"datasets": ("mapping", True), "models": ("mapping", True), "train": (TRAIN, True),
       "test": ({"test_data_loader": (LOADER, False)}, False), "imports": ("list", False)}


def _type_ok(value, label) -> bool:
    if label == "any" or value is None:
        return True
    if isinstance(value, bool) and label in ("int", "number"):
        return False
    return isinstance(value, _TYPES[label])


def _check_block(config, block: Optional[dict], spec: Dict[str, Tuple], prefix: str) -> None:
    for key, (kind, required) in spec.items():
        path = join_path(prefix, key)
        present = isinstance(block, dict) and key in block
        value = block.get(key) if isinstance(block, dict) else None
        if required and (not present or value is None):
            extra = [k for k in (block or {}) if k not in spec]
            raise config.error(f"the required key {key!r} is missing"
                               + (f" under {prefix!r}." if prefix else " at the top level."),
                               key_path=path, candidates=nearest_names(key, extra, n=3),
                               hint=_required_hint(path))
        if not present or value is None:
            continue
        label = "mapping" if isinstance(kind, dict) else kind
        if not _type_ok(value, label):
            raise config.error(f"expected a {label}, found {type(value).__name__} {value!r}.", key_path=path)
        if isinstance(kind, dict):
            _check_block(config, value, kind, path)
    for key in (block or {}):
        if key in spec:
            continue
        close = [c for c in nearest_names(key, spec.keys(), n=3) if c != key]
        if close:
            raise config.error(f"unknown key {key!r}.", key_path=join_path(prefix, key), candidates=close)
        logger.debug("config key %s is not one distillkit reads; it is kept but ignored", join_path(prefix, key))


def _required_hint(path: str) -> str:
    hints = {
        "datasets": "Declare datasets.<name>.{type, splits.<split>.{dataset_id, params}}.",
        "models": "Declare models.student_model (and models.teacher_model to distil).",
        "train.criterion": "For plain training: criterion: {type: GeneralizedCustomLoss, org_term: "
                           "{criterion: {type: CrossEntropyLoss}, factor: 1.0}}.",
    }
    return hints.get(path, "")


def validate_config(config) -> None:
    """Raise :class:`ConfigError` on the first structural problem in ``config``."""
    _check_block(config, config, TOP, "")
    models = config["models"]
    if "student_model" not in models and "model" not in models:
        raise config.error("no model to train: declare models.student_model (or models.model).",
                           key_path="models", candidates=nearest_names("student_model", models.keys(), n=3))
    for name, block in models.items():
        if name not in ("teacher_model", "student_model", "model"):
            close = nearest_names(name, ["teacher_model", "student_model", "model"], n=2)
            raise config.error(f"unknown model role {name!r}; models are teacher_model, student_model "
                               f"(or model for training alone).", key_path=join_path("models", name),
                               candidates=close)
        if not isinstance(block, dict):
            raise config.error(f"expected a mapping, found {type(block).__name__}.", key_path=f"models.{name}")
        _check_block(config, block, MODEL, f"models.{name}")
    for name, block in config["datasets"].items():
        path = f"datasets.{name}"
        if not isinstance(block, dict):
            raise config.error(f"expected a mapping, found {type(block).__name__}.", key_path=path)
        for key in ("type", "splits"):
            if block.get(key) is None:
                raise config.error(f"the required key {key!r} is missing under {path!r}.",
                                   key_path=f"{path}.{key}")
        for split, split_block in block["splits"].items():
            split_path = f"{path}.splits.{split}"
            if not isinstance(split_block, dict) or not split_block.get("dataset_id"):
                raise config.error("each split needs a dataset_id (and usually params).",
                                   key_path=f"{split_path}.dataset_id")
            if split_block.get("params") is not None and not isinstance(split_block["params"], dict):
                raise config.error(f"expected a mapping, found {type(split_block['params']).__name__}.",
                                   key_path=f"{split_path}.params")


def is_known_key(parts) -> bool:
    """Whether the key path ``parts`` (e.g. ``['train', 'compile']``) is one the schema declares."""
    spec = TOP
    for part in parts:
        if not isinstance(spec, dict) or part not in spec:
            return False
        spec = spec[part][0]
    return True
