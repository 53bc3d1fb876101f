"""Special modules: trainable parts that sit beside a teacher or student model."""
from .attn_embed import AttnEmbed, Embed
from .base import SpecialModule

__all__ = ["SpecialModule", "AttnEmbed", "Embed"]
