"""The plain ViT encoder and decoder of the TerraMind VQ-VAE tokenizers.

Both work on 2-D grids: the encoder maps ``[B, C, H, W]`` images (or class maps) to
``[B, D, H/P, W/P]`` features, the decoder maps such features back to ``[B, C, H, W]``. Parameter
names follow the published tokenizer checkpoints (``pos_emb``, ``proj``, ``blocks.<i>.attn.qkv``,
``norm_mlp``, ``post_mlp``, ``out_proj``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Size presets (``vit_{s,b,l}_{enc,dec}``): token width, depth, heads.
VIT_PRESETS: dict[str, dict[str, int]] = {
    "vit_s": {"dim_tokens": 512, "depth": 8, "num_heads": 8},
    "vit_b": {"dim_tokens": 768, "depth": 12, "num_heads": 12},
    "vit_l": {"dim_tokens": 1024, "depth": 24, "num_heads": 16},
}


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return value if isinstance(value, tuple) else (value, value)


def build_2d_sincos_posemb(h: int, w: int, embed_dim: int = 1024, temperature: float = 10000.0) -> Tensor:
    """Fixed 2-D sine-cosine position embedding of shape ``[1, embed_dim, h, w]`` (MoCo v3 style).

    The first half of the channels encodes the first grid axis, the second half the other one, each
    as ``[sin, cos]`` of ``embed_dim / 4`` geometric frequencies, in the checkpoints' order.
    """
    if embed_dim % 4:
        raise ValueError(f"embed_dim must be divisible by 4 for a 2-D sin-cos embedding, got {embed_dim}.")
    quarter = embed_dim // 4
    dtype = torch.get_default_dtype()
    first, second = torch.meshgrid(torch.arange(w, dtype=dtype), torch.arange(h, dtype=dtype), indexing="ij")
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=dtype) / quarter)
    a = first.flatten()[:, None] * omega[None, :]
    b = second.flatten()[:, None] * omega[None, :]
    emb = torch.cat([a.sin(), a.cos(), b.sin(), b.cos()], dim=1)  # [(h w), D], row-major over (h, w)
    return emb.reshape(h, w, embed_dim).permute(2, 0, 1).unsqueeze(0)


class Mlp(nn.Module):
    """Two-layer perceptron ``fc1 -> act -> fc2 -> dropout``."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
    ) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features or in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the perceptron token-wise."""
        return self.drop(self.fc2(self.act(self.fc1(x))))


class Attention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection."""

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor) -> Tensor:
        """Attend over the ``N`` tokens of ``[B, N, C]``."""
        batch, n, channels = x.shape
        qkv = self.qkv(x).reshape(batch, n, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        dropout = self.attn_drop.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=self.scale)
        return self.proj_drop(self.proj(y.transpose(1, 2).reshape(batch, n, channels)))


class DropPath(nn.Module):
    """Stochastic depth: drop whole residual branches per sample while training."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """Zero the branch for a random subset of samples (rescaling the rest)."""
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block (attention and MLP residual branches)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        norm_layer: Any = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.norm2 = norm_layer(dim)
        self.attn = Attention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        """Run both residual branches on ``[B, N, C]``."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _drop_path_rates(rate: float, depth: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to ``rate`` over ``depth`` blocks."""
    return [rate * i / (depth - 1) for i in range(depth)] if depth > 1 else [0.0] * depth


def _layer_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-6)


def _position_embedding(dim: int, n_h: int, n_w: int, sincos: bool, learnable: bool) -> nn.Parameter:
    if sincos:
        return nn.Parameter(build_2d_sincos_posemb(h=n_h, w=n_w, embed_dim=dim), requires_grad=learnable)
    param = nn.Parameter(torch.zeros(1, dim, n_h, n_w))
    nn.init.trunc_normal_(param, std=0.02)
    return param


def _resized(pos_emb: Tensor, n_h: int, n_w: int) -> Tensor:
    """The position embedding resized (bicubic) to an ``n_h x n_w`` grid, as ``[1, n_h*n_w, D]``."""
    emb = F.interpolate(pos_emb, size=(n_h, n_w), mode="bicubic", align_corners=False)
    return emb.flatten(2).transpose(1, 2)


def _init_weights(module: nn.Module) -> None:
    """MAE-style initialisation: xavier linears (q/k/v treated separately), unit layer norms."""
    for name, m in module.named_modules():
        if isinstance(m, nn.Linear):
            fan_out = m.weight.shape[0] // 3 if name.endswith("qkv") else m.weight.shape[0]
            bound = math.sqrt(6.0 / float(fan_out + m.weight.shape[1]))
            nn.init.uniform_(m.weight, -bound, bound)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight.view(m.weight.shape[0], -1))


def _check_divisible(h: int, w: int, p_h: int, p_w: int) -> None:
    if h % p_h or w % p_w:
        raise ValueError(f"Image size {h}x{w} must be divisible by the patch size {p_h}x{p_w}.")


class ViTEncoder(nn.Module):
    """ViT that maps ``[B, C, H, W]`` images to a ``[B, dim_tokens, H/P, W/P]`` feature grid.

    Class maps are accepted too (``[B, H, W]`` or ``[B, 1, H, W]`` integer ids, one-hot encoded to
    ``in_channels`` classes), which is how LULC is tokenized.

    Args:
        in_channels: Input channels (classes for a class map).
        patch_size: Patch size ``P``.
        resolution: Training image size (sets the size of the stored position embedding).
        dim_tokens: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim_tokens``.
        qkv_bias: Bias on the ``qkv`` projection.
        drop_rate: Dropout after attention/MLP projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Largest stochastic-depth rate (linear over the blocks).
        sincos_pos_emb: Fixed sine-cosine position embedding (else learned, truncated normal).
        learnable_pos_emb: Train the sine-cosine embedding too.
        patch_proj: Patchify with a ``P x P`` convolution (else a 1x1 convolution on a feature grid).
        post_mlp: Add a residual tanh MLP after the blocks (ViT-VQGAN).
    """

    def __init__(
        self,
        *,
        in_channels: int = 3,
        patch_size: int = 16,
        resolution: int = 256,
        dim_tokens: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        sincos_pos_emb: bool = True,
        learnable_pos_emb: bool = False,
        patch_proj: bool = True,
        post_mlp: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.P_H, self.P_W = _pair(patch_size)
        self.H, self.W = _pair(resolution)
        self.dim_tokens = dim_tokens
        self.patch_proj = patch_proj
        _check_divisible(self.H, self.W, self.P_H, self.P_W)
        self.pos_emb = _position_embedding(
            dim_tokens, self.H // self.P_H, self.W // self.P_W, sincos_pos_emb, learnable_pos_emb
        )
        kernel = (self.P_H, self.P_W) if patch_proj else (1, 1)
        self.proj = nn.Conv2d(in_channels, dim_tokens, kernel_size=kernel, stride=kernel)
        rates = _drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(
            *(
                Block(
                    dim_tokens, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate, _layer_norm
                )
                for rate in rates
            )
        )
        if post_mlp:
            self.norm_mlp = _layer_norm(dim_tokens)
            self.post_mlp = Mlp(dim_tokens, int(mlp_ratio * dim_tokens), act_layer=nn.Tanh)
        _init_weights(self)

    def get_num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def _as_channels(self, x: Tensor) -> Tensor:
        """Pass images through; one-hot encode ``[B, H, W]`` / ``[B, 1, H, W]`` class maps."""
        if x.dim() == 4 and x.shape[1] == self.in_channels:
            return x
        if x.dim() == 3 or (x.dim() == 4 and x.shape[1] == 1):
            ids = x.to(torch.long).reshape(x.shape[0], *x.shape[-2:])
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.in_channels):
                raise ValueError(
                    f"Class map values must lie in [0, {self.in_channels - 1}], "
                    f"got range [{int(ids.min())}, {int(ids.max())}]."
                )
            one_hot = F.one_hot(ids, num_classes=self.in_channels).permute(0, 3, 1, 2)
            return one_hot.to(torch.get_default_dtype())
        raise ValueError(
            f"Expected input with {self.in_channels} channels, found shape {tuple(x.shape)}: pass "
            f"[B, {self.in_channels}, H, W] (one-hot/images) or class indices [B, H, W] / [B, 1, H, W]."
        )

    def forward(self, x: Tensor, return_intermediates: bool = False) -> Tensor | list[Tensor]:
        """Encode ``x`` to ``[B, dim_tokens, N_H, N_W]`` (all block outputs if ``return_intermediates``)."""
        x = self._as_channels(x)
        if self.patch_proj:
            _check_divisible(x.shape[-2], x.shape[-1], self.P_H, self.P_W)
            n_h, n_w = x.shape[-2] // self.P_H, x.shape[-1] // self.P_W
        else:
            n_h, n_w = x.shape[-2:]
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = x + _resized(self.pos_emb, n_h, n_w)
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        if hasattr(self, "post_mlp"):
            # kept in float32 under autocast, as the checkpoints were trained
            with torch.autocast(device_type=x.device.type, enabled=False):
                x = x.float() + self.post_mlp(self.norm_mlp(x.float()))
            out[-1] = x
        grids = [t.transpose(1, 2).reshape(t.shape[0], -1, n_h, n_w) for t in out]
        return grids if return_intermediates else grids[-1]


class ViTDecoder(nn.Module):
    """ViT that maps a ``[B, dim_tokens, N_H, N_W]`` grid back to ``[B, out_channels, N_H*P, N_W*P]``.

    Args:
        out_channels: Output channels (class logits for LULC).
        patch_size: Patch size ``P`` each token is unfolded to.
        resolution: Training image size (sets the size of the stored position embedding).
        dim_tokens: Token width.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width over ``dim_tokens``.
        qkv_bias: Bias on the ``qkv`` projection.
        drop_rate: Dropout after attention/MLP projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Largest stochastic-depth rate (linear over the blocks).
        sincos_pos_emb: Fixed sine-cosine position embedding (else learned, truncated normal).
        learnable_pos_emb: Train the sine-cosine embedding too.
        patch_proj: Unfold each token to a ``P x P`` patch (else one pixel per token).
        post_mlp: Add a residual tanh MLP after the blocks (ViT-VQGAN).
    """

    def __init__(
        self,
        *,
        out_channels: int = 3,
        patch_size: int = 16,
        resolution: int = 256,
        dim_tokens: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        sincos_pos_emb: bool = True,
        learnable_pos_emb: bool = False,
        patch_proj: bool = True,
        post_mlp: bool = False,
    ) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.P_H, self.P_W = _pair(patch_size)
        self.H, self.W = _pair(resolution)
        self.dim_tokens = dim_tokens
        self.patch_proj = patch_proj
        _check_divisible(self.H, self.W, self.P_H, self.P_W)
        self.pos_emb = _position_embedding(
            dim_tokens, self.H // self.P_H, self.W // self.P_W, sincos_pos_emb, learnable_pos_emb
        )
        rates = _drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.Sequential(
            *(
                Block(
                    dim_tokens, num_heads, mlp_ratio, qkv_bias, drop_rate, attn_drop_rate, rate, _layer_norm
                )
                for rate in rates
            )
        )
        if post_mlp:
            self.norm_mlp = _layer_norm(dim_tokens)
            self.post_mlp = Mlp(dim_tokens, int(mlp_ratio * dim_tokens), act_layer=nn.Tanh)
        pixels = self.P_H * self.P_W if patch_proj else 1
        self.out_proj = nn.Linear(dim_tokens, out_channels * pixels)
        _init_weights(self)

    def get_num_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        """Decode ``[B, dim_tokens, N_H, N_W]`` to ``[B, out_channels, N_H*P, N_W*P]``."""
        batch, _, n_h, n_w = x.shape
        x = x.flatten(2).transpose(1, 2) + _resized(self.pos_emb, n_h, n_w)
        x = self.blocks(x)
        if hasattr(self, "post_mlp"):
            x = x + self.post_mlp(self.norm_mlp(x))
        x = self.out_proj(x)
        p_h, p_w = (self.P_H, self.P_W) if self.patch_proj else (1, 1)
        x = x.reshape(batch, n_h, n_w, self.out_channels, p_h, p_w).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(batch, self.out_channels, n_h * p_h, n_w * p_w)


def build_vit(kind: str, **kwargs: Any) -> nn.Module:
    """Build a preset codec by the reference's name (``vit_{s,b,l}_enc`` or ``vit_{s,b,l}_dec``).

    Raises:
        ValueError: Unknown preset name (the message lists the valid ones).
    """
    from terratorch.choices import unknown_choice

    size, _, role = kind.rpartition("_")
    valid = [f"{s}_{r}" for s in VIT_PRESETS for r in ("enc", "dec")]
    if size not in VIT_PRESETS or role not in ("enc", "dec"):
        raise ValueError(unknown_choice("ViT tokenizer codec", kind, valid))
    cls = ViTEncoder if role == "enc" else ViTDecoder
    return cls(**VIT_PRESETS[size], **kwargs)
