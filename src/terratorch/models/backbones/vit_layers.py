"""Building blocks of the Prithvi ViT encoder and its masked-autoencoder decoder.

Parameter names (``patch_embed.proj``, ``blocks.N.attn.qkv``, ``mlp.fc1``, ``temporal_embed_enc.scale``)
follow the published Prithvi checkpoints, so their state dicts load without renaming. The transformer
block is timm's ViT block (pre-norm, ``LayerNorm`` with eps 1e-5), the block the checkpoints were
trained with.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import sincos_1d_like

__all__ = ["LAYER_NORM_EPS", "Block", "LocationEncoder", "PatchEmbed", "TemporalEncoder", "to_3tuple"]

#: ``nn.LayerNorm``'s default, used by every norm of the published models.
LAYER_NORM_EPS = 1e-5


def to_3tuple(patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    """``16`` → ``(1, 16, 16)``; ``(p, p)`` → ``(1, p, p)``; ``(t, p, q)`` stays."""
    if isinstance(patch_size, int):
        return 1, patch_size, patch_size
    sizes = tuple(int(s) for s in patch_size)
    if len(sizes) == 2:
        return 1, *sizes
    if len(sizes) != 3:
        raise ValueError(f"patch_size must be an int, (p, q) or (tubelet, p, q); got {patch_size!r}.")
    return sizes  # type: ignore[return-value]


class PatchEmbed(nn.Module):
    """Cut a ``(B, C, T, H, W)`` clip into ``tubelet x p x q`` tubelets and project each to ``E``.

    Args:
        input_size: Nominal ``(T, H, W)``; sets ``grid_size`` / ``num_patches`` (the size of the
            stored position table).
        patch_size: ``(tubelet, p, q)``.
        in_chans: Input bands ``C``.
        embed_dim: Token width ``E``.
        norm_layer: Optional norm applied to the tokens.
        flatten: Return tokens ``(B, L, E)`` (time-major) instead of the ``(B, E, T', h, w)`` map.
        bias: Bias of the projection.
    """

    def __init__(
        self,
        input_size: Sequence[int] = (1, 224, 224),
        patch_size: Sequence[int] = (1, 16, 16),
        in_chans: int = 3,
        embed_dim: int = 768,
        norm_layer: type[nn.Module] | None = None,
        flatten: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.input_size = tuple(input_size)
        self.patch_size = to_3tuple(patch_size)
        self.grid_size = [s // p for s, p in zip(self.input_size, self.patch_size)]
        if min(self.grid_size) < 1:
            raise ValueError(
                f"patch size {self.patch_size} is larger than the nominal input {self.input_size} "
                "(num_frames, *img_size)."
            )
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        self.flatten = flatten
        self.proj = nn.Conv3d(
            in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size, bias=bias
        )
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` → ``(B, T'·h·w, E)``; a ragged border is dropped with a warning."""
        if any(s % p for s, p in zip(x.shape[-3:], self.patch_size)):
            warnings.warn(
                f"Input {tuple(x.shape[-3:])} is not divisible by the patch size {self.patch_size}; the "
                "border is ignored. Pad the input (backbone_padding / the factory's padding) for "
                "pixel-wise tasks.",
                UserWarning,
                stacklevel=2,
            )
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)
        return self.norm(x)


class _CoordinateEncoder(nn.Module):
    """Sin-cos embedding of two scalar coordinates (half of the width each), times a scale.

    The scale is a learnable parameter initialised to 0.1 when ``trainable_scale`` is true, else a
    constant buffer of 1; it is stored under ``scale`` either way.
    """

    def __init__(self, embed_dim: int, trainable_scale: bool = False) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self._first = embed_dim // 2
        self._second = embed_dim - self._first
        if trainable_scale:
            self.scale = nn.Parameter(torch.full((1,), 0.1))
        else:
            self.register_buffer("scale", torch.ones(1))

    def _embed(self, first: Tensor, second: Tensor, shape: tuple[int, ...]) -> Tensor:
        emb = torch.cat(
            [
                sincos_1d_like(self._first, first).reshape(shape),
                sincos_1d_like(self._second, second).reshape(shape),
            ],
            dim=-1,
        )
        return self.scale * emb


class TemporalEncoder(_CoordinateEncoder):
    """Embed acquisition dates ``(B, T, 2)`` = (year, day of year)."""

    def __init__(self, embed_dim: int, trainable_scale: bool = False) -> None:
        super().__init__(embed_dim, trainable_scale)
        self.year_embed_dim = self._first
        self.julian_day_embed_dim = self._second

    def forward(self, temporal_coords: Tensor, tokens_per_frame: int | None = None) -> Tensor:
        """``(B, T, E)``, or ``(B, T·tokens_per_frame, E)`` with each frame repeated over its tokens."""
        shape = (*temporal_coords.shape[:2], -1)
        emb = self._embed(temporal_coords[:, :, 0].flatten(), temporal_coords[:, :, 1].flatten(), shape)
        if tokens_per_frame is not None:
            emb = emb.repeat_interleave(tokens_per_frame, dim=1)
        return emb


class LocationEncoder(_CoordinateEncoder):
    """Embed the scene centre ``(B, 2)`` = (latitude, longitude) as one ``(B, 1, E)`` vector."""

    def __init__(self, embed_dim: int, trainable_scale: bool = False) -> None:
        super().__init__(embed_dim, trainable_scale)
        self.lat_embed_dim = self._first
        self.lon_embed_dim = self._second

    def forward(self, location_coords: Tensor) -> Tensor:
        """``(B, 1, E)``, added to every token."""
        shape = (location_coords.shape[0], 1, -1)
        return self._embed(location_coords[:, 0].flatten(), location_coords[:, 1].flatten(), shape)
