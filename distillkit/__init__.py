"""distillkit: config-driven knowledge distillation for PyTorch vision models.

Public names for users and plugin authors: ``load_config``, ``build_experiment``, ``Trainer``,
``train_from_config``, the ``register_*`` decorators, ``SpecialModule`` (the base of special
modules), ``select_features`` (read a hooked tensor out of an io_dict, with a clear error when
the path was not hooked) and the error types; the Python API: ``train`` (a config path or dict, keyword
overrides), ``DistillWrapper``, ``DistillableViT`` and ``ViT``.
"""
__version__ = "0.2.0"

from . import data, losses, models  # noqa: E402,F401  (register built-in datasets, losses, models)
from .config import load_config  # noqa: E402
from .engine import Trainer  # noqa: E402
from .errors import ConfigError, DistillkitError  # noqa: E402
from .experiment import build_experiment  # noqa: E402
from .losses.features import select_features  # noqa: E402
from .models.special import SpecialModule  # noqa: E402
from .registry import (register_dataset, register_dataset_wrapper, register_loss, register_model,  # noqa: E402
                       register_optimizer, register_scheduler, register_special_module, register_transform)
from .runner import train_from_config  # noqa: E402
from .api import DistillWrapper, train  # noqa: E402
from .models.distillable_vit import DistillableViT, ViT  # noqa: E402

__all__ = ["load_config", "build_experiment", "Trainer", "train_from_config", "ConfigError", "DistillkitError",
           "SpecialModule", "select_features", "register_dataset", "register_dataset_wrapper", "register_loss",
           "register_model", "register_optimizer", "register_scheduler", "register_special_module",
           "register_transform", "train", "DistillWrapper", "DistillableViT", "ViT"]
