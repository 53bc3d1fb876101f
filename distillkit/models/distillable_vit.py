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


def _check_sizes(image_size: int, patch_size: int) -> None:
    if image_size % patch_size:
        raise ConfigError(f"image_size {image_size} must be a multiple of patch_size {patch_size}.",
                          key_path="params.image_size")


@register_model("vit")
class ViT(nn.Module):
    """A plain ViT (Dosovitskiy et al., 2021) in the layout of :class:`DistillableViT`, with one head.

    Tokens: ``[cls, reg_1 .. reg_R, patch_1 .. patch_N]`` (``register_tokens=R``, default 0), each with its
    own positional embedding; the head reads ``cls`` and the model returns its logits in every mode.
    :meth:`DistillableViT.to_vit` gives one with the distillable model's weights.
    """

    def __init__(self, image_size: int = 224, patch_size: int = 16, num_classes: int = 1000, dim: int = 192,
                 depth: int = 12, heads: int = 3, mlp_dim: int = 768, channels: int = 3, dim_head: int = 64,
                 dropout: float = 0.0, emb_dropout: float = 0.0, register_tokens: int = 0):
        super().__init__()
        _check_sizes(image_size, patch_size)
        self.hparams = dict(image_size=image_size, patch_size=patch_size, num_classes=num_classes, dim=dim,
                            depth=depth, heads=heads, mlp_dim=mlp_dim, channels=channels, dim_head=dim_head,
                            dropout=dropout, emb_dropout=emb_dropout)
        num_patches = (image_size // patch_size) ** 2
        self.to_patch_embedding = nn.Sequential(
            Rearrange("b c (h p1) (w p2) -> b (h w) (p1 p2 c)", p1=patch_size, p2=patch_size),
            nn.Linear(channels * patch_size * patch_size, dim))
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        extra = self._add_extra_tokens(dim, register_tokens)
        self.pos_embedding = nn.Parameter(torch.randn(1, num_patches + 1 + extra, dim) * 0.02)
        self.dropout = nn.Dropout(emb_dropout)
        self.blocks = nn.Sequential(*[Block(dim, heads, dim_head, mlp_dim, dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def _add_extra_tokens(self, dim: int, count: int) -> int:
        """Create the learned tokens between ``cls`` and the patches; returns how many there are."""
        if count:
            self.register_tokens = nn.Parameter(torch.randn(1, count, dim) * 0.02)
        return count

    def _extra_tokens(self):
        return [self.register_tokens] if "register_tokens" in self._parameters else []

    def tokens(self, img):
        """``(b, 1 + R + N, dim)``: cls, the extra tokens, then the patches, positional embeddings added to all."""
        x = self.to_patch_embedding(img)
        b = x.shape[0]
        prefix = [repeat(t, "1 n d -> b n d", b=b) for t in [self.cls_token] + self._extra_tokens()]
        return self.dropout(torch.cat(prefix + [x], dim=1) + self.pos_embedding)

    def encode(self, img):
        """The normalised output tokens of the transformer, ``(b, tokens, dim)``."""
        return self.norm(self.blocks(self.tokens(img)))

    def forward(self, img):
        return self.head(self.encode(img)[:, 0])


@register_model("distillable_vit")
class DistillableViT(ViT):
    """:class:`ViT` with a distillation token after ``cls`` and its own head ``head_dist`` (DeiT)."""

    def __init__(self, image_size: int = 224, patch_size: int = 16, num_classes: int = 1000, dim: int = 192,
                 depth: int = 12, heads: int = 3, mlp_dim: int = 768, channels: int = 3, dim_head: int = 64,
                 dropout: float = 0.0, emb_dropout: float = 0.0, eval_output: str = "mean_logits"):
        if eval_output not in EVAL_OUTPUTS:
            raise ConfigError(f"eval_output must be one of {EVAL_OUTPUTS}, found {eval_output!r}.",
                              key_path="params.eval_output")
        super().__init__(image_size, patch_size, num_classes, dim, depth, heads, mlp_dim, channels, dim_head,
                         dropout, emb_dropout)
        self.eval_output = eval_output
        self.head_dist = nn.Linear(dim, num_classes)

    def _add_extra_tokens(self, dim: int, count: int) -> int:
        self.dist_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        return 1

    def _extra_tokens(self):
        return [self.dist_token]

    def forward_heads(self, img):
        """``(class_logits, distillation_logits)`` in every mode."""
        x = self.encode(img)
        return self.head(x[:, 0]), self.head_dist(x[:, 1])

    def forward(self, img):
        class_logits, dist_logits = self.forward_heads(img)
        if self.training:
            return class_logits, dist_logits
        return select_eval_output(class_logits, dist_logits, self.eval_output)

    def to_vit(self, keep_distillation_token: bool = True) -> ViT:
        """A plain :class:`ViT` with these weights, whose output is this model's class-token head.

        ``keep_distillation_token=True`` (default): the learned distillation token stays in the sequence as a
        register token without a head, so the outputs equal this model's ``class`` logits exactly (every token
        attends to it).  ``False``: the token and its positional embedding are removed (vit-pytorch's
        ``to_vit``); the class token then attends to one token fewer, and its logits change."""
        vit = ViT(**self.hparams, register_tokens=1 if keep_distillation_token else 0)
        state = {k: v.detach().clone() for k, v in self.state_dict().items() if not k.startswith("head_dist.")}
        token = state.pop("dist_token")
        if keep_distillation_token:
            state["register_tokens"] = token
        else:
            pos = state["pos_embedding"]
            state["pos_embedding"] = torch.cat((pos[:, :1], pos[:, 2:]), dim=1)
        vit.load_state_dict(state)
        return vit.to(token.device, token.dtype).train(self.training)
