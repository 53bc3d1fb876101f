"""distillkit: config-driven knowledge distillation for PyTorch vision models."""
from . import data, losses, models  # noqa: F401  (register built-in datasets, losses, models)
from .config import load_config
from .engine import Trainer
from .errors import ConfigError, DistillkitError
from .experiment import build_experiment
from .registry import (register_dataset, register_loss, register_model, register_special_module,
                       register_transform)

__version__ = "0.1.0"
__all__ = ["load_config", "build_experiment", "Trainer", "ConfigError", "DistillkitError", "register_dataset",
           "register_loss", "register_model", "register_special_module", "register_transform"]
