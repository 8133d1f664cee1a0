"""Prithvi EO encoder (:class:`PrithviViT`) and masked autoencoder (:class:`PrithviMAE`).

A clip ``(B, C, T, H, W)`` (or an image ``(B, C, H, W)`` when the model has one frame) is cut into
tubelets by a 3-D convolution, given a fixed 3-D sin-cos position table (stored as the
``pos_embed`` buffer for the nominal ``num_frames x img_size`` grid and adapted to other inputs),
optional date/location embeddings (the ``_tl`` variants), a class token, and run through timm ViT
blocks. State-dict keys and numerics are those of the published checkpoints and of TerraTorch 1.2.

Two ways to run the encoder:

* :meth:`PrithviViT.forward_features` returns one ``(B, 1 + L, E)`` token tensor per block (the last
  one layer-normed). Backbones built from the registry (``out_indices`` set) use it as ``forward``.
* Without ``out_indices``, ``forward`` is the masked-autoencoder pass returning
  ``(latent, mask, ids_restore)``, which :class:`PrithviMAE` uses.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from terratorch.models.backbones.pos_embed import resize_pos_embed, sincos_1d, sincos_1d_like, sincos_3d
from terratorch.models.backbones.vit_layers import (
    Block,
    LocationEncoder,
    PatchEmbed,
    TemporalEncoder,
    to_3tuple,
)

__all__ = [
    "LocationEncoder",
    "MAEDecoder",
    "PatchEmbed",
    "PrithviMAE",
    "PrithviViT",
    "TemporalEncoder",
    "get_1d_sincos_pos_embed_from_grid",
    "get_3d_sincos_pos_embed",
]

logger = logging.getLogger(__name__)


def get_3d_sincos_pos_embed(
    embed_dim: int, grid_size: Sequence[int], add_cls_token: bool = False
) -> np.ndarray:
    """Sin-cos table ``(t·h·w [+1], E)`` for a ``(t, h, w)`` grid as a float64 numpy array."""
    return sincos_3d(embed_dim, tuple(grid_size), cls_token=add_cls_token, dtype=torch.float64)[0].numpy()


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """Sin-cos embedding ``(M, D)`` of ``M`` positions as a float64 numpy array."""
    return sincos_1d(embed_dim, torch.as_tensor(np.asarray(pos, dtype=np.float64))).numpy()


def _get_1d_sincos_embed_from_grid_torch(embed_dim: int, pos: Tensor) -> Tensor:
    """Sin-cos embedding ``(M, embed_dim)`` of ``M`` float positions, computed in ``pos.dtype``.

    The tensor counterpart of :func:`get_1d_sincos_pos_embed_from_grid` used by the date and
    location encoders (kept under its TerraTorch 1.2 name). Raises ``ValueError`` for an odd width or
    non-float positions (the reference asserted).
    """
    if pos.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"positions must be float32, float16 or bfloat16, got {pos.dtype}.")
    return sincos_1d_like(embed_dim, pos)


def _interpolate_pos_encoding(
    pos_embed: Tensor,
    grid_size: Sequence[int],
    patch_size: Sequence[int],
    shape: Sequence[int],
    embed_dim: int,
) -> Tensor:
    """Fit a ``(1, 1 + t*h*w, E)`` position table built for ``grid_size`` to an input of ``shape``.

    ``shape`` is the ``(T, H, W)`` of the input in pixels/frames and ``patch_size`` the tubelet size;
    see :func:`~terratorch.models.backbones.pos_embed.resize_pos_embed` for how the table is adapted.
    ``embed_dim`` must equal the table width (kept for the TerraTorch 1.2 signature).
    """
    if pos_embed.shape[-1] != embed_dim:
        raise ValueError(f"embed_dim {embed_dim} does not match the table width {pos_embed.shape[-1]}.")
    return resize_pos_embed(pos_embed, grid_size, _grid_of(shape, patch_size))


def _init_linear_and_norm(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def _grid_of(sample_shape: Sequence[int], patch_size: Sequence[int]) -> list[int]:
    return [int(s) // int(p) for s, p in zip(sample_shape, patch_size)]


class PrithviViT(nn.Module):
    """The Prithvi EO encoder.

    Args:
        img_size: Nominal image size (sets the stored position table; other sizes are resized to).
        patch_size: ``(tubelet, p, p)`` or an int ``p`` (tubelet 1).
        num_frames: Frames ``T`` per input; 4-D inputs are accepted when it is 1.
        in_chans: Input bands.
        embed_dim: Token width ``E`` (divisible by 16).
        depth: Transformer blocks.
        num_heads: Attention heads.
        mlp_ratio: MLP hidden width / ``E``.
        norm_layer: Norm class of the blocks and the final norm.
        coords_encoding: Subset of ``["time", "location"]``: add date (``temporal_coords``
            ``(B, T, 2)`` = year, day of year) and/or location (``location_coords`` ``(B, 2)`` =
            lat, lon) embeddings.
        coords_scale_learn: Learn the scale of the coordinate embeddings.
        drop_path: Stochastic-depth rate of every block.
        vpt: Add visual prompt tokens (``vpt_n_tokens`` per block, kept trainable by :meth:`freeze`).
        vpt_n_tokens: Prompt tokens per block (required with ``vpt``).
        vpt_dropout: Dropout on the prompt tokens.
        out_indices: Blocks ``forward`` returns (switches ``forward`` to the feature pass); ``None``
            keeps the masked-autoencoder ``forward``.
        **kwargs: Other options of model configs (``bands``, ``pretrain_img_size``, ...); accepted
            and ignored, as TerraTorch 1.2 does.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int, int] = (1, 16, 16),
        num_frames: int = 1,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        coords_encoding: list[str] | None = None,
        coords_scale_learn: bool = False,
        drop_path: float = 0.0,
        vpt: bool = False,
        vpt_n_tokens: int | None = None,
        vpt_dropout: float = 0,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            logger.debug("PrithviViT ignores options %s", sorted(kwargs))
        self.in_chans = in_chans
        self.num_frames = num_frames
        self.embed_dim = embed_dim
        self.img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        patch_size = to_3tuple(patch_size)
        self.patch_embed = PatchEmbed(
            input_size=(num_frames, *self.img_size),
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
        )
        self.out_channels = [embed_dim * self.patch_embed.grid_size[0]] * depth

        coords = list(coords_encoding or [])
        unknown = [c for c in coords if c not in ("time", "location")]
        if unknown:
            raise ValueError(
                f"coords_encoding {unknown} not understood; use a subset of ['time', 'location']."
            )
        self.coords_encoding = coords
        self.temporal_encoding = "time" in coords
        self.location_encoding = "location" in coords
        if self.temporal_encoding:
            if patch_size[0] != 1:
                raise ValueError(f"Temporal encoding needs a tubelet size of 1, got patch_size {patch_size}.")
            self.temporal_embed_enc = TemporalEncoder(embed_dim, coords_scale_learn)
        if self.location_encoding:
            self.location_embed_enc = LocationEncoder(embed_dim, coords_scale_learn)

        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer, drop_path=drop_path)
            for _ in range(depth)
        )
        self.norm = norm_layer(embed_dim)

        self.vpt = vpt
        self.vpt_n_tokens = vpt_n_tokens
        self.vpt_dropout = vpt_dropout
        if vpt:
            if vpt_n_tokens is None:
                raise ValueError("vpt=True needs vpt_n_tokens (prompt tokens per block).")
            self.vpt_prompt_embeddings = nn.ParameterList(
                nn.Parameter(torch.zeros(1, vpt_n_tokens, embed_dim)) for _ in range(depth)
            )
            self.vpt_dropout_layers = nn.ModuleList(nn.Dropout(vpt_dropout) for _ in range(depth))

        self.out_indices = list(out_indices) if out_indices is not None else None
        if self.out_indices is not None:  # one entry per returned feature
            self.out_channels = [self.out_channels[i] for i in self.out_indices]
        self._last_grid: list[int] | None = None
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Fill the position table and initialise weights (xavier linears, N(0, 0.02) class token)."""
        table = sincos_3d(self.embed_dim, tuple(self.patch_embed.grid_size))
        self.pos_embed.data.copy_(table.to(self.pos_embed.device))
        weight = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(_init_linear_and_norm)
        if self.vpt:
            bound = math.sqrt(6.0 / float(3 * math.prod(self.patch_embed.patch_size[1:]) + self.embed_dim))
            for emb in self.vpt_prompt_embeddings:
                nn.init.uniform_(emb, -bound, bound)

    # -- pieces -------------------------------------------------------------------------------
    @staticmethod
    def random_masking(
        sequence: Tensor, mask_ratio: float, noise: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Keep the ``1 - mask_ratio`` share of tokens with the smallest ``noise`` (random by default).

        Returns:
            kept tokens ``(B, L_keep, E)``, mask ``(B, L)`` (1 = dropped), ``ids_restore`` ``(B, L)``.
        """
        batch, length, dim = sequence.shape
        keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(batch, length, device=sequence.device)
        ids_shuffle = torch.argsort(noise, dim=1).to(sequence.device)
        ids_restore = torch.argsort(ids_shuffle, dim=1).to(sequence.device)
        kept = torch.gather(sequence, 1, ids_shuffle[:, :keep].unsqueeze(-1).expand(-1, -1, dim))
        mask = torch.ones(batch, length, device=sequence.device)
        mask[:, :keep] = 0
        return kept, torch.gather(mask, 1, ids_restore), ids_restore

    def interpolate_pos_encoding(self, sample_shape: Sequence[int]) -> Tensor:
        """Position table ``(1, 1 + L, E)`` for an input of ``(T, H, W) = sample_shape``."""
        grid = _grid_of(sample_shape, self.patch_embed.patch_size)
        return resize_pos_embed(self.pos_embed, self.patch_embed.grid_size, grid)

    def _embed(
        self, x: Tensor, temporal_coords: Tensor | None, location_coords: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Patch tokens with position/coordinate embeddings, and the class token with its position."""
        if x.ndim == 4 and self.patch_embed.input_size[0] == 1:
            x = x.unsqueeze(2)
        if x.ndim != 5:
            raise ValueError(
                f"Expected a (B, C, T, H, W) input (or (B, C, H, W) with num_frames=1), got {tuple(x.shape)}."
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(f"Input has {x.shape[1]} channels, the model expects in_chans={self.in_chans}.")
        sample_shape = x.shape[-3:]
        self._last_grid = _grid_of(sample_shape, self.patch_embed.patch_size)
        tokens = self.patch_embed(x)
        pos = self.interpolate_pos_encoding(sample_shape)
        tokens = tokens + pos[:, 1:, :]
        if self.temporal_encoding and temporal_coords is not None:
            tokens = tokens + self.temporal_embed_enc(temporal_coords, tokens.shape[1] // self.num_frames)
        if self.location_encoding and location_coords is not None:
            tokens = tokens + self.location_embed_enc(location_coords)
        cls = self.cls_token + pos[:, :1, :]
        return tokens, cls.expand(tokens.shape[0], -1, -1)

    def _run_blocks(self, x: Tensor, collect: bool) -> list[Tensor]:
        outputs = []
        for idx, block in enumerate(self.blocks):
            if self.vpt:
                prompts = self.vpt_dropout_layers[idx](
                    self.vpt_prompt_embeddings[idx].expand(x.shape[0], -1, -1)
                )
                x = torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)
            x = block(x)
            if self.vpt:
                x = torch.cat([x[:, :1], x[:, 1 + self.vpt_n_tokens :]], dim=1)
            if collect:
                outputs.append(x.clone())
        x = self.norm(x)
        if collect:
            outputs[-1] = x
            return outputs
        return [x]

    # -- passes -------------------------------------------------------------------------------
    def forward_masked(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        mask_ratio: float = 0.75,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Encode a random ``1 - mask_ratio`` share of the tokens.

        Returns:
            latent ``(B, 1 + L_keep, E)`` (normed), mask ``(B, L)`` (1 = masked), ``ids_restore``.
        """
        tokens, cls = self._embed(x, temporal_coords, location_coords)
        tokens, mask, ids_restore = self.random_masking(tokens, mask_ratio)
        latent = self._run_blocks(torch.cat([cls, tokens], dim=1), collect=False)[0]
        return latent, mask, ids_restore

    def forward_features(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
    ) -> list[Tensor]:
        """All block outputs ``(B, 1 + T'·h·w, E)``, the last one layer-normed."""
        tokens, cls = self._embed(x, temporal_coords, location_coords)
        return self._run_blocks(torch.cat([cls, tokens], dim=1), collect=True)

    def forward(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        mask_ratio: float = 0.75,
    ) -> list[Tensor] | tuple[Tensor, Tensor, Tensor]:
        """Feature pass (``out_indices`` set: the selected block outputs) or masked pass (otherwise).

        Args:
            x: ``(B, C, T, H, W)``, or ``(B, C, H, W)`` when ``num_frames`` is 1.
            temporal_coords: ``(B, T, 2)`` (year, day of year), used with ``"time"`` encoding.
            location_coords: ``(B, 2)`` (lat, lon), used with ``"location"`` encoding.
            mask_ratio: Share of tokens hidden in the masked pass.
        """
        if self.out_indices is None:
            return self.forward_masked(x, temporal_coords, location_coords, mask_ratio)
        features = self.forward_features(x, temporal_coords, location_coords)
        return [features[i] for i in self.out_indices]

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """Token tensors ``(B, 1 + T'·h·w, E)`` → maps ``(B, T'·E, h, w)`` (frame-major channels).

        Uses the grid of the latest forward pass when it fits the token count (so non-square inputs
        work), else the nominal frame count and a square grid.
        """
        t_nominal = self.patch_embed.input_size[0] // self.patch_embed.patch_size[0]
        out = []
        for x in features:
            tokens = x[:, 1:, :]
            batch, count, embed = tokens.shape
            grid = self._last_grid
            if grid is None or math.prod(grid) != count or grid[0] != t_nominal:
                per_frame = count // t_nominal
                h = int(np.sqrt(per_frame))
                grid = [t_nominal, h, per_frame // h]
            t, h, w = grid
            maps = (
                tokens.reshape(batch, t, h, w, embed).permute(0, 1, 4, 2, 3).reshape(batch, t * embed, h, w)
            )
            out.append(maps)
        return out

    def freeze(self) -> None:
        """Stop gradients through every parameter except the visual prompt tokens."""
        for name, param in self.named_parameters():
            if "vpt_prompt_embeddings" not in name:
                param.requires_grad_(False)


class MAEDecoder(nn.Module):
    """Transformer decoder of the Prithvi MAE: re-inserts mask tokens and predicts tubelet pixels.

    Args:
        patch_size: ``(tubelet, p, p)`` or ``p``.
        grid_size: Nominal token grid ``(T', h, w)`` (size of ``decoder_pos_embed``).
        in_chans: Bands to predict.
        encoder_embed_dim: Width of the encoder tokens.
        decoder_embed_dim: Decoder width.
        depth: Decoder blocks.
        num_heads: Decoder heads.
        mlp_ratio: MLP hidden width / decoder width.
        norm_layer: Norm class.
        coords_encoding: As in :class:`PrithviViT`.
        coords_scale_learn: Learn the coordinate-embedding scales.
    """

    def __init__(
        self,
        patch_size: int | tuple[int, int, int] = (1, 16, 16),
        grid_size: list[int] | tuple[int, int, int] = (3, 14, 14),
        in_chans: int = 3,
        encoder_embed_dim: int = 1024,
        decoder_embed_dim: int = 512,
        depth: int = 8,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        coords_encoding: list[str] | None = None,
        coords_scale_learn: bool = False,
    ) -> None:
        super().__init__()
        self.decoder_embed = nn.Linear(encoder_embed_dim, decoder_embed_dim, bias=True)
        self.decoder_embed_dim = decoder_embed_dim
        self.grid_size = list(grid_size)
        self.patch_size = to_3tuple(patch_size)
        self.num_frames = self.grid_size[0] * self.patch_size[0]
        num_patches = math.prod(self.grid_size)
        coords = coords_encoding or []
        self.temporal_encoding = "time" in coords
        self.location_encoding = "location" in coords
        if self.temporal_encoding:
            self.temporal_embed_dec = TemporalEncoder(decoder_embed_dim, coords_scale_learn)
        if self.location_encoding:
            self.location_embed_dec = LocationEncoder(decoder_embed_dim, coords_scale_learn)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.register_buffer("decoder_pos_embed", torch.zeros(1, num_patches + 1, decoder_embed_dim))
        self.decoder_blocks = nn.ModuleList(
            Block(decoder_embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
            for _ in range(depth)
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, math.prod(self.patch_size) * in_chans, bias=True)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Fill the position table; xavier linears, N(0, 0.02) mask token."""
        self.decoder_pos_embed.data.copy_(sincos_3d(self.decoder_embed_dim, tuple(self.grid_size)))
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_linear_and_norm)

    def interpolate_pos_encoding(self, sample_shape: Sequence[int]) -> Tensor:
        """Decoder position table for an input of ``(T, H, W) = sample_shape``."""
        grid = _grid_of(sample_shape, self.patch_size)
        return resize_pos_embed(self.decoder_pos_embed, self.grid_size, grid)

    def forward(
        self,
        hidden_states: Tensor,
        ids_restore: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        input_size: Sequence[int] | None = None,
    ) -> Tensor:
        """Latent ``(B, 1 + L_keep, E)`` → pixel predictions ``(B, L, tubelet·p·p·C)``.

        ``input_size`` is the shape of the (5-D) input; its last three entries pick the grid.
        """
        x = self.decoder_embed(hidden_states)
        cls = x[:, :1, :]
        filler = self.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x = torch.cat([x[:, 1:, :], filler], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]).to(x.device))
        if input_size is None:
            grid_shape = [g * p for g, p in zip(self.grid_size, self.patch_size)]
        else:
            grid_shape = list(input_size)[-3:]
        pos = self.interpolate_pos_encoding(grid_shape)
        cls = cls + pos[:, :1, :]
        x = x + pos[:, 1:, :]
        if self.temporal_encoding and temporal_coords is not None:
            x = x + self.temporal_embed_dec(temporal_coords, x.shape[1] // self.num_frames)
        if self.location_encoding and location_coords is not None:
            x = x + self.location_embed_dec(location_coords)
        x = torch.cat([cls, x], dim=1)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:, :]


class PrithviMAE(nn.Module):
    """Prithvi masked autoencoder: :class:`PrithviViT` encoder + :class:`MAEDecoder`.

    Args:
        img_size, patch_size, num_frames, in_chans, embed_dim, depth, num_heads, mlp_ratio,
            norm_layer, coords_encoding, coords_scale_learn, drop_path: Encoder options (see
            :class:`PrithviViT`); the decoder shares ``patch_size``, ``mlp_ratio``, coordinates.
        decoder_embed_dim: Decoder width.
        decoder_depth: Decoder blocks.
        decoder_num_heads: Decoder heads.
        norm_pix_loss: Normalise each target tubelet (zero mean, unit variance) in the loss.
        mask_ratio: Default share of masked tokens.
        **kwargs: Other config options (``bands``, ``mean``, ``std``, ...), accepted and ignored.
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int, int] = (1, 16, 16),
        num_frames: int = 4,
        in_chans: int = 6,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        norm_pix_loss: bool = False,
        coords_encoding: list[str] | None = None,
        coords_scale_learn: bool = False,
        drop_path: float = 0.0,
        mask_ratio: float = 0.75,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            logger.debug("PrithviMAE ignores options %s", sorted(kwargs))
        self.encoder = PrithviViT(
            img_size=img_size,
            num_frames=num_frames,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            norm_layer=norm_layer,
            coords_encoding=coords_encoding,
            coords_scale_learn=coords_scale_learn,
            drop_path=drop_path,
        )
        self.decoder = MAEDecoder(
            patch_size=patch_size,
            grid_size=self.encoder.patch_embed.grid_size,
            in_chans=in_chans,
            encoder_embed_dim=embed_dim,
            decoder_embed_dim=decoder_embed_dim,
            depth=decoder_depth,
            num_heads=decoder_num_heads,
            mlp_ratio=mlp_ratio,
            norm_layer=norm_layer,
            coords_encoding=coords_encoding,
            coords_scale_learn=coords_scale_learn,
        )
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.out_channels = self.encoder.out_channels

    def patchify(self, pixel_values: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` → ``(B, T'·h·w, tubelet·p·q·C)`` (pixel order tubelet, row, col, band)."""
        b, c, t, h, w = pixel_values.shape
        s, p, q = self.encoder.patch_embed.patch_size
        x = pixel_values.reshape(b, c, t // s, s, h // p, p, w // q, q)
        return x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (t // s) * (h // p) * (w // q), s * p * q * c)

    def unpatchify(
        self, patchified_pixel_values: Tensor, image_size: int | tuple[int, int] | None = None
    ) -> Tensor:
        """Inverse of :meth:`patchify` for images of ``image_size`` (default: the nominal size)."""
        s, p, q = self.encoder.patch_embed.patch_size
        if image_size is None:
            image_size = self.encoder.img_size
        elif isinstance(image_size, int):
            image_size = (image_size, image_size)
        h, w = int(image_size[0]) // p, int(image_size[1]) // q
        b, length, values = patchified_pixel_values.shape
        c = values // (s * p * q)
        t = length // (h * w)
        x = patchified_pixel_values.reshape(b, t, h, w, s, p, q, c).permute(0, 7, 1, 4, 2, 5, 3, 6)
        return x.reshape(b, c, t * s, h * p, w * q)

    def freeze_encoder(self) -> None:
        """Stop gradients through the encoder."""
        for param in self.encoder.parameters():
            param.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop gradients through the decoder."""
        for param in self.decoder.parameters():
            param.requires_grad_(False)

    def forward_loss(self, pixel_values: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean squared error per tubelet, averaged over the masked tubelets."""
        target = self.patchify(pixel_values)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        per_token = ((pred - target) ** 2).mean(dim=-1)
        return (per_token * mask).sum() / mask.sum()

    def forward(
        self,
        pixel_values: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """Mask, encode, decode.

        Args:
            pixel_values: ``(B, C, T, H, W)``, or ``(B, C, H, W)`` for one-frame models.
            temporal_coords: ``(B, T, 2)`` for ``"time"`` encoding.
            location_coords: ``(B, 2)`` for ``"location"`` encoding.
            mask_ratio: Overrides the default ratio; unlike TerraTorch 1.2, ``0.0`` is honoured
                (there a falsy value fell back to the default).

        Returns:
            ``({"loss": loss}, reconstruction, mask)``; reconstruction and mask have the input's
            layout (``(B, C, [T,] H, W)`` and ``(B, [T,] H, W)``, mask 1 = masked pixel).
        """
        squeeze_time = pixel_values.ndim == 4 and self.encoder.patch_embed.input_size[0] == 1
        if squeeze_time:
            pixel_values = pixel_values.unsqueeze(2)
        ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.encoder.forward_masked(
            pixel_values, temporal_coords, location_coords, ratio
        )
        pred = self.decoder(
            latent, ids_restore, temporal_coords, location_coords, input_size=pixel_values.shape
        )
        loss = self.forward_loss(pixel_values, pred, mask)
        size = pixel_values.shape[-2:]
        mask = self.unpatchify(mask.unsqueeze(-1).repeat(1, 1, pred.shape[-1]), image_size=size)[:, 0]
        pred = self.unpatchify(pred, image_size=size)
        if squeeze_time:
            pred = pred.squeeze(2)
            mask = mask.squeeze(1)
        return {"loss": loss}, pred, mask

    def forward_features(
        self,
        x: Tensor,
        temporal_coords: Tensor | None = None,
        location_coords: Tensor | None = None,
    ) -> list[Tensor]:
        """The encoder's block outputs (see :meth:`PrithviViT.forward_features`)."""
        return self.encoder.forward_features(x, temporal_coords, location_coords)
