"""A small Swin3D-style spatio-temporal backbone, given to the benchmark as an ``nn.Module`` instance.

Example (b) of "benchmarking a new backbone": the config names this class in ``backbone:
{class_path: swin3d.Swin3DBackbone, init_args: {...}}`` and the ``PrithviModelFactory`` receives the
built module. Two things make that work:

* ``feature_info``: a ``timm.models.FeatureInfo`` describing each returned feature map (only
  ``num_chs`` is read by the factory; ``reduction`` and ``module`` are informative);
* ``prepare_features_for_image_model``: turns the spatio-temporal token maps ``(B, T, H, W, C)``
  into the ``(B, C, H, W)`` maps image decoders expect (here: mean over time).

Architecture (deliberately small): a 3D patch embedding, then stages of Swin blocks that attend
inside non-overlapping 3D windows (every second block shifts the windows by half a window so that
information crosses window borders), with 2x2 spatial patch merging between stages. Simplified
against the published Video Swin Transformer: no relative position bias and no attention mask for
the shifted windows (tokens rolled across the border attend to each other).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.models import FeatureInfo
from torch import Tensor, nn

__all__ = ["Swin3DBackbone"]


def _windows(x: Tensor, window: Sequence[int]) -> Tensor:
    """``(B, T, H, W, C)`` → ``(B * nW, wt * wh * ww, C)`` (sizes must be multiples of ``window``)."""
    b, t, h, w, c = x.shape
    wt, wh, ww = window
    x = x.view(b, t // wt, wt, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wt * wh * ww, c)


def _merge_windows(windows: Tensor, window: Sequence[int], shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`_windows` back to ``(B, T, H, W, C)``."""
    b, t, h, w = shape
    wt, wh, ww = window
    x = windows.view(b, t // wt, h // wh, w // ww, wt, wh, ww, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, t, h, w, -1)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention among the tokens of one window: ``(N, L, C)`` → ``(N, L, C)``."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        qkv = self.qkv(x).view(n, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(n, length, dim))


class SwinBlock3D(nn.Module):
    """Pre-norm (shifted-)window attention + MLP on ``(B, T, H, W, C)`` token maps."""

    def __init__(self, dim: int, num_heads: int, window: Sequence[int], shift: bool) -> None:
        super().__init__()
        self.window = tuple(window)
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention3D(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        b, t, h, w, _ = x.shape
        window = [min(s, size) for s, size in zip(self.window, (t, h, w))]
        pads = [(-size) % s for s, size in zip(window, (t, h, w))]
        y = F.pad(self.norm1(x), (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        shifts = [s // 2 for s in window] if self.shift else [0, 0, 0]
        if any(shifts):
            y = torch.roll(y, shifts=[-s for s in shifts], dims=(1, 2, 3))
        padded = y.shape[1:4]
        y = _merge_windows(self.attn(_windows(y, window)), window, (b, *padded))
        if any(shifts):
            y = torch.roll(y, shifts=shifts, dims=(1, 2, 3))
        x = x + y[:, :t, :h, :w]
        return x + self.mlp(self.norm2(x))


class PatchMerging3D(nn.Module):
    """Halve H and W, double the channels: ``(B, T, H, W, C)`` → ``(B, T, H/2, W/2, 2C)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[3] % 2, 0, x.shape[2] % 2))
        parts = [x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]
        return self.reduction(self.norm(torch.cat(parts, dim=-1)))


class Swin3DBackbone(nn.Module):
    """Spatio-temporal Swin-style encoder returning one token map per stage.

    Args:
        in_chans: Bands per time step.
        embed_dim: Channels of the first stage (doubled at every later stage).
        depths: Swin blocks per stage.
        num_heads: Attention heads per stage.
        patch_size: ``(t, h, w)`` of the 3D patch embedding.
        window_size: ``(t, h, w)`` attention window (clipped to the feature size).

    Input ``(B, C, T, H, W)`` (or ``(B, C, H, W)``, treated as ``T = 1``). ``forward`` returns a
    list with one ``(B, T', H_i, W_i, C_i)`` map per stage; ``prepare_features_for_image_model``
    averages time and returns ``(B, C_i, H_i, W_i)`` maps.
    """

    def __init__(
        self,
        in_chans: int = 6,
        embed_dim: int = 32,
        depths: Sequence[int] = (2, 2),
        num_heads: Sequence[int] = (2, 4),
        patch_size: Sequence[int] = (1, 4, 4),
        window_size: Sequence[int] = (2, 4, 4),
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv3d(
            in_chans, embed_dim, kernel_size=tuple(patch_size), stride=tuple(patch_size)
        )
        self.embed_norm = nn.LayerNorm(embed_dim)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        info = []
        dim = embed_dim
        for index, (depth, heads) in enumerate(zip(depths, num_heads)):
            if index > 0:
                self.merges.append(PatchMerging3D(dim))
                dim *= 2
            blocks = [SwinBlock3D(dim, heads, window_size, shift=bool(i % 2)) for i in range(depth)]
            self.stages.append(nn.Sequential(*blocks))
            info.append({"num_chs": dim, "reduction": patch_size[1] * 2**index, "module": f"stages.{index}"})
        self.feature_info = FeatureInfo(info, out_indices=tuple(range(len(depths))))
        self.patch_size = patch_size[1] * 2 ** (len(depths) - 1)  # inputs are padded to a multiple of this

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.ndim == 4:
            x = x.unsqueeze(2)
        x = self.embed_norm(self.patch_embed(x).permute(0, 2, 3, 4, 1))
        features = []
        for index, stage in enumerate(self.stages):
            if index > 0:
                x = self.merges[index - 1](x)
            x = stage(x)
            features.append(x)
        return features

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """``(B, T, H, W, C)`` token maps → ``(B, C, H, W)`` maps (mean over time) for image decoders."""
        return [f.mean(dim=1).permute(0, 3, 1, 2).contiguous() for f in features]
