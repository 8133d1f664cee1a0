"""Finite scalar quantization (FSQ, Mentzer et al. 2023) as used by the TerraMind tokenizers.

Each latent channel ``i`` is squashed to ``[0, 1]`` and rounded to one of ``levels[i]`` values;
the token id is the mixed-radix number of the rounded digits (first channel least significant).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _round_ste(x: Tensor) -> Tensor:
    """Round, passing gradients straight through (the rounding has zero gradient otherwise)."""
    return x + (x.round() - x).detach()


def parse_levels(codebook_size: str) -> list[int]:
    """Parse an FSQ codebook spec such as ``"7-5-5-5-5"`` into its per-channel level counts.

    Raises:
        ValueError: The spec is not dash-separated integers of at least 2.
    """
    try:
        levels = [int(part) for part in str(codebook_size).split("-")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 2:
        raise ValueError(
            f"FSQ codebook_size must be dash-separated level counts of at least 2 (e.g. '7-5-5-5-5'), "
            f"got {codebook_size!r}."
        )
    return levels


class FiniteScalarQuantizer(nn.Module):
    """Quantize ``[B, D, H, W]`` latents channel-wise to fixed levels; no codebook is learned.

    Args:
        codebook_size: Levels per latent channel, dash-separated (``"8-8-8-6-5"``); the number of
            channels of the latent must equal the number of levels.
    """

    def __init__(self, codebook_size: str) -> None:
        super().__init__()
        levels = parse_levels(codebook_size)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int), persistent=False)
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]]), dim=0, dtype=torch.int)
        self.register_buffer("_basis", basis, persistent=False)
        self.codebook_size = math.prod(levels)
        self.register_buffer(
            "codebook", self.indice_to_code(torch.arange(self.codebook_size)), persistent=False
        )

    def latent_to_code_and_indice(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        """Map ``[..., D]`` latents to codes in ``[0, 1]`` and their int32 token ids ``[...]``."""
        steps = self._levels - 1
        digits = _round_ste(torch.sigmoid(latent) * steps)
        indices = (digits * self._basis).sum(dim=-1).to(torch.int)
        return digits / steps, indices

    def indice_to_code(self, indice: Tensor) -> Tensor:
        """Map token ids ``[...]`` to their codes ``[..., D]`` in ``[0, 1]``."""
        digits = (indice.unsqueeze(-1) // self._basis) % self._levels
        return digits / (self._levels - 1)

    def indices_to_embedding(self, indices: Tensor) -> Tensor:
        """Map a ``[B, H, W]`` token grid to the ``[B, D, H, W]`` quantized latent the decoder reads."""
        if indices.dim() != 3:
            raise ValueError(f"Expected token ids of shape [B, H, W], got {tuple(indices.shape)}.")
        return self.indice_to_code(indices).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantize ``[B, D, H, W]``: the codes ``[B, D, H, W]``, a zero loss and the ids ``[B, H, W]``."""
        code, indices = self.latent_to_code_and_indice(x.permute(0, 2, 3, 1))
        # FSQ needs no auxiliary loss; a 1-element zero keeps the reference's return signature
        loss = torch.tensor([0.0], device=x.device, requires_grad=self.training)
        return code.permute(0, 3, 1, 2), loss, indices
