"""TerraMind decoder embeddings: the target side of the encoder-decoder (token ids ↔ logits).

A decoder embedding turns the target of one tokenised modality into decoder inputs (``x``: token
embeddings, ``emb``: position + modality embedding, ``ids``: the flat target ids) and maps decoder
outputs back to logits over the modality's vocabulary. Input and output tables are tied
(``to_logits.weight`` is ``token_emb.weight``), and the parameter names are those of the published
checkpoints.

Public names (stable): :class:`ImageTokenDecoderEmbedding` (tokenised images such as LULC),
:class:`SequenceDecoderEmbedding` (captions, coordinates) and :func:`build_decoder_embedding`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.backbones.terramind.embeddings import (
    build_1d_sincos_posemb,
    build_2d_sincos_posemb,
    interpolate_pos_encoding,
    pair,
)
from terratorch.models.backbones.terramind.modalities import MODALITY_INFO

__all__ = ["ImageTokenDecoderEmbedding", "SequenceDecoderEmbedding", "build_decoder_embedding"]


class _TiedTokens(nn.Module):
    """Shared part: ``mod_emb``, the token table and the tied output projection."""

    vocab_size: int
    share_embedding: bool
    padding_idx: int | None = None

    def _init_tokens(self, dim_tokens: int, init_std: float) -> None:
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim_tokens))
        nn.init.normal_(self.mod_emb, std=init_std)
        self.token_emb = nn.Embedding(self.vocab_size, dim_tokens, padding_idx=self.padding_idx)
        self.to_logits = nn.Linear(dim_tokens, self.vocab_size, bias=False)
        if self.share_embedding:
            self.to_logits.weight = self.token_emb.weight

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Nothing is excluded from weight decay (as in TerraMind)."""
        return set()

    def forward_logits(self, x: Tensor) -> Tensor:
        """Decoder outputs ``(..., D)`` → logits ``(..., vocab_size)``."""
        return self.to_logits(x)


class ImageTokenDecoderEmbedding(_TiedTokens):
    """Target embedding of a tokenised image modality (ids on the ``h x w`` token grid).

    In the decoder the target tokens themselves are replaced by the mask token; what matters is
    ``emb`` (2-D sin-cos positions, interpolated for other grids, plus ``mod_emb``).

    Args:
        vocab_size: Number of token ids.
        patch_size: Pixels per token side in the full image.
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed sin-cos positions (else learned).
        image_size: Image size the position table is built for.
        share_embedding: Tie ``to_logits`` to ``token_emb``.
    """

    def __init__(
        self,
        vocab_size: int,
        patch_size: int | Sequence[int] = 16,
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        image_size: int | Sequence[int] = 224,
        share_embedding: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.patch_size = pair(patch_size)
        self.dim_tokens = dim_tokens
        self.sincos_pos_emb = sincos_pos_emb
        self.image_size = pair(image_size)
        self.num_patches = (self.image_size[0] // self.patch_size[0]) * (
            self.image_size[1] // self.patch_size[1]
        )
        self.share_embedding = share_embedding
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, token table, logits)."""
        self.dim_tokens = dim_tokens
        h = self.image_size[0] // self.patch_size[0]
        w = self.image_size[1] // self.patch_size[1]
        if self.sincos_pos_emb:
            self.register_buffer("pos_emb", build_2d_sincos_posemb(h, w, embed_dim=dim_tokens))
        else:
            self.pos_emb = nn.Parameter(torch.zeros(1, h * w, dim_tokens))
            nn.init.normal_(self.pos_emb, std=init_std)
        self._init_tokens(dim_tokens, init_std)

    def forward_embed(self, d: dict[str, Tensor]) -> dict[str, Tensor]:
        """Add ``x`` (``B, N, D``), ``emb`` (``B, N, D``) and flat ``ids`` (``B, N``) to the target dict.

        Raises:
            ValueError: The ids do not form a square token grid.
        """
        ids = d["tensor"]
        batch = ids.shape[0]
        ids = ids.reshape(batch, -1)
        side = round(ids.shape[1] ** 0.5)
        if side * side != ids.shape[1]:
            raise ValueError(f"Image tokens must form a square grid, got {ids.shape[1]} per sample.")
        pixels = side * self.patch_size[0]
        pos = self.pos_emb
        if (pixels, pixels) != self.image_size:
            pos = interpolate_pos_encoding(pos.clone(), pixels, pixels, self.patch_size, self.dim_tokens)
        d["x"] = self.token_emb(ids)
        d["emb"] = (pos + self.mod_emb).expand(batch, -1, -1)
        d["ids"] = ids
        return d


class SequenceDecoderEmbedding(_TiedTokens):
    """Target embedding of a token sequence (captions, coordinates).

    Positions count the target tokens only (``target_mask`` False), so a target keeps its positions
    wherever it sits in the sequence.

    Args:
        vocab_size: Number of token ids.
        max_length: Longest target sequence.
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed 1-D sin-cos positions (else learned).
        max_sincos_pos_emb: Size of the sin-cos table the positions are cut from.
        padding_idx: Padding id of the token table.
        share_embedding: Tie ``to_logits`` to ``token_emb``.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        max_sincos_pos_emb: int = 512,
        padding_idx: int = 0,
        share_embedding: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.dim_tokens = dim_tokens
        self.sincos_pos_emb = sincos_pos_emb
        self.max_sincos_pos_emb = max_sincos_pos_emb
        self.padding_idx = padding_idx
        self.share_embedding = share_embedding
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, token table, logits).

        Raises:
            ValueError: ``max_length`` exceeds the sin-cos table.
        """
        self.dim_tokens = dim_tokens
        if self.sincos_pos_emb:
            if self.max_length > self.max_sincos_pos_emb:
                raise ValueError(
                    f"max_length ({self.max_length}) is larger than the sin-cos position table "
                    f"({self.max_sincos_pos_emb}); raise max_sincos_pos_emb."
                )
            # published layout: the whole (1, max_sincos_pos_emb, D) table; max_length rows are used
            self.register_buffer(
                "pos_emb", build_1d_sincos_posemb(self.max_sincos_pos_emb, embed_dim=dim_tokens)
            )
        else:
            self.pos_emb = nn.Parameter(torch.zeros(1, self.max_length, dim_tokens))
            nn.init.normal_(self.pos_emb, std=init_std)
        self._init_tokens(dim_tokens, init_std)

    def forward_embed(self, d: dict[str, Tensor]) -> dict[str, Tensor]:
        """Add ``x`` (token embeddings), ``emb`` (target positions + ``mod_emb``) and ``ids`` to ``d``."""
        ids = d["tensor"]
        batch = ids.shape[0]
        target_mask = d["target_mask"]
        position = (~target_mask).int().cumsum(dim=1) - 1
        position[target_mask] = 0
        position[position >= self.max_length] = 0  # over-long targets are cut by the decoder
        table = self.pos_emb.expand(batch, -1, -1)
        pos = torch.gather(table, 1, position.unsqueeze(-1).expand(-1, -1, table.shape[2]))
        pos[target_mask] = 0
        d["x"] = self.token_emb(ids)
        d["emb"] = pos + self.mod_emb
        d["ids"] = ids
        return d


def build_decoder_embedding(key: str, dim: int, img_size: int | Sequence[int] = 224) -> nn.Module:
    """The decoder embedding of the canonical tokenised modality ``key``, ``dim`` wide.

    Raises:
        ValueError: ``key`` is a raw (untokenised) modality, which the decoder cannot predict.
    """
    info = MODALITY_INFO[key]
    if info["kind"] == "image_tokens":
        return ImageTokenDecoderEmbedding(info["vocab_size"], info["patch_size"], dim, image_size=img_size)
    if info["kind"] == "sequence":
        return SequenceDecoderEmbedding(
            info["vocab_size"], info["max_length"], dim, padding_idx=info.get("padding_idx", 0)
        )
    raise ValueError(
        f"TerraMind decodes only tokenised modalities; {key!r} is a raw image modality. Use its "
        f"tokenised counterpart (e.g. {key.replace('untok_', 'tok_')!r})."
    )
