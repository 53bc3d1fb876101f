"""Special modules: trainable parts that sit beside a teacher or student model.

Every module of this package is imported here, so a new special module is one new file
whose class registers itself with ``@register_special_module``.
"""
import importlib
import pkgutil

from .attn_embed import AttnEmbed, Embed
from .base import SpecialModule

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SpecialModule", "AttnEmbed", "Embed"]
