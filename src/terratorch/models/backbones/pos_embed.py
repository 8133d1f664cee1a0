"""Fixed sine-cosine position and coordinate embeddings used by the Prithvi ViT family.

The tables are deterministic functions of the token grid. A model stores the table of its nominal
``(num_frames, img_size)`` grid (a state-dict buffer, as in the published checkpoints) and adapts it
to other inputs with :func:`resize_pos_embed`: recomputed for another frame count, bicubically
resized for another image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """Embed scalar positions with sines and cosines of geometrically spaced frequencies.

    Args:
        dim: Embedding width (must be even): the first half holds sines, the second cosines.
        positions: Any-shaped tensor of positions (flattened).

    Returns:
        ``(N, dim)`` float64 embeddings, ``N = positions.numel()``.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}.")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float64, device=positions.device) / half
    frequencies = 1.0 / (10000.0**exponent)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def split_3d_dims(embed_dim: int) -> tuple[int, int, int]:
    """Widths given to the (width, height, time) axes: 6/16, 6/16 and 4/16 of ``embed_dim``."""
    if embed_dim % 16:
        raise ValueError(f"3-D sin-cos position embeddings need embed_dim divisible by 16, got {embed_dim}.")
    unit = embed_dim // 16
    return 6 * unit, 6 * unit, 4 * unit


def sincos_3d(
    embed_dim: int,
    grid: tuple[int, int, int],
    cls_token: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """3-D position embeddings for a ``(t, h, w)`` token grid, tokens ordered time-major.

    Each token concatenates the 1-D embeddings of its column, row and frame index (in that order,
    the layout of the published Prithvi checkpoints). A leading all-zero row is added for the class
    token when ``cls_token`` is true.

    Args:
        embed_dim: Token width, divisible by 16.
        grid: Number of tokens along time, height and width.
        cls_token: Prepend a zero embedding for the class token.
        device: Where to build the tensor (``meta`` works, for shape-only models).
        dtype: Result dtype (computed in float64 either way).

    Returns:
        ``(1, [1 +] t*h*w, embed_dim)`` tensor.
    """
    t, h, w = grid
    w_dim, h_dim, t_dim = split_3d_dims(embed_dim)
    kwargs = {"dtype": torch.float64, "device": device}
    w_emb = sincos_1d(w_dim, torch.arange(w, **kwargs))  # (w, w_dim)
    h_emb = sincos_1d(h_dim, torch.arange(h, **kwargs))  # (h, h_dim)
    t_emb = sincos_1d(t_dim, torch.arange(t, **kwargs))  # (t, t_dim)
    parts = [
        w_emb[None, None, :, :].expand(t, h, w, w_dim),
        h_emb[None, :, None, :].expand(t, h, w, h_dim),
        t_emb[:, None, None, :].expand(t, h, w, t_dim),
    ]
    table = torch.cat(parts, dim=-1).reshape(t * h * w, embed_dim)
    if cls_token:
        table = torch.cat([torch.zeros(1, embed_dim, **kwargs), table], dim=0)
    return table.to(dtype).unsqueeze(0)


def sincos_1d_like(dim: int, positions: Tensor) -> Tensor:
    """:func:`sincos_1d` computed in the dtype of ``positions`` (float), as the coordinate encoders do.

    Dates and coordinates are large numbers (years ~2000); computing their angles in float32, the
    precision the published ``_tl`` models were trained with, keeps our embeddings identical to theirs.
    """
    if dim % 2:
        raise ValueError(f"sin-cos embedding width must be even, got {dim}.")
    if not positions.is_floating_point():
        positions = positions.float()
    half = dim // 2
    frequencies = torch.arange(half, dtype=positions.dtype, device=positions.device) / (dim / 2.0)
    frequencies = 1.0 / 10000**frequencies
    angles = torch.einsum("m,d->md", positions.reshape(-1), frequencies)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def resize_pos_embed(
    pos_embed: Tensor,
    grid: Sequence[int],
    new_grid: Sequence[int],
) -> Tensor:
    """Fit a ``(1, 1 + t*h*w, E)`` table (class row first) to another token grid.

    A different number of frames recomputes the sin-cos table for the new frame count; a different
    spatial grid resizes the table bicubically (``align_corners=True``), the way the published
    Prithvi models adapt to other image sizes.

    Args:
        pos_embed: Table built for ``grid``.
        grid: ``(t, h, w)`` the table was built for.
        new_grid: ``(t, h, w)`` of the input.
    """
    grid = tuple(int(g) for g in grid)
    new_grid = tuple(int(g) for g in new_grid)
    if new_grid == grid:
        return pos_embed
    embed_dim = pos_embed.shape[-1]
    if new_grid[0] != grid[0]:
        grid = (new_grid[0], *grid[1:])
        pos_embed = sincos_3d(embed_dim, grid, device=pos_embed.device)
    cls_row, table = pos_embed[:, :1], pos_embed[:, 1:]
    if tuple(new_grid[1:]) == tuple(grid[1:]):
        return torch.cat([cls_row, table], dim=1)
    table = table.reshape(*grid, embed_dim).permute(0, 3, 1, 2)
    table = torch.nn.functional.interpolate(table, size=new_grid[1:], mode="bicubic", align_corners=True)
    table = table.permute(0, 2, 3, 1).reshape(1, -1, embed_dim)
    return torch.cat([cls_row, table], dim=1)
