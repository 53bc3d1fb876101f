"""The Python API beside the YAML: :func:`train` (a config path or dict, with keyword overrides) and
:class:`DistillWrapper` (vit-pytorch's one-call DeiT loss)."""
from .training import train
from .wrapper import DistillWrapper

__all__ = ["train", "DistillWrapper"]
