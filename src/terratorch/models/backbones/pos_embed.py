"""Fixed sine-cosine position and coordinate embeddings used by the Prithvi ViT family.

The embeddings are deterministic functions of the token grid, so they are computed (not learned)
for whatever ``(frames, height, width)`` grid the input produces: a model built for 224 px and one
frame runs on 448 px or four frames without any interpolation of learned tables.
"""

from __future__ import annotations

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

    Returns:
        ``(1, [1 +] t*h*w, embed_dim)`` float32 tensor.
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
    return table.float().unsqueeze(0)
