"""Fixed sine/cosine encodings of Clay v1: 2-D patch positions (optionally scaled by the ground
sample distance) and 1-D values such as band wavelengths.

The formulas follow the published Clay v1 model exactly (including its frequency spacing), since
the pretrained weights were trained with them.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["posemb_sincos_1d", "posemb_sincos_2d", "posemb_sincos_2d_with_gsd"]


def _check_dim(dim: int, multiple: int) -> None:
    if dim % multiple:
        raise ValueError(f"Sine/cosine embedding width must be a multiple of {multiple}, got {dim}.")


def _grid(h: int, w: int) -> tuple[Tensor, Tensor]:
    """Row and column index of every cell of an ``h x w`` grid, flattened row-major, as ``[h*w, 1]``."""
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return rows.flatten()[:, None], cols.flatten()[:, None]


def posemb_sincos_2d(
    h: int, w: int, dim: int, temperature: int = 10000, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``[h*w, dim]`` encoding of grid positions: sin/cos of the column, then of the row."""
    _check_dim(dim, 4)
    quarter = dim // 4
    omega = 1.0 / (temperature ** (torch.arange(quarter) / (quarter - 1)))
    rows, cols = _grid(h, w)
    y, x = rows * omega[None, :], cols * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).type(dtype)


def posemb_sincos_2d_with_gsd(
    h: int,
    w: int,
    dim: int,
    gsd: float | Tensor = 1.0,
    temperature: int = 10000,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``[h*w, dim]`` grid encoding whose frequencies are multiplied by the ground sample distance ``gsd``."""
    _check_dim(dim, 4)
    quarter = dim // 4
    omega = torch.arange(quarter) / (quarter - 1)
    omega = 1.0 / (temperature ** (2 * omega / dim)) * gsd
    rows, cols = _grid(h, w)
    y, x = rows * omega[None, :], cols * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1).type(dtype)


def posemb_sincos_1d(
    pos: int | Tensor, dim: int, temperature: int = 10000, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``[N, dim]`` encoding of ``N`` scalar values (or of ``0..pos-1`` for an int): sines, then cosines."""
    _check_dim(dim, 2)
    values = torch.arange(pos) if isinstance(pos, int) else pos
    half = dim // 2
    omega = 1.0 / (temperature ** (torch.arange(half).to(values) / (half - 1)))
    scaled = values[:, None] * omega[None, :]
    return torch.cat((scaled.sin(), scaled.cos()), dim=1).type(dtype)
