"""TerraMind encoder embeddings: inputs of each modality → tokens ``x`` plus position/modality ``emb``.

Every embedding returns the input dict with ``"x"`` (``B, N, D`` token embeddings) and ``"emb"``
(``B, N, D`` positional + modality embedding); the encoder adds the two. Parameter and buffer names
are those of the published checkpoints (``proj.weight``, ``pos_emb``, ``mod_emb``, ``token_emb.weight``,
``emb_proj``).

Public names (stable):

- :class:`ImageEncoderEmbedding` — raw images ``(B, C, H, W)``: linear projection of flattened
  patches (channel innermost), fixed 2-D sin-cos positions interpolated to other sizes.
- :class:`ImageTokenEncoderEmbedding` — tokenised images ``(B, h, w)`` (or ``(B, h*w)``) of ids.
- :class:`SequenceEncoderEmbedding` — id sequences ``(B, L)`` (captions, coordinates) with a mask.
- :class:`SequenceEmbEncoderEmbedding` — sequences of precomputed embeddings ``(B, L, E)``.
- :func:`build_1d_sincos_posemb`, :func:`build_2d_sincos_posemb`, :func:`interpolate_pos_encoding`.
- :func:`build_encoder_embedding` — the embedding of one canonical modality key.
- :func:`build_modality_embeddings` — embeddings for a ``modalities`` list (names, aliases, or
  ``{"name": num_channels | nn.Module}`` dicts) plus the user-name → key mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbones.terramind.modalities import MODALITY_INFO, resolve_modality

__all__ = [
    "ImageEncoderEmbedding",
    "ImageTokenEncoderEmbedding",
    "SequenceEmbEncoderEmbedding",
    "SequenceEncoderEmbedding",
    "build_1d_sincos_posemb",
    "build_2d_sincos_posemb",
    "build_encoder_embedding",
    "build_modality_embeddings",
    "interpolate_pos_encoding",
    "pair",
]


def pair(value: int | Sequence[int]) -> tuple[int, int]:
    """``(value, value)`` for an int, the value as a 2-tuple otherwise."""
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


def build_1d_sincos_posemb(max_len: int, embed_dim: int = 1024, temperature: float = 10000.0) -> Tensor:
    """Fixed 1-D sine-cosine positions ``(1, max_len, embed_dim)``: sines then cosines (MoCo v3 style)."""
    if embed_dim % 2:
        raise ValueError(f"1-D sin-cos positions need an even embedding width, got {embed_dim}.")
    dtype = torch.get_default_dtype()
    omega = 1.0 / temperature ** (torch.arange(embed_dim // 2, dtype=dtype) / (embed_dim // 2))
    angles = torch.arange(max_len, dtype=dtype)[:, None] * omega[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1).unsqueeze(0)


def build_2d_sincos_posemb(h: int, w: int, embed_dim: int = 1024, temperature: float = 10000.0) -> Tensor:
    """Fixed 2-D sine-cosine positions ``(1, h*w, embed_dim)`` as in MoCo v3 and TerraMind.

    Rows of the table run over the grid with the *width* index slowest (TerraMind's ``ij`` meshgrid of
    ``(w, h)``); features are ``[sin(w), cos(w), sin(h), cos(h)]``.
    """
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos positions need an embedding width divisible by 4, got {embed_dim}.")
    dtype = torch.get_default_dtype()
    quarter = embed_dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=dtype) / quarter)
    grid_w, grid_h = torch.meshgrid(torch.arange(w), torch.arange(h), indexing="ij")
    out_w = grid_w.reshape(-1, 1).to(dtype) * omega[None]
    out_h = grid_h.reshape(-1, 1).to(dtype) * omega[None]
    return torch.cat([out_w.sin(), out_w.cos(), out_h.sin(), out_h.cos()], dim=1).unsqueeze(0)


def interpolate_pos_encoding(
    pos_embeddings: Tensor, height: int, width: int, patch_size: Sequence[int], dim_tokens: int
) -> Tensor:
    """Resize a square position table ``(1, n*n, D)`` bicubically to the grid of a ``height x width``
    input."""
    side = int(pos_embeddings.shape[1] ** 0.5)
    table = pos_embeddings.reshape(1, side, side, dim_tokens).permute(0, 3, 1, 2)
    size = (height // patch_size[0], width // patch_size[1])
    table = F.interpolate(table, size=size, mode="bicubic", align_corners=False)
    return table.permute(0, 2, 3, 1).reshape(1, -1, dim_tokens)


def _as_dict(d: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
    return d if isinstance(d, dict) else {"tensor": d}


class _SpatialEmbedding(nn.Module):
    """Shared part of the image embeddings: ``pos_emb`` (sin-cos buffer or parameter) and ``mod_emb``."""

    def __init__(
        self,
        patch_size: int | Sequence[int],
        dim_tokens: int | None,
        sincos_pos_emb: bool,
        image_size: int | Sequence[int],
    ) -> None:
        super().__init__()
        self.patch_size = pair(patch_size)
        self.dim_tokens = dim_tokens
        self.sincos_pos_emb = sincos_pos_emb
        self.image_size = pair(image_size)
        self.num_patches = (self.image_size[0] // self.patch_size[0]) * (
            self.image_size[1] // self.patch_size[1]
        )

    def _init_positions(self, dim_tokens: int, init_std: float) -> None:
        self.dim_tokens = dim_tokens
        h = self.image_size[0] // self.patch_size[0]
        w = self.image_size[1] // self.patch_size[1]
        if self.sincos_pos_emb:
            self.register_buffer("pos_emb", build_2d_sincos_posemb(h, w, embed_dim=dim_tokens))
        else:
            self.pos_emb = nn.Parameter(torch.zeros(1, h * w, dim_tokens))
            nn.init.normal_(self.pos_emb, std=init_std)
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim_tokens))
        nn.init.normal_(self.mod_emb, std=init_std)

    def _emb(self, batch: int, height: int, width: int) -> Tensor:
        """Positions (interpolated when the input is not ``image_size``) plus the modality embedding."""
        if (height, width) != self.image_size:
            pos = interpolate_pos_encoding(
                self.pos_emb.clone(), height, width, self.patch_size, self.dim_tokens
            )
        else:
            pos = self.pos_emb
        return (pos + self.mod_emb).expand(batch, -1, -1)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Nothing is excluded from weight decay (as in TerraMind)."""
        return set()


class ImageEncoderEmbedding(_SpatialEmbedding):
    """Patch embedding of a raw image modality: ``(B, C, H, W)`` → ``(B, H/p * W/p, D)``.

    The projection is a bias-free ``nn.Linear`` over flattened patches in ``(ph, pw, C)`` order (band
    innermost), the layout of TerraMind's ``proj.weight`` ``(D, ph * pw * C)``.

    Args:
        num_channels: Input channels (bands).
        patch_size: Patch side (int or pair).
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed sin-cos positions (else learned).
        image_size: Size the position table is built for; other sizes are interpolated.
    """

    def __init__(
        self,
        num_channels: int,
        patch_size: int | Sequence[int],
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        image_size: int | Sequence[int] = 224,
        **kwargs: Any,
    ) -> None:
        super().__init__(patch_size, dim_tokens, sincos_pos_emb, image_size)
        self.num_channels = num_channels
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, projection)."""
        self._init_positions(dim_tokens, init_std)
        patch_pixels = self.patch_size[0] * self.patch_size[1]
        self.proj = nn.Linear(self.num_channels * patch_pixels, dim_tokens, bias=False)

    def forward(self, d: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        """Embed ``d["tensor"]`` (or ``d`` itself), ``(B, C, H, W)`` with H, W multiples of the patch size."""
        d = _as_dict(d)
        x = d["tensor"]
        if x.ndim != 4:
            raise ValueError(f"An image modality expects (B, C, H, W), got shape {tuple(x.shape)}.")
        batch, channels, height, width = x.shape
        ph, pw = self.patch_size
        if height % ph or width % pw:
            raise ValueError(f"Image size {height}x{width} must be divisible by the patch size {ph}x{pw}.")
        if channels * ph * pw != self.proj.in_features:
            raise ValueError(
                f"Expected {self.proj.in_features // (ph * pw)} channels for this modality, got {channels} "
                f"(input shape {tuple(x.shape)})."
            )
        patches = x.reshape(batch, channels, height // ph, ph, width // pw, pw)
        patches = patches.permute(0, 2, 4, 3, 5, 1).reshape(batch, (height // ph) * (width // pw), -1)
        d["x"] = self.proj(patches)
        d["emb"] = self._emb(batch, height, width)
        return d


class ImageTokenEncoderEmbedding(_SpatialEmbedding):
    """Embedding of a tokenised image: ids ``(B, h, w)`` or ``(B, h*w)`` → ``(B, h*w, D)``.

    Args:
        vocab_size: Number of token ids.
        patch_size: Pixels per token side in the full image.
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed sin-cos positions (else learned).
        image_size: Image size the position table is built for.
    """

    def __init__(
        self,
        vocab_size: int,
        patch_size: int | Sequence[int] = 16,
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        image_size: int | Sequence[int] = 224,
        **kwargs: Any,
    ) -> None:
        super().__init__(patch_size, dim_tokens, sincos_pos_emb, image_size)
        self.vocab_size = vocab_size
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, token table)."""
        self._init_positions(dim_tokens, init_std)
        self.token_emb = nn.Embedding(num_embeddings=self.vocab_size, embedding_dim=dim_tokens)

    def forward(self, d: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        """Embed the token ids in ``d["tensor"]`` (or ``d``)."""
        d = _as_dict(d)
        ids = d["tensor"]
        if ids.is_floating_point():
            raise TypeError(
                f"A tokenised modality expects integer token ids (B, h, w), got a {ids.dtype} tensor "
                f"of shape {tuple(ids.shape)}; raw inputs need the modality's tokenizer."
            )
        batch = ids.shape[0]
        if ids.ndim == 3:
            grid = (ids.shape[1], ids.shape[2])
        else:
            side = round(ids[0].numel() ** 0.5)
            if side * side != ids[0].numel():
                raise ValueError(
                    f"Flat image tokens must form a square grid, got {ids[0].numel()} per sample."
                )
            grid = (side, side)
        d["x"] = self.token_emb(ids.reshape(batch, -1))
        d["emb"] = self._emb(batch, grid[0] * self.patch_size[0], grid[1] * self.patch_size[1])
        return d


class _SequenceBase(nn.Module):
    """Shared part of the sequence embeddings: 1-D positions for the unmasked tokens and ``mod_emb``."""

    def __init__(
        self, max_length: int, dim_tokens: int | None, sincos_pos_emb: bool, max_sincos_pos_emb: int
    ):
        super().__init__()
        self.max_length = max_length
        self.dim_tokens = dim_tokens
        self.sincos_pos_emb = sincos_pos_emb
        self.max_sincos_pos_emb = max_sincos_pos_emb

    def _init_positions(self, dim_tokens: int, init_std: float) -> None:
        self.dim_tokens = dim_tokens
        if self.sincos_pos_emb:
            if self.max_length > self.max_sincos_pos_emb:
                raise ValueError(
                    f"max_length ({self.max_length}) is greater than the number of sin-cos positions "
                    f"({self.max_sincos_pos_emb})."
                )
            # The whole table, (1, max_sincos_pos_emb, D), as in the published checkpoints: the
            # reference's ``[: max_length]`` slices the size-1 batch dim, so it keeps every row.
            table = build_1d_sincos_posemb(self.max_sincos_pos_emb, embed_dim=dim_tokens)
            self.register_buffer("pos_emb", table)
        else:
            self.pos_emb = nn.Parameter(torch.zeros(1, self.max_length, dim_tokens))
            nn.init.normal_(self.pos_emb, std=init_std)
        self.mod_emb = nn.Parameter(torch.zeros(1, 1, dim_tokens))
        nn.init.normal_(self.mod_emb, std=init_std)

    def _emb(self, input_mask: Tensor) -> Tensor:
        """Positions counted over the valid tokens only (masked ones get zero) plus ``mod_emb``."""
        batch = input_mask.shape[0]
        position = (~input_mask).int().cumsum(dim=1) - 1
        position[input_mask] = 0
        table = self.pos_emb.expand(batch, -1, -1)
        pos = torch.gather(table, 1, position.unsqueeze(-1).expand(-1, -1, table.shape[2]))
        pos = pos.masked_fill(input_mask.unsqueeze(-1), 0.0)
        return pos + self.mod_emb

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """Nothing is excluded from weight decay (as in TerraMind)."""
        return set()


class SequenceEncoderEmbedding(_SequenceBase):
    """Embedding of id sequences ``(B, L)`` (captions, coordinates); ``input_mask`` True marks padding.

    Args:
        vocab_size: Number of token ids.
        max_length: Longest sequence.
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed sin-cos positions (else learned).
        max_sincos_pos_emb: Rows of the sin-cos table the positions are cut from.
        padding_idx: Id of the padding token.
    """

    def __init__(
        self,
        vocab_size: int,
        max_length: int,
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        max_sincos_pos_emb: int = 512,
        padding_idx: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_length, dim_tokens, sincos_pos_emb, max_sincos_pos_emb)
        self.vocab_size = vocab_size
        self.padding_idx = padding_idx
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, token table)."""
        self._init_positions(dim_tokens, init_std)
        self.token_emb = nn.Embedding(self.vocab_size, dim_tokens, padding_idx=self.padding_idx)

    def forward(self, d: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        """Embed ``d["tensor"]`` ids; ``d["input_mask"]`` defaults to no padding."""
        if not isinstance(d, dict):
            d = {"tensor": d, "input_mask": torch.zeros_like(d, dtype=torch.bool)}
        d["x"] = self.token_emb(d["tensor"])
        d["emb"] = self._emb(d["input_mask"])
        return d


class SequenceEmbEncoderEmbedding(_SequenceBase):
    """Embedding of sequences of precomputed vectors ``(B, L, E)`` (e.g. T5/CLIP text embeddings).

    Args:
        max_length: Longest sequence.
        dim_tokens: Token width; when None, call :meth:`init` later.
        sincos_pos_emb: Fixed sin-cos positions (else learned).
        max_sincos_pos_emb: Rows of the sin-cos table the positions are cut from.
        padding_idx: Kept for interface parity.
        orig_emb_dim: Width ``E`` of the given vectors.
        bottleneck_dim: Width of the optional bottleneck.
        use_bottleneck: Project through ``bottleneck_dim`` first.
    """

    def __init__(
        self,
        max_length: int,
        dim_tokens: int | None = None,
        sincos_pos_emb: bool = True,
        max_sincos_pos_emb: int = 512,
        padding_idx: int = 0,
        orig_emb_dim: int = 4096,
        bottleneck_dim: int = 64,
        use_bottleneck: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(max_length, dim_tokens, sincos_pos_emb, max_sincos_pos_emb)
        self.padding_idx = padding_idx
        self.orig_emb_dim = orig_emb_dim
        self.use_bottleneck = use_bottleneck
        if use_bottleneck:
            self.bottleneck_dim = bottleneck_dim
        if dim_tokens is not None:
            self.init(dim_tokens=dim_tokens)

    def init(self, dim_tokens: int = 768, init_std: float = 0.02) -> None:
        """Create the width-dependent parts (positions, modality embedding, projection)."""
        self._init_positions(dim_tokens, init_std)
        if self.use_bottleneck:
            self.emb_proj: nn.Module = nn.Sequential(
                nn.Linear(self.orig_emb_dim, self.bottleneck_dim), nn.Linear(self.bottleneck_dim, dim_tokens)
            )
        else:
            self.emb_proj = nn.Linear(self.orig_emb_dim, dim_tokens)

    def forward(self, d: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        """Project ``d["tensor"]`` vectors; ``d["input_mask"]`` (``B, L``) defaults to no padding."""
        if not isinstance(d, dict):
            d = {"tensor": d, "input_mask": torch.zeros(d.shape[:2], dtype=torch.bool, device=d.device)}
        d["x"] = self.emb_proj(d["tensor"])
        d["emb"] = self._emb(d["input_mask"])
        return d


def build_encoder_embedding(key: str, dim: int, img_size: int | Sequence[int] = 224) -> nn.Module:
    """The encoder embedding of the canonical modality ``key`` (see :data:`MODALITY_INFO`), ``dim`` wide.

    Pretrained modalities always use their own patch size (16); ``img_size`` sizes the position table.
    """
    info = MODALITY_INFO[key]
    if info["kind"] == "image":
        return ImageEncoderEmbedding(info["num_channels"], info["patch_size"], dim, image_size=img_size)
    if info["kind"] == "image_tokens":
        return ImageTokenEncoderEmbedding(info["vocab_size"], info["patch_size"], dim, image_size=img_size)
    return SequenceEncoderEmbedding(
        info["vocab_size"], info["max_length"], dim, padding_idx=info.get("padding_idx", 0)
    )


def build_modality_embeddings(
    modalities: Sequence[str | Mapping[str, int | nn.Module]],
    img_size: int | Sequence[int] = 224,
    dim: int = 768,
    patch_size: int | Sequence[int] = 16,
) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """Encoder embeddings for ``modalities`` and the mapping user name → embedding key.

    Names and aliases (``"S2L2A"``, ``"untok_sen2l2a@224"``, ...) select pretrained modalities, whose
    embeddings are keyed by the canonical key (so checkpoints load); dict entries add new modalities:
    ``{"name": num_channels}`` gets a fresh :class:`ImageEncoderEmbedding` with ``patch_size``, and
    ``{"name": module}`` uses the given module.

    Raises:
        UnknownModalityError: A name matches no modality (the message lists the valid names).
        TypeError: A dict value is neither an int nor an ``nn.Module``.
        ValueError: Two entries select the same modality.
    """
    embeddings: dict[str, nn.Module] = {}
    mapping: dict[str, str] = {}

    def add(name: str, key: str, module: nn.Module) -> None:
        if key in embeddings:
            first = next(n for n, k in mapping.items() if k == key)
            raise ValueError(
                f"TerraMind modalities {first!r} and {name!r} both select {key!r}; list each modality once."
            )
        embeddings[key] = module
        mapping[name] = key

    for modality in modalities:
        if isinstance(modality, Mapping):
            for name, value in modality.items():
                if isinstance(value, nn.Module):
                    add(name, name, value)
                elif isinstance(value, int) and not isinstance(value, bool):
                    add(name, name, ImageEncoderEmbedding(value, patch_size, dim, image_size=img_size))
                else:
                    raise TypeError(
                        "New TerraMind modalities are given as {'<name>': <num_channels>} (or an nn.Module "
                        f"embedding); got {name!r}: {value!r} ({type(value).__name__}). Pretrained "
                        "modalities are plain names such as 'S2L2A', 'S1GRD', 'DEM', 'LULC'."
                    )
            continue
        key = resolve_modality(modality)
        add(modality, key, build_encoder_embedding(key, dim, img_size))
    return embeddings, mapping
