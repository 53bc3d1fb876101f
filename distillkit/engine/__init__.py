"""Training engine: distributed setup, the Trainer, evaluation, logging, mixed precision."""
from .distributed import DistContext, setup_distributed
from .evaluate import evaluate
from .trainer import Trainer

__all__ = ["DistContext", "setup_distributed", "evaluate", "Trainer"]
