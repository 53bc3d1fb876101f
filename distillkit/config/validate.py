"""Structural validation of a loaded config, before anything is built.

:func:`parse_settings` checks the sections the engine reads against the schema
(:mod:`distillkit.config.schema`) and returns the typed settings; the model and
dataset blocks are checked here too.  Every error names the file, line and key path.
Names (loss types, models, datasets) are checked later, by the registries, with the
nearest valid names.
"""
from __future__ import annotations

from ..errors import ConfigError, nearest_names
from ..members import check_names
from ..utils import LazyTag
from .paths import join_path
from .schema import ModelSettings, RunSettings

MODEL_ROLES = ("teacher_model", "student_model", "model", "teachers", "students")
GROUPS = {"teachers": ("teacher_model", 1), "students": ("student_model", 2)}  # role: (its single form, fewest)


def _check_group(models: dict, role: str, unknown: str) -> None:
    """``models.teachers`` / ``models.students``: ``{name: model block}``, not beside the single form."""
    single, fewest = GROUPS[role]
    block = models[role]
    if not isinstance(block, dict) or len(block) < fewest:
        raise ConfigError(f"expected a mapping of at least {fewest} named model(s) {{name: {{name, params, ckpt}}}}, "
                          f"found {block!r}.", key_path=f"models.{role}")
    if single in models or (role == "students" and "model" in models):
        raise ConfigError(f"models.{role} and models.{single} are both given: declare the models one way.",
                          key_path=f"models.{role}")
    check_names(block, f"models.{role}")
    for name, model in block.items():
        ModelSettings.parse(model, f"models.{role}.{name}", unknown)


def _check_models(models: dict, unknown: str) -> None:
    if "student_model" not in models and "model" not in models and "students" not in models:
        raise ConfigError("no model to train: declare models.student_model (or models.model).",
                          key_path="models", candidates=nearest_names("student_model", models.keys(), n=3))
    for name, block in models.items():
        if name not in MODEL_ROLES:
            raise ConfigError(f"unknown model role {name!r}; models are teacher_model (or teachers), student_model "
                              f"(or students; model for training alone).", key_path=join_path("models", name),
                              candidates=nearest_names(name, MODEL_ROLES, n=2))
        if name in GROUPS:
            _check_group(models, name, unknown)
        else:
            ModelSettings.parse(block, f"models.{name}", unknown)


def _check_datasets(datasets: dict) -> None:
    for name, block in datasets.items():
        path = f"datasets.{name}"
        if isinstance(block, LazyTag):  # torchdistill 1.x: the dataset built by !import_call, keyed by its id
            continue
        if not isinstance(block, dict):
            raise ConfigError(f"expected a mapping, found {type(block).__name__}.", key_path=path)
        for key in ("type", "splits"):
            if block.get(key) is None:
                raise ConfigError(f"the required key {key!r} is missing under {path!r}.", key_path=f"{path}.{key}")
        for split, split_block in block["splits"].items():
            split_path = f"{path}.splits.{split}"
            if not isinstance(split_block, dict) or not split_block.get("dataset_id"):
                raise ConfigError("each split needs a dataset_id (and usually params).",
                                  key_path=f"{split_path}.dataset_id")
            if split_block.get("params") is not None and not isinstance(split_block["params"], dict):
                raise ConfigError(f"expected a mapping, found {type(split_block['params']).__name__}.",
                                  key_path=f"{split_path}.params")


def parse_settings(config, unknown: str = "debug") -> RunSettings:
    """The typed settings of ``config``; raises :class:`ConfigError` located in the config's file."""
    try:
        settings = RunSettings.parse(config, "", unknown)
        _check_models(config["models"], unknown)
        _check_datasets(config["datasets"])
        return settings
    except ConfigError as exc:
        raise config.locate(exc) if hasattr(config, "locate") else exc


def validate_config(config, strict: bool = False) -> None:
    """Raise :class:`ConfigError` on the first structural problem in ``config``; keys distillkit does not read are
    warned about (refused when ``strict``)."""
    parse_settings(config, "error" if strict else "warn")
