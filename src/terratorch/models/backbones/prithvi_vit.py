"""Prithvi EO vision-transformer backbones (NASA/IBM), written from the published architecture.

A clip ``(B, C, T, H, W)`` (or an image ``(B, C, H, W)``, one frame) is cut into tubelets of
``tubelet_size x p x p`` by a 3-D convolution, given fixed 3-D sin-cos position embeddings (computed
for the actual input grid, so any multiple of ``p`` works), optionally date/location embeddings
(the ``_tl`` variants), a class token, and run through pre-norm transformer blocks.

``forward`` returns one token tensor ``(B, 1 + T'·h·w, E)`` per entry of ``out_indices`` (block
indices; the last block's output is layer-normed), with ``T' = T / tubelet_size``, ``h = H/p``,
``w = W/p``. :meth:`PrithviViT.prepare_features_for_image_model` turns them into ``(B, E·T', h, w)``
maps, which is what ``out_channels`` describes (``E·T'`` per feature).

Registered in ``TERRATORCH_BACKBONE_REGISTRY`` under the names of
:data:`terratorch.registry.manifest.PRITHVI_VARIANTS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import sincos_3d
from terratorch.models.backbones.vit_layers import (
    LAYER_NORM_EPS,
    Block,
    LocationEncoder,
    PatchEmbed3D,
    TemporalEncoder,
)
from terratorch.models.weights import LoadReport, load_pretrained_weights, resolve_weights_file
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY
from terratorch.registry.manifest import PRITHVI_BANDS, PRITHVI_HF_WEIGHTS, PRITHVI_VARIANTS

__all__ = ["PRETRAINED_BANDS", "PrithviViT", "load_prithvi_weights", "random_masking"]

#: Bands (in channel order) the published Prithvi EO checkpoints were trained on.
PRETRAINED_BANDS: list[str] = list(PRITHVI_BANDS)

COORDS_ENCODINGS = ("time", "location")
#: Checkpoint keys that are recomputed (position tables) or optional (coordinate-encoding scales).
FIXED_KEYS = ("pos_embed", "decoder_pos_embed")
OPTIONAL_KEYS = ("temporal_embed_enc.scale", "location_embed_enc.scale")


def _patch_sizes(patch_size: int | Sequence[int], tubelet_size: int) -> tuple[int, int]:
    """Accept ``16`` or the published ``[1, 16, 16]`` (tubelet, patch, patch) form."""
    if isinstance(patch_size, int):
        return patch_size, tubelet_size
    sizes = list(patch_size)
    if len(sizes) == 3 and sizes[1] == sizes[2]:
        return int(sizes[1]), int(sizes[0])
    if len(sizes) == 2 and sizes[0] == sizes[1]:
        return int(sizes[0]), tubelet_size
    raise ValueError(f"patch_size must be an int, (p, p) or (tubelet, p, p); got {patch_size!r}.")


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def random_masking(tokens: Tensor, mask_ratio: float) -> tuple[Tensor, Tensor, Tensor]:
    """Keep a random ``1 - mask_ratio`` share of each sample's tokens.

    Args:
        tokens: ``(B, L, E)`` patch tokens (no class token).
        mask_ratio: Share of tokens to drop, in ``[0, 1)``.

    Returns:
        kept tokens ``(B, L_keep, E)``, mask ``(B, L)`` (1 = dropped) and ``ids_restore`` ``(B, L)``
        (the permutation that puts shuffled tokens back in place).
    """
    B, L, E = tokens.shape
    keep = int(L * (1.0 - mask_ratio))
    if not 0.0 <= mask_ratio < 1.0 or keep < 1:
        raise ValueError(f"mask_ratio must leave at least one of {L} tokens, got {mask_ratio}.")
    ids_shuffle = torch.argsort(torch.rand(B, L, device=tokens.device), dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    kept = torch.gather(tokens, 1, ids_shuffle[:, :keep, None].expand(-1, -1, E))
    mask = torch.ones(B, L, device=tokens.device, dtype=tokens.dtype)
    mask[:, :keep] = 0
    return kept, torch.gather(mask, 1, ids_restore), ids_restore


class PrithviViT(nn.Module):
    """The Prithvi EO encoder.

    Args:
        img_size: Nominal input size (sets the default position table and the checks below; other
            multiples of the patch size work too).
        patch_size: Spatial patch ``p``, or ``(tubelet, p, p)``.
        num_frames: Frames ``T`` per input; 4-D inputs need ``num_frames=1``.
        tubelet_size: Frames per token.
        in_chans: Input bands (``len(bands)`` when bands are given).
        embed_dim: Token width ``E`` (divisible by 16 for the 3-D position table).
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``E``.
        coords_encoding: Any of ``"time"`` (``temporal_coords`` ``(B, T, 2)`` = year, day of year)
            and ``"location"`` (``location_coords`` ``(B, 2)`` = lat, lon).
        coords_scale_learn: Learn the scale of the coordinate embeddings.
        out_indices: Blocks whose outputs ``forward`` returns (default: all).
        bands: Band names of the input channels (kept for weight loading).
    """

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        patch_size: int | Sequence[int] = 16,
        num_frames: int = 1,
        tubelet_size: int = 1,
        in_chans: int = 6,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        coords_encoding: Sequence[str] | None = None,
        coords_scale_learn: bool = False,
        out_indices: Sequence[int] | None = None,
        bands: Sequence[object] | None = None,
    ) -> None:
        super().__init__()
        self.patch_size, self.tubelet_size = _patch_sizes(patch_size, tubelet_size)
        self.img_size = _pair(img_size)
        self.num_frames = num_frames
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.bands = list(bands) if bands is not None else list(range(in_chans))
        if len(self.bands) != in_chans:
            raise ValueError(f"in_chans={in_chans} but {len(self.bands)} bands were given: {self.bands}.")
        grid = self._grid(num_frames, *self.img_size, where="img_size/num_frames")
        self.patch_embed = PatchEmbed3D(in_chans, embed_dim, self.patch_size, self.tubelet_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", sincos_3d(embed_dim, grid), persistent=False)
        self._init_coords(coords_encoding, coords_scale_learn)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.out_indices = self._check_out_indices(out_indices, depth)
        self.out_channels: list[int] = [embed_dim * grid[0]] * len(self.out_indices)
        self._pos_grid = grid
        self._last_grid: tuple[int, int, int] = grid
        self._init_weights()

    # -- construction helpers -----------------------------------------------------------------
    def _init_coords(self, coords_encoding: Sequence[str] | None, scale_learn: bool) -> None:
        coords = list(coords_encoding or [])
        unknown = [c for c in coords if c not in COORDS_ENCODINGS]
        if unknown:
            raise ValueError(
                f"coords_encoding {unknown} not understood; valid entries: {list(COORDS_ENCODINGS)}."
            )
        self.coords_encoding = coords
        self.temporal_encoding = "time" in coords
        self.location_encoding = "location" in coords
        if self.temporal_encoding:
            self.temporal_embed_enc = TemporalEncoder(self.embed_dim, scale_learn)
        if self.location_encoding:
            self.location_embed_enc = LocationEncoder(self.embed_dim, scale_learn)

    @staticmethod
    def _check_out_indices(out_indices: Sequence[int] | None, depth: int) -> list[int]:
        if out_indices is None:
            return list(range(depth))
        resolved = [i + depth if i < 0 else i for i in out_indices]
        bad = [i for i, r in zip(out_indices, resolved) if not 0 <= r < depth]
        if bad:
            raise ValueError(
                f"out_indices {bad} out of range for depth {depth} (valid: 0..{depth - 1} or negative)."
            )
        return resolved

    def _init_weights(self) -> None:
        weight = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def _grid(self, frames: int, height: int, width: int, where: str) -> tuple[int, int, int]:
        p, t = self.patch_size, self.tubelet_size
        if height < p or width < p:
            raise ValueError(f"{where}: image size {height}x{width} is smaller than one {p}x{p} patch.")
        if height % p or width % p:
            raise ValueError(
                f"{where}: image size {height}x{width} is not a multiple of the patch size {p}; pad it "
                "(the model factories pad automatically) or crop it."
            )
        if frames % t:
            raise ValueError(f"{where}: {frames} frames is not a multiple of tubelet_size {t}.")
        return frames // t, height // p, width // p

    # -- forward ------------------------------------------------------------------------------
    def _as_clip(self, x: Tensor) -> Tensor:
        if x.ndim == 4:
            if self.num_frames != 1:
                raise ValueError(
                    "Got a 4-D (B, C, H, W) input but the model was built with "
                    f"num_frames={self.num_frames}; "
                    f"pass (B, C, T, H, W) with T={self.num_frames}, or build it with num_frames=1."
                )
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ValueError(f"Expected (B, C, H, W) or (B, C, T, H, W) input, got shape {tuple(x.shape)}.")
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"Input has {x.shape[1]} channels but the model expects {self.in_chans} (bands {self.bands})."
            )
        if x.shape[2] != self.num_frames:
            raise ValueError(
                f"Input has {x.shape[2]} frames (dim 2 of (B, C, T, H, W)) but the model was built with "
                f"num_frames={self.num_frames}; pass num_frames={x.shape[2]} when building it."
            )
        return x

    def _pos_embed_for(self, grid: tuple[int, int, int], like: Tensor) -> Tensor:
        if grid == self._pos_grid:
            table = self.pos_embed
        else:
            table = sincos_3d(self.embed_dim, grid, device=like.device)
        return table.to(like.dtype)

    def embed(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, tuple[int, int, int]]:
        """Patch tokens with position/coordinate embeddings, the class token, and the token grid.

        Returns:
            tokens ``(B, L, E)``, class token ``(B, 1, E)``, grid ``(T', h, w)`` with ``L = T'·h·w``.
        """
        x = self._as_clip(x)
        self._grid(x.shape[2], x.shape[3], x.shape[4], where="input")
        tokens, grid = self.patch_embed(x)
        pos = self._pos_embed_for(grid, tokens)
        tokens = tokens + pos[:, 1:]
        if self.temporal_encoding and temporal_coords is not None:
            coords = self._check_coords(temporal_coords, (x.shape[0], x.shape[2], 2), "temporal_coords")
            frames = coords[:, :: self.tubelet_size]
            tokens = tokens + self.temporal_embed_enc(frames, grid[1] * grid[2]).to(tokens.dtype)
        if self.location_encoding and location_coords is not None:
            coords = self._check_coords(location_coords, (x.shape[0], 2), "location_coords")
            tokens = tokens + self.location_embed_enc(coords).to(tokens.dtype)
        cls = (self.cls_token + pos[:, :1]).expand(tokens.shape[0], -1, -1)
        self._last_grid = grid
        return tokens, cls, grid

    @staticmethod
    def _check_coords(coords: Tensor, shape: tuple[int, ...], name: str) -> Tensor:
        if tuple(coords.shape) != shape:
            layout = "(B, T, 2) = (year, day of year)" if len(shape) == 3 else "(B, 2) = (lat, lon)"
            raise ValueError(f"{name} must be {layout} with shape {shape}, got {tuple(coords.shape)}.")
        return coords

    def forward(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
    ) -> list[Tensor]:
        """Encode ``x`` ``(B, C, H, W)`` or ``(B, C, T, H, W)``.

        Args:
            x: Input with ``C = len(bands)``, ``T = num_frames``, ``H, W`` multiples of ``p``.
            temporal_coords: ``(B, T, 2)`` (year, day of year); used by ``"time"`` encoding.
            location_coords: ``(B, 2)`` (lat, lon); used by ``"location"`` encoding.

        Returns:
            One ``(B, 1 + T'·h·w, E)`` token tensor per ``out_indices`` entry.
        """
        tokens, cls, _ = self.embed(x, temporal_coords, location_coords)
        x = torch.cat([cls, tokens], dim=1)
        wanted = set(self.out_indices)
        outputs: dict[int, Tensor] = {}
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i > max(wanted):
                break  # later blocks are not needed
            x = block(x)
            if i == last:
                x = self.norm(x)
            if i in wanted:
                outputs[i] = x
        return [outputs[i] for i in self.out_indices]

    def forward_masked(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        mask_ratio: float = 0.75,
    ) -> tuple[Tensor, Tensor, Tensor, tuple[int, int, int]]:
        """Encode a random subset of tokens (masked-autoencoder pretraining).

        Returns:
            latent ``(B, 1 + L_keep, E)`` (normed), mask ``(B, L)``, ids_restore ``(B, L)``, grid.
        """
        tokens, cls, grid = self.embed(x, temporal_coords, location_coords)
        kept, mask, ids_restore = random_masking(tokens, mask_ratio)
        x = torch.cat([cls, kept], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x), mask, ids_restore, grid

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """Turn token tensors ``(B, 1 + T'·h·w, E)`` into maps ``(B, E·T', h, w)`` (channels E-major).

        The grid of the latest forward pass is used, so non-square inputs work; 4-D maps pass through.
        """
        return [self._tokens_to_map(f) for f in features]

    def _tokens_to_map(self, tokens: Tensor) -> Tensor:
        if tokens.ndim == 4:
            return tokens
        B, N, E = tokens.shape
        t, h, w = self._last_grid
        if t * h * w not in (N, N - 1):
            t = self.num_frames // self.tubelet_size
            side = round(((N - 1) / t) ** 0.5)
            if t * side * side != N - 1:
                raise ValueError(
                    f"Cannot reshape {N} tokens into a (T={t}, h, w) grid; run forward first or pass "
                    "square inputs."
                )
            h = w = side
        grid_tokens = tokens[:, N - t * h * w :]
        return grid_tokens.reshape(B, t, h, w, E).permute(0, 4, 1, 2, 3).reshape(B, E * t, h, w)

    def freeze(self) -> None:
        """Stop gradients through every parameter of the encoder."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------
def _check_fixed_tables(state: dict[str, Tensor], model: nn.Module, source: object) -> dict[str, Tensor]:
    """Drop stored sin-cos tables (we recompute them), warning if they differ from ours."""
    ours = dict(model.named_buffers())
    for key in [k for k in state if k.split(".")[-1] in FIXED_KEYS]:
        stored = state.pop(key)
        mine = ours.get(key)
        comparable = mine is not None and mine.shape == stored.shape and mine.device.type != "meta"
        if comparable and not torch.allclose(mine, stored.to(mine.dtype), atol=1e-3):
            warnings.warn(
                f"{key!r} stored in {source} differs from the sin-cos table this model computes; the "
                "checkpoint may come from another position-embedding layout.",
                UserWarning,
                stacklevel=3,
            )
    return state


def load_prithvi_weights(
    model: nn.Module,
    path: str | Path,
    *,
    pretrained_bands: Sequence[object] | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
) -> LoadReport:
    """Load a Prithvi checkpoint (encoder-only, full MAE, Lightning or ``.safetensors``) into ``model``.

    The patch-embedding channels are remapped from ``pretrained_bands`` (default
    :data:`PRETRAINED_BANDS`) to ``model.bands``; decoder weights of an MAE checkpoint are ignored.
    """
    return load_pretrained_weights(
        model,
        path,
        model_bands=model.bands,
        ckpt_bands=list(pretrained_bands) if pretrained_bands is not None else PRETRAINED_BANDS,
        input_layers=["patch_embed.proj.weight"],
        allow_partial=allow_partial,
        weights_only=weights_only,
        ignore_missing=OPTIONAL_KEYS,
        ignore_unexpected=("decoder", "mask_token"),
        state_dict_hook=lambda state: _check_fixed_tables(state, model, repr(str(path))),
    )


def prithvi_weights_file(
    variant: str, ckpt_path: str | Path | None, cache_dir: str | Path | None = None
) -> Path:
    """The local file to load for ``variant``: ``ckpt_path`` or the published file in the HF cache."""
    repo, filename = PRITHVI_HF_WEIGHTS.get(variant.removesuffix("_mae"), (None, None))
    return resolve_weights_file(
        ckpt_path,
        hf_repo_id=repo,
        hf_filenames=[filename] if filename else [],
        model_name=variant,
        cache_dir=cache_dir,
    )


def variant_kwargs(
    variant: str, bands: Sequence[object] | None, in_chans: int | None, coords_encoding: Sequence[str] | None
) -> dict[str, Any]:
    """Architecture kwargs of ``variant`` (published sizes) with the bands and coordinates resolved."""
    arch = dict(PRITHVI_VARIANTS[variant])
    arch.pop("num_frames", None)  # frames of pretraining; the model's num_frames is a build option
    arch["coords_encoding"] = (
        list(arch.pop("coords_encoding", [])) if coords_encoding is None else coords_encoding
    )
    arch["coords_scale_learn"] = bool(arch["coords_encoding"])
    if bands is None:
        bands = PRETRAINED_BANDS if in_chans in (None, len(PRETRAINED_BANDS)) else list(range(in_chans))
    arch["bands"] = list(bands)
    arch["in_chans"] = len(arch["bands"]) if in_chans is None else in_chans
    return arch


def _create_prithvi(
    variant: str,
    *,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    bands: Sequence[object] | None = None,
    pretrained_bands: Sequence[object] | None = None,
    num_frames: int = 1,
    out_indices: Sequence[int] | None = None,
    img_size: int | Sequence[int] = 224,
    coords_encoding: Sequence[str] | None = None,
    in_chans: int | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
    **kwargs: Any,
) -> PrithviViT:
    # find the weights file before building anything, so a wrong path fails fast
    path = prithvi_weights_file(variant, ckpt_path) if pretrained or ckpt_path is not None else None
    arch = variant_kwargs(variant, bands, in_chans, coords_encoding)
    arch.update(kwargs)  # explicit overrides (e.g. depth for shape tests)
    model = PrithviViT(img_size=img_size, num_frames=num_frames, out_indices=out_indices, **arch)
    if path is not None:
        load_prithvi_weights(
            model,
            path,
            pretrained_bands=pretrained_bands,
            allow_partial=allow_partial,
            weights_only=weights_only,
        )
    return model


_BUILD_DOC = """Build the ``{name}`` Prithvi EO backbone ({arch}).

    Keyword Args:
        pretrained: Load the published weights from the local Hugging Face cache (offline: error
            naming the repo/file if absent).
        ckpt_path: Local checkpoint to load instead (always loaded when given).
        bands: Input bands in channel order (default :data:`PRETRAINED_BANDS`); channels of bands
            the checkpoint has are copied, others start fresh.
        pretrained_bands: Bands of the checkpoint (default :data:`PRETRAINED_BANDS`).
        num_frames: Frames per input (default 1).
        out_indices: Blocks to return (default all).
        img_size: Nominal input size (default 224).
        coords_encoding: ``["time", "location"]`` subset (default: the variant's).
        allow_partial: Load what fits and warn instead of failing on missing weights.
        weights_only: ``torch.load`` safety switch; keep ``True`` unless you trust the file.
        **kwargs: Architecture overrides passed to :class:`PrithviViT` (e.g. ``depth``).
    """


def _register(name: str) -> None:
    def build(**kwargs: Any) -> PrithviViT:
        return _create_prithvi(name, **kwargs)

    arch = PRITHVI_VARIANTS[name]
    build.__name__ = build.__qualname__ = name
    build.__doc__ = _BUILD_DOC.format(
        name=name,
        arch=f"embed_dim {arch['embed_dim']}, depth {arch['depth']}, patch {arch['patch_size']}",
    )
    build.__module__ = __name__
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(build)


for _variant in PRITHVI_VARIANTS:
    _register(_variant)
