"""Transformer building blocks shared by the Prithvi encoder and its masked-autoencoder decoder.

Parameter names (``patch_embed.proj``, ``blocks.N.attn.qkv``, ``mlp.fc1``, ...) follow the layout of
the published Prithvi checkpoints so their state dicts load without renaming.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import sincos_1d

LAYER_NORM_EPS = 1e-6


class PatchEmbed3D(nn.Module):
    """Cut a ``(B, C, T, H, W)`` clip into tubelets of ``tubelet x patch x patch`` and project them.

    Args:
        in_chans: Input bands ``C``.
        embed_dim: Token width ``E``.
        patch_size: Spatial patch side ``p``.
        tubelet_size: Frames per token ``t``.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int = 1) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel, bias=True)

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """Return tokens ``(B, T/t * H/p * W/p, E)`` (time-major) and the grid ``(T/t, H/p, W/p)``."""
        x = self.proj(x)
        grid = (x.shape[2], x.shape[3], x.shape[4])
        return x.flatten(2).transpose(1, 2), grid


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention`` (fused kernels)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads {num_heads}.")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, E) -> (B, N, E)``."""
        B, N, E = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, E // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(B, N, E))


class Mlp(nn.Module):
    """Two linear layers with a GELU in between."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, E) -> (B, N, E)``."""
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        """``(B, N, E) -> (B, N, E)``."""
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _CoordinateEncoder(nn.Module):
    """Sin-cos embedding of two scalar coordinates, each given half of the width, times a scale.

    The scale is a learnable parameter (initialised to 0.1) when ``trainable_scale`` is true, else a
    constant 1; it is stored under ``scale`` either way so checkpoints load in both settings.
    """

    def __init__(self, embed_dim: int, trainable_scale: bool = False) -> None:
        super().__init__()
        self.first_dim = embed_dim // 2
        self.second_dim = embed_dim - self.first_dim
        if trainable_scale:
            self.scale = nn.Parameter(torch.full((1,), 0.1))
        else:
            self.register_buffer("scale", torch.ones(1))

    def _embed(self, first: Tensor, second: Tensor) -> Tensor:
        emb = torch.cat([sincos_1d(self.first_dim, first), sincos_1d(self.second_dim, second)], dim=1)
        return self.scale * emb.to(self.scale.dtype)


class TemporalEncoder(_CoordinateEncoder):
    """Encode acquisition dates ``(B, T, 2)`` = (year, day of year) into per-token embeddings."""

    def forward(self, temporal_coords: Tensor, tokens_per_frame: int) -> Tensor:
        """Return ``(B, T * tokens_per_frame, E)``: each frame's embedding repeated over its tokens."""
        B, T = temporal_coords.shape[:2]
        emb = self._embed(temporal_coords[..., 0], temporal_coords[..., 1]).reshape(B, T, -1)
        return emb.repeat_interleave(tokens_per_frame, dim=1)


class LocationEncoder(_CoordinateEncoder):
    """Encode the scene centre ``(B, 2)`` = (latitude, longitude) into one embedding per sample."""

    def forward(self, location_coords: Tensor) -> Tensor:
        """Return ``(B, 1, E)``, added to every token."""
        return self._embed(location_coords[:, 0], location_coords[:, 1]).unsqueeze(1)
