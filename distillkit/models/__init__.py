"""Model builders, checkpoint I/O, distillkit's own models and special modules."""
from . import adaptation, cifar_resnet, densenet_bc, distillable_vit, head_network, wide_resnet  # noqa: F401  (register)
from . import special  # noqa: F401
from .builder import build_model
from .checkpoint import CheckpointError, load_checkpoint, load_model_weights, save_atomic

__all__ = ["build_model", "CheckpointError", "load_checkpoint", "load_model_weights", "save_atomic"]
