"""A ViT with a distillation token (Touvron et al., DeiT, 2021), written with einops.

Tokens: ``[cls, dist, patch_1 .. patch_N]``, each with its own positional
embedding; the class head reads ``cls``, the distillation head reads ``dist``.
In training mode the model returns ``(class_logits, distillation_logits)``; in
evaluation mode ``eval_output`` selects ``mean_logits`` (default), ``class`` or ``distill``.
"""
from __future__ import annotations

import torch
from einops import rearrange, repeat
from einops.layers.torch import Rearrange
from torch import nn

from ..errors import ConfigError
from ..registry import register_model

EVAL_OUTPUTS = ("mean_logits", "class", "distill")


def select_eval_output(class_logits, dist_logits, mode: str):
    if mode == "class":
        return class_logits
    if mode == "distill":
        return dist_logits
    return (class_logits + dist_logits) / 2


class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, dropout):
        super().__init__()
        inner = heads * dim_head
        self.heads, self.scale = heads, dim_head ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(self, x):
        q, k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, -1))
        attn = (torch.einsum("bhid,bhjd->bhij", q, k) * self.scale).softmax(-1)
        return self.to_out(rearrange(torch.einsum("bhij,bhjd->bhid", attn, v), "b h n d -> b n (h d)"))


class Block(nn.Module):
    def __init__(self, dim, heads, dim_head, mlp_dim, dropout):
        super().__init__()
        self.attn = Attention(dim, heads, dim_head, dropout)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(mlp_dim, dim), nn.Dropout(dropout))

    def forward(self, x):
        x = x + self.attn(x)
        return x + self.mlp(x)


@register_model("distillable_vit")
class DistillableViT(nn.Module):
    def __init__(self, image_size: int = 224, patch_size: int = 16, num_classes: int = 1000, dim: int = 192,
                 depth: int = 12, heads: int = 3, mlp_dim: int = 768, channels: int = 3, dim_head: int = 64,
                 dropout: float = 0.0, emb_dropout: float = 0.0, eval_output: str = "mean_logits"):
        super().__init__()
        if image_size % patch_size:
            raise ConfigError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.",
                              key_path="params.image_size")
        if eval_output not in EVAL_OUTPUTS:
            raise ConfigError(f"eval_output must be one of {EVAL_OUTPUTS}, found {eval_output!r}.",
                              key_path="params.eval_output")
        num_patches = (image_size // patch_size) ** 2
        self.eval_output = eval_output
        self.to_patch_embedding = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size),
            nn.Linear(channels * patch_size * patch_size, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 2, dim) * 0.02)
        self.dropout = nn.Dropout(emb_dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.head_dist = nn.Linear(dim, num_classes)

    def tokens(self, img):
        """``(b, 2 + N, dim)``: cls, dist, then the patches, positional embeddings added to all."""
        x = self.to_patch_embedding(img)
        b = x.shape[0]
        x = torch.cat((repeat(self.cls_token, "1 1 d -> b 1 d", b=b), repeat(self.dist_token, "1 1 d -> b 1 d", b=b),
                       x), dim=1)
        return self.dropout(x + self.pos_embedding)

    def forward(self, img):
        x = self.norm(self.blocks(self.tokens(img)))
        class_logits, dist_logits = self.head(x[:, 0]), self.head_dist(x[:, 1])
        if self.training:
            return class_logits, dist_logits
        return select_eval_output(class_logits, dist_logits, self.eval_output)
