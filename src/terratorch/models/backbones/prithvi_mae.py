"""Prithvi masked autoencoders (``<variant>_mae`` in ``FULL_MODEL_REGISTRY``) for continued pretraining.

The encoder is :class:`~terratorch.models.backbones.prithvi_vit.PrithviViT` run on a random
``1 - mask_ratio`` share of the tokens; a light transformer decoder re-inserts mask tokens and
predicts the pixels of every tubelet. The loss is the mean squared error over masked tubelets only.
State-dict keys are ``encoder.*`` / ``decoder.*``, the layout of the published full checkpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import sincos_3d
from terratorch.models.backbones.prithvi_vit import (
    OPTIONAL_KEYS,
    PRETRAINED_BANDS,
    PrithviViT,
    _check_fixed_tables,
    prithvi_weights_file,
    variant_kwargs,
)
from terratorch.models.backbones.vit_layers import LAYER_NORM_EPS, Block, LocationEncoder, TemporalEncoder
from terratorch.models.weights import LoadReport, load_pretrained_weights, remap_band_channels
from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY
from terratorch.registry.manifest import PRITHVI_MAE_DECODERS, PRITHVI_VARIANTS

__all__ = ["MAEDecoder", "PrithviMAE", "load_prithvi_mae_weights"]


class MAEDecoder(nn.Module):
    """Predict every tubelet's pixels from the kept tokens of a masked encoder.

    Args:
        embed_dim: Encoder token width ``E``.
        decoder_embed_dim: Decoder width ``D``.
        depth: Decoder blocks.
        num_heads: Decoder attention heads.
        patch_values: Pixels per tubelet ``tubelet·p·p·C``.
        coords_encoding: Coordinate encodings, as in the encoder.
        coords_scale_learn: Learn the coordinate-embedding scales.
        tubelet_size: Frames per token (picks one date per token frame).
    """

    def __init__(
        self,
        embed_dim: int,
        decoder_embed_dim: int,
        depth: int,
        num_heads: int,
        patch_values: int,
        coords_encoding: Sequence[str] = (),
        coords_scale_learn: bool = False,
        tubelet_size: int = 1,
    ) -> None:
        super().__init__()
        self.decoder_embed_dim = decoder_embed_dim
        self.tubelet_size = tubelet_size
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.temporal_encoding = "time" in coords_encoding
        self.location_encoding = "location" in coords_encoding
        if self.temporal_encoding:
            self.temporal_embed_dec = TemporalEncoder(decoder_embed_dim, coords_scale_learn)
        if self.location_encoding:
            self.location_embed_dec = LocationEncoder(decoder_embed_dim, coords_scale_learn)
        self.decoder_blocks = nn.ModuleList(Block(decoder_embed_dim, num_heads) for _ in range(depth))
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=LAYER_NORM_EPS)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_values)
        nn.init.normal_(self.mask_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        latent: Tensor,
        ids_restore: Tensor,
        grid: tuple[int, int, int],
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
    ) -> Tensor:
        """``(B, 1 + L_keep, E)`` latent → ``(B, L, tubelet·p·p·C)`` pixel predictions."""
        x = self.decoder_embed(latent)
        cls, kept = x[:, :1], x[:, 1:]
        B, L = ids_restore.shape
        filler = self.mask_token.expand(B, L - kept.shape[1], -1).to(kept.dtype)
        tokens = torch.cat([kept, filler], dim=1)
        tokens = torch.gather(tokens, 1, ids_restore[..., None].expand(-1, -1, tokens.shape[-1]))
        pos = sincos_3d(self.decoder_embed_dim, grid, device=x.device).to(x.dtype)
        tokens = tokens + pos[:, 1:]
        if self.temporal_encoding and temporal_coords is not None:
            frames = temporal_coords[:, :: self.tubelet_size]
            tokens = tokens + self.temporal_embed_dec(frames, grid[1] * grid[2]).to(x.dtype)
        if self.location_encoding and location_coords is not None:
            tokens = tokens + self.location_embed_dec(location_coords).to(x.dtype)
        x = torch.cat([cls + pos[:, :1], tokens], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]


class PrithviMAE(nn.Module):
    """Prithvi encoder + MAE decoder.

    Args:
        mask_ratio: Default share of tokens hidden from the encoder.
        decoder_embed_dim: Decoder width.
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder heads.
        norm_pix_loss: Normalise each target tubelet to zero mean / unit variance before the loss.
        **encoder_kwargs: :class:`PrithviViT` arguments (``img_size``, ``bands``, ``num_frames``, ...).
    """

    def __init__(
        self,
        mask_ratio: float = 0.75,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        norm_pix_loss: bool = False,
        **encoder_kwargs: Any,
    ) -> None:
        super().__init__()
        self.encoder = PrithviViT(**encoder_kwargs)
        enc = self.encoder
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.bands = enc.bands
        self.decoder = MAEDecoder(
            enc.embed_dim,
            decoder_embed_dim,
            decoder_depth,
            decoder_num_heads,
            patch_values=enc.tubelet_size * enc.patch_size**2 * enc.in_chans,
            coords_encoding=enc.coords_encoding,
            coords_scale_learn=bool(encoder_kwargs.get("coords_scale_learn", False)),
            tubelet_size=enc.tubelet_size,
        )

    def patchify(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` → ``(B, T'·h·w, tubelet·p·p·C)`` (pixel order tubelet, row, col, band)."""
        B, C, T, H, W = x.shape
        t, p = self.encoder.tubelet_size, self.encoder.patch_size
        x = x.reshape(B, C, T // t, t, H // p, p, W // p, p)
        return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, (T // t) * (H // p) * (W // p), t * p * p * C)

    def unpatchify(self, patches: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """Inverse of :meth:`patchify`: ``(B, L, tubelet·p·p·C)`` → ``(B, C, T, H, W)``."""
        B = patches.shape[0]
        nt, nh, nw = grid
        t, p, C = self.encoder.tubelet_size, self.encoder.patch_size, self.encoder.in_chans
        x = patches.reshape(B, nt, nh, nw, t, p, p, C).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(B, C, nt * t, nh * p, nw * p)

    def forward(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mask, encode, decode.

        Args:
            x: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` input.
            temporal_coords: ``(B, T, 2)`` (year, day of year), for ``"time"`` encodings.
            location_coords: ``(B, 2)`` (lat, lon), for ``"location"`` encodings.
            mask_ratio: Overrides the model's default.

        Returns:
            ``(loss, reconstruction, mask)``: scalar loss over masked tubelets, predicted pixels
            ``(B, L, tubelet·p·p·C)`` (see :meth:`unpatchify`), mask ``(B, L)`` with 1 = masked.
        """
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore, grid = self.encoder.forward_masked(
            x, temporal_coords, location_coords, ratio
        )
        pred = self.decoder(latent, ids_restore, grid, temporal_coords, location_coords)
        target = self.patchify(x if x.ndim == 5 else x.unsqueeze(2))
        return self.loss(target, pred, mask), pred, mask

    def loss(self, target: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean squared error per tubelet, averaged over masked tubelets."""
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_token = ((pred - target) ** 2).mean(dim=-1)
        return (per_token * mask).sum() / mask.sum().clamp(min=1)

    def freeze_encoder(self) -> None:
        """Stop gradients through the encoder."""
        self.encoder.freeze()


def _remap_decoder_pred(
    state: dict[str, Tensor],
    model: PrithviMAE,
    ckpt_bands: Sequence[object],
    source: str,
    allow_partial: bool,
) -> dict[str, Tensor]:
    """The decoder's pixel head has one output per band (innermost): remap it like the patch embed."""
    ours = model.state_dict()
    n_model = model.encoder.in_chans
    for suffix in ("weight", "bias"):
        key = f"decoder.decoder_pred.{suffix}"
        if key not in state or state[key].shape[0] % len(ckpt_bands):
            continue
        stored, fresh = state[key], ours[key]
        per_pixel = stored.shape[0] // len(ckpt_bands)
        if per_pixel * n_model != fresh.shape[0]:
            continue  # another patch size: reported as a shape mismatch on load
        remapped = remap_band_channels(
            stored.reshape(per_pixel, len(ckpt_bands), *stored.shape[1:]),
            fresh.reshape(per_pixel, n_model, *fresh.shape[1:]),
            ckpt_bands,
            model.bands,
            dim=1,
            name=key,
            source=source,
            allow_no_match=allow_partial,
        )
        state[key] = remapped.reshape(fresh.shape)
    return state


def load_prithvi_mae_weights(
    model: PrithviMAE,
    path: str | Path,
    *,
    pretrained_bands: Sequence[object] | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
) -> LoadReport:
    """Load a full Prithvi checkpoint (encoder and decoder) with band remapping at both ends."""
    ckpt_bands = list(pretrained_bands) if pretrained_bands is not None else PRETRAINED_BANDS
    source = repr(str(path))

    def hook(state: dict[str, Tensor]) -> dict[str, Tensor]:
        state = _check_fixed_tables(state, model, source)
        return _remap_decoder_pred(state, model, ckpt_bands, source, allow_partial)

    return load_pretrained_weights(
        model,
        path,
        model_bands=model.bands,
        ckpt_bands=ckpt_bands,
        input_layers=["encoder.patch_embed.proj.weight"],
        allow_partial=allow_partial,
        weights_only=weights_only,
        ignore_missing=(
            *(f"encoder.{k}" for k in OPTIONAL_KEYS),
            "decoder.temporal_embed_dec.scale",
            "decoder.location_embed_dec.scale",
        ),
        state_dict_hook=hook,
    )


def _create_mae(
    variant: str,
    *,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    bands: Sequence[object] | None = None,
    pretrained_bands: Sequence[object] | None = None,
    coords_encoding: Sequence[str] | None = None,
    in_chans: int | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
    **kwargs: Any,
) -> PrithviMAE:
    path = prithvi_weights_file(variant, ckpt_path) if pretrained or ckpt_path is not None else None
    arch = variant_kwargs(variant, bands, in_chans, coords_encoding)
    dec_dim, dec_depth, dec_heads = PRITHVI_MAE_DECODERS[variant]
    options = {"decoder_embed_dim": dec_dim, "decoder_depth": dec_depth, "decoder_num_heads": dec_heads}
    model = PrithviMAE(**{**options, **arch, **kwargs})
    if path is not None:
        load_prithvi_mae_weights(
            model,
            path,
            pretrained_bands=pretrained_bands,
            allow_partial=allow_partial,
            weights_only=weights_only,
        )
    return model


def _register(variant: str) -> None:
    name = f"{variant}_mae"

    def build(**kwargs: Any) -> PrithviMAE:
        return _create_mae(variant, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"Build the masked autoencoder of ``{variant}`` (encoder + decoder). Takes the backbone's kwargs "
        "(``pretrained``, ``ckpt_path``, ``bands``, ``num_frames``, ``img_size``, ...) plus ``mask_ratio``, "
        "``norm_pix_loss`` and decoder sizes; ``forward`` returns ``(loss, reconstruction, mask)``."
    )
    globals()[name] = TERRATORCH_FULL_MODEL_REGISTRY.register(build)


for _variant in PRITHVI_VARIANTS:
    _register(_variant)
