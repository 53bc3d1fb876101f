"""Datasets from the ``datasets:`` section, keyed by ``dataset_id``.

``type`` is looked up in distillkit's dataset registry, then in
``torchvision.datasets``.  Each split's ``params`` go to the dataset's
constructor, with ``transform_params`` / ``target_transform_params`` built into
``transform`` / ``target_transform``.  A dataset that reads its ``samples`` through a ``loader``
(ImageFolder) names an unreadable file in one paragraph, or skips it with ``skip_bad_images: true`` (beside
``type``, or in one split's block): see :mod:`distillkit.data.guard`.
"""
from __future__ import annotations

import copy
import os
from typing import Optional

from torchvision import datasets as tv_datasets

from ..errors import ConfigError
from ..registry import DATASETS
from ..utils import LazyTag, call_with_params, resolve_tags
from . import shards  # noqa: F401  (registers TarShards, tar shards from `distillkit prepare`)
from .guard import guard_dataset, skip_setting
from .splits import split_dataset
from .transforms import build_transform, maybe_transform

# Datasets whose root must already hold data (no download option).
_FOLDER_TYPES = ("ImageFolder", "DatasetFolder")


def resolve_dataset_type(name: str, key_path: str):
    return DATASETS.resolve(name, key_path=key_path, fallbacks=(("torchvision.datasets", tv_datasets),))


def _check_root(type_name: str, params: dict, key_path: str) -> None:
    root = params.get("root")
    if root is None or params.get("download"):
        return
    if not os.path.exists(str(root)):
        raise ConfigError(f"the dataset root {root!r} does not exist (looked from {os.getcwd()}).",
                          key_path=f"{key_path}.root",
                          hint="Point it at your copy of the data (for ImageNet: the folder holding "
                               "train/ and val/), e.g. --set " f"{key_path}.root=/data/imagenet/train.")
    if type_name in _FOLDER_TYPES and (not os.path.isdir(str(root)) or not os.listdir(str(root))):
        raise ConfigError(f"the dataset root {root!r} is empty or not a folder; {type_name} expects one "
                          f"sub-folder of images per class.", key_path=f"{key_path}.root")


def build_split(type_name: str, type_key_path: str, split_block: dict, key_path: str):
    """One dataset object for one split block."""
    cls = resolve_dataset_type(type_name, key_path=type_key_path)
    if getattr(cls, "split_builder", None) is not None:  # a type that reads its split block itself (cocodetect)
        return cls.split_builder(split_block, key_path, build_transform)
    params_path = f"{key_path}.params"
    params = copy.deepcopy(split_block.get("params") or {})
    transform = maybe_transform(params, "transform_params", params_path)
    if transform is not None or "transform" not in params:  # a transform given as an object is kept
        params["transform"] = transform
    target_transform = maybe_transform(params, "target_transform_params", params_path)
    compose = params.pop("transforms_compose_cls", None) or "CustomCompose"
    if params.get("transforms_params"):  # joint image + target steps (torchdistill's segmentation datasets)
        params["transforms"] = build_transform(params.pop("transforms_params"), f"{params_path}.transforms_params",
                                               compose=compose)
    if target_transform is not None:
        params["target_transform"] = target_transform
    if isinstance(params.get("root"), str):
        params["root"] = os.path.expanduser(params["root"])
    if not getattr(cls, "checks_own_root", False):
        _check_root(type_name, params, params_path)
    try:
        return call_with_params(cls, params, params_path)
    except OSError as exc:  # urllib's URLError too: a download that cannot reach the network
        if not params.get("download") or isinstance(exc, FileNotFoundError):
            raise ConfigError(f"{type_name} could not load its data: {exc}", key_path=params_path) from exc
        raise ConfigError(f"{type_name}'s data is not at {params.get('root')!r} and downloading it failed ({exc}). "
                          f"Place the dataset's files there yourself (for CIFAR-10/100: the extracted "
                          f"cifar-10-batches-py / cifar-100-python folder), or point root at your copy.",
                          key_path=f"{params_path}.root") from exc
    except RuntimeError as exc:
        raise ConfigError(f"{type_name} could not load its data: {exc}", key_path=params_path) from exc


def build_called_dataset(block: LazyTag, key_path: str, memo: Optional[dict] = None):
    """A dataset the config builds itself (torchdistill 1.x: ``datasets.<dataset_id>: !import_call {...}``)."""
    init = block.get("init") or {}
    kwargs = init.get("kwargs") or {} if isinstance(init, dict) else {}
    root = kwargs.get("root") if isinstance(kwargs, dict) else None
    if isinstance(root, str) and not kwargs.get("download"):
        _check_root(str(block.get("key", "")).rpartition(".")[2], {"root": os.path.expanduser(root)},
                    f"{key_path}.init.kwargs")
    try:
        return resolve_tags(block, memo)
    except ConfigError as exc:  # a dataset's own check of one of its arguments (params.<name>): under init.kwargs
        name = (exc.key_path or "")[len("params."):] if (exc.key_path or "").startswith("params.") else None
        if name and isinstance(kwargs, dict) and name in kwargs:
            exc.key_path = f"{key_path}.init.kwargs.{name}"
            exc.locate()
        raise
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"{block.get('key')} could not load its data: {exc}", key_path=f"{key_path}.init") from exc


class DatasetTable(dict):
    """``{dataset_id: dataset}``; ``built``: the value built for each config node (:func:`resolve_tags`'s memo), so
    that a tag elsewhere that names a dataset by YAML alias (a batch sampler's ``group_ids``) gets the same
    object."""

    def __init__(self):
        super().__init__()
        self.built: dict = {}


def build_datasets(config) -> DatasetTable:
    """``{dataset_id: dataset}`` for every split of every declared dataset."""
    datasets = DatasetTable()
    built = datasets.built  # one object per node, however many aliases reach it
    for name, block in (config.get("datasets") or {}).items():
        if isinstance(block, LazyTag):
            datasets[name] = guard_dataset(build_called_dataset(block, f"datasets.{name}", built), f"datasets.{name}")
            continue
        for split, split_block in block["splits"].items():
            key_path = f"datasets.{name}.splits.{split}"
            dataset_id = split_block["dataset_id"]
            if dataset_id in datasets:
                raise ConfigError(f"dataset_id {dataset_id!r} is declared twice.", key_path=f"{key_path}.dataset_id")
            if "type" in split_block:
                type_name, type_path = split_block["type"], f"{key_path}.type"
            else:
                type_name, type_path = block["type"], f"datasets.{name}.type"
            skip, skip_key = skip_setting(block, split_block, f"datasets.{name}", key_path)
            dataset = guard_dataset(build_split(type_name, type_path, split_block, key_path), key_path, skip, skip_key)
            if split_block.get("random_split") is not None:
                for sub_id, subset in split_dataset(dataset, split_block["random_split"],
                                                    f"{key_path}.random_split").items():
                    if sub_id in datasets:
                        raise ConfigError(f"dataset_id {sub_id!r} is declared twice.", key_path=key_path)
                    datasets[sub_id] = subset
                continue
            datasets[dataset_id] = dataset
    return datasets
