"""Datasets, transforms and loaders built from config."""
from . import digits, wrappers  # noqa: F401  (register the bundled Digits dataset and the dataset wrappers)
from .datasets import build_datasets
from .loaders import ShardSampler, build_loader
from .transforms import build_transform

__all__ = ["build_datasets", "build_loader", "build_transform", "ShardSampler"]
