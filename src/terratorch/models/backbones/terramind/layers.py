"""Transformer layers of TerraMind, with the parameter names of the published checkpoints.

Public names (stable): :class:`LayerNorm` (bias can be a fixed zero buffer, as in TerraMind),
:class:`DropPath`, :class:`Mlp`, :class:`GatedMlp` (SwiGLU), :class:`Attention` (``qkv``/``proj``),
:class:`NormAttention` (q/k normalised), :class:`Block` (``norm1``/``attn``/``norm2``/``mlp``) and
:func:`terramind_norm` (the ``LayerNorm(eps=1e-6, bias=False)`` every published size uses).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "Attention",
    "Block",
    "DropPath",
    "GatedMlp",
    "LayerNorm",
    "Mlp",
    "NormAttention",
    "terramind_norm",
]


class LayerNorm(nn.Module):
    """Layer norm whose bias may be disabled; a disabled bias is a zero buffer so checkpoints keep the key.

    Args:
        normalized_shape: Size of the last dimension.
        eps: Added to the variance.
        bias: Learn a bias (else ``bias`` is a persistent zero buffer, as in TerraMind's files).
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-5, bias: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.normalized_shape = (normalized_shape,)
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        if bias:
            self.bias = nn.Parameter(torch.zeros(normalized_shape))
        else:
            self.register_buffer("bias", torch.zeros(normalized_shape))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise over the last dimension."""
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, eps=self.eps)


#: The norm layer of every published TerraMind size.
terramind_norm: Callable[[int], nn.Module] = partial(LayerNorm, eps=1e-6, bias=False)


class DropPath(nn.Module):
    """Stochastic depth: in training, zero whole samples of a residual branch with rate ``drop_prob``."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """Identity in eval mode or at rate 0; else rescaled random sample dropping."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(
            keep
        )
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class Mlp(nn.Module):
    """Two-layer feed-forward ``fc1 → act → fc2 → dropout``."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        drop: float = 0.0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features, bias=bias)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the feed-forward."""
        return self.drop(self.fc2(self.act(self.fc1(x))))


class GatedMlp(nn.Module):
    """Gated feed-forward (SwiGLU with SiLU): ``fc2(act(fc1(x)) * fc3(x))``, hidden width scaled by 2/3."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: Callable[[], nn.Module] = nn.SiLU,
        bias: bool = True,
    ) -> None:
        super().__init__()
        hidden = int(2 * (hidden_features or in_features) / 3)
        self.fc1 = nn.Linear(in_features, hidden, bias=bias)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, out_features or in_features, bias=bias)
        self.fc3 = nn.Linear(in_features, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the gated feed-forward."""
        return self.fc2(self.act(self.fc1(x)) * self.fc3(x))


def _split_heads(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    batch, length, three_dim = qkv.shape
    qkv = qkv.reshape(batch, length, 3, num_heads, three_dim // (3 * num_heads)).permute(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection (scaled dot-product kernel).

    ``mask`` (``B, N, N``) marks pairs that must *not* attend with True, TerraMind's convention.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over the tokens of ``x`` (``B, N, D``)."""
        batch, length, dim = x.shape
        q, k, v = _split_heads(self.qkv(x), self.num_heads)
        attn_mask = None if mask is None else ~mask[:, None].to(dtype=torch.bool, device=x.device)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.attn_drop.p if self.training else 0.0,
            scale=self.scale,
        )
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(batch, length, dim)))


class NormAttention(Attention):
    """Self-attention with normalised queries and keys (``qk_norm=True``, as in ViT-22B)."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        proj_bias: bool = True,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        allow_zero_attn: bool = False,
    ) -> None:
        super().__init__(dim, num_heads, qkv_bias, proj_bias, attn_drop, proj_drop)
        self.allow_zero_attn = allow_zero_attn
        self.q_norm = norm_layer(dim // num_heads)
        self.k_norm = norm_layer(dim // num_heads)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Attend over the tokens of ``x`` with q/k normalised per head."""
        batch, length, dim = x.shape
        q, k, v = _split_heads(self.qkv(x), self.num_heads)
        attn = (self.q_norm(q) @ self.k_norm(k).transpose(-2, -1)) * self.scale
        if mask is not None:
            attn = attn.masked_fill(mask.unsqueeze(1), -torch.finfo(attn.dtype).max)
        if self.allow_zero_attn:  # softmax with an implicit zero logit ("attention off by one")
            attn = F.pad(attn, (0, 1)).softmax(dim=-1)[..., :-1]
        else:
            attn = attn.softmax(dim=-1)
        y = (self.attn_drop(attn) @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.proj_drop(self.proj(y))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_ratio: Feed-forward width over ``dim``.
        qkv_bias: Bias in the ``qkv`` projection.
        proj_bias: Bias in the attention output projection.
        mlp_bias: Biases in the feed-forward.
        drop: Dropout after the projections.
        attn_drop: Dropout on the attention weights.
        drop_path: Stochastic-depth rate.
        act_layer: Feed-forward activation.
        norm_layer: Norm factory (called with ``dim``).
        gated_mlp: Use :class:`GatedMlp` (SwiGLU) instead of :class:`Mlp`.
        qk_norm: Use :class:`NormAttention`.
        allow_zero_attn: With ``qk_norm``, allow attending to nothing.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_bias: bool = True,
        mlp_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        gated_mlp: bool = False,
        qk_norm: bool = False,
        allow_zero_attn: bool = False,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        if qk_norm:
            self.attn: Attention = NormAttention(
                dim, num_heads, qkv_bias, proj_bias, norm_layer, attn_drop, drop, allow_zero_attn
            )
        else:
            self.attn = Attention(dim, num_heads, qkv_bias, proj_bias, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        hidden = int(dim * mlp_ratio)
        if gated_mlp:
            self.mlp: nn.Module = GatedMlp(dim, hidden, act_layer=act_layer, bias=mlp_bias)
        else:
            self.mlp = Mlp(dim, hidden, act_layer=act_layer, bias=mlp_bias, drop=drop)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """Apply the block to ``x`` (``B, N, D``)."""
        x = x + self.drop_path(self.attn(self.norm1(x), mask))
        return x + self.drop_path(self.mlp(self.norm2(x)))
