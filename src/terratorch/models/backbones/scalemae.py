"""Scale-MAE ViT encoders: position embeddings scaled by the ground sample distance of the input.

Scale-MAE replaces the fixed position table of a ViT by sin-cos embeddings of the token positions
multiplied by the input resolution (metres per pixel), so one model sees images of many scales.

Two entry points:

* TerraTorch 1.2's module API (kept as is): :func:`create_model` with the names of
  :data:`scalemae_model_registry` (``vit_base_patch16``, ``vit_large_patch16``, ``vit_huge_patch14``),
  ``bands`` and ``ckpt_path`` (the original Scale-MAE ``{"model": ...}`` checkpoints or plain state dicts).
* Ours: the backbones ``scalemae_base_patch16``, ``scalemae_large_patch16`` and ``scalemae_huge_patch14``
  of ``TERRATORCH_BACKBONE_REGISTRY`` (``model_bands``, ``pretrained``, ``ckpt_data``), so configs can use
  them; ``scalemae_large_patch16`` with ``pretrained=True`` loads torchgeo's fMoW RGB weights.

Parameter names follow timm's ``VisionTransformer`` (without classifier), the layout of the published
Scale-MAE and torchgeo weight files. ``pos_embed`` is kept for that layout but is not used.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.datasets.bands import HLSBands
from terratorch.models.backbones.dofa_vit import PublishedWeights, weights_file
from terratorch.models.backbones.pos_embed import sincos_1d_like
from terratorch.models.weights import load_pretrained_weights
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = [
    "PRETRAINED_BANDS",
    "SCALEMAE_LARGE_FMOW_RGB",
    "PatchEmbedUnSafe",
    "VisionTransformer",
    "create_model",
    "get_2d_sincos_pos_embed_with_resolution",
    "load_scalemae_weights",
    "register_scalemae_model",
    "scalemae_model_registry",
]

#: Bands of the published checkpoints, in channel order.
PRETRAINED_BANDS: list[HLSBands] = [HLSBands.RED, HLSBands.GREEN, HLSBands.BLUE]

#: torchgeo's ``ScaleMAELarge16_Weights.FMOW_RGB``.
SCALEMAE_LARGE_FMOW_RGB = PublishedWeights(
    "ScaleMAELarge16_Weights.FMOW_RGB",
    "https://hf.co/isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae/resolve/"
    "9dc7f569424baeb780698352cf6e87638c882123/vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth",
)

#: Checkpoint entries an encoder does not use: classifier, MAE decoder and its mask token.
_UNUSED_KEYS = ("head.", "fc_norm.", "decoder", "mask_token", "fpn", "fcn_")


def get_2d_sincos_pos_embed_with_resolution(
    embed_dim: int,
    grid_size: int | Sequence[int],
    res: Tensor,
    cls_token: bool = False,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Sin-cos embeddings of a token grid whose positions are scaled by each sample's resolution.

    The first half of each embedding encodes ``column * res``, the second ``row * res``; tokens are
    in row-major order.

    Args:
        embed_dim: Embedding width (divisible by 4).
        grid_size: Tokens per side, or ``(rows, columns)`` (ours).
        res: ``(N,)`` ground sample distances.
        cls_token: Prepend an all-zero embedding for the class token.
        device: Where to build the table.

    Returns:
        ``(N, [1 +] rows * columns, embed_dim)`` float32 table.
    """
    if embed_dim % 4:
        raise ValueError(f"Scale-MAE position embeddings need embed_dim divisible by 4, got {embed_dim}.")
    rows, cols = (grid_size, grid_size) if isinstance(grid_size, int) else (int(g) for g in grid_size)
    res = torch.as_tensor(res, dtype=torch.float32).to(device).reshape(-1)
    row_index, col_index = torch.meshgrid(
        torch.arange(rows, dtype=torch.float32, device=device),
        torch.arange(cols, dtype=torch.float32, device=device),
        indexing="ij",
    )
    half = embed_dim // 2
    # (N, rows*cols) scaled positions, embedded one sample at a time in row-major token order
    cols_scaled = res[:, None] * col_index.reshape(1, -1)
    rows_scaled = res[:, None] * row_index.reshape(1, -1)
    table = torch.cat([sincos_1d_like(half, cols_scaled), sincos_1d_like(half, rows_scaled)], dim=1)
    table = table.reshape(res.shape[0], rows * cols, embed_dim)
    if cls_token:
        table = torch.cat([table.new_zeros(res.shape[0], 1, embed_dim), table], dim=1)
    return table


class PatchEmbedUnSafe(nn.Module):
    """Non-overlapping patch projection that accepts any input size (a ragged border is cut off)."""

    def __init__(self, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768) -> None:
        super().__init__()
        self.patch_size = (patch_size, patch_size)
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` → ``(B, (H // p) * (W // p), E)``."""
        return self.proj(x).flatten(2).transpose(1, 2)


class VisionTransformer(nn.Module):
    """Scale-MAE ViT encoder: the outputs of the blocks in ``out_indices``, class token first.

    Args:
        patch_size: Patch size.
        in_chans: Input bands.
        embed_dim: Token width.
        out_indices: Blocks whose outputs are returned, in this order (Python indexing; default ``[-1]``).
        default_input_res: Ground sample distance used when ``forward`` gets no ``input_res``.
        img_size: Nominal input size; only sets the shape of the unused ``pos_embed``
            (``1 + (img_size // 16) ** 2`` rows for any patch size, the published layout).
        depth: Number of blocks.
        num_heads: Attention heads.
        mlp_ratio: Hidden width of the block MLPs relative to ``embed_dim``.
        qkv_bias: Bias of the attention projections.
        norm_layer: Norm of the blocks (default ``LayerNorm(eps=1e-6)``).
        drop_rate: Dropout after adding the position embedding and in the blocks' projections.
        attn_drop_rate: Attention dropout.
        drop_path_rate: Stochastic depth, linearly increasing to this value over the blocks.
    """

    def __init__(
        self,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        out_indices: Sequence[int] | None = None,
        default_input_res: float = 1,
        *,
        img_size: int = 224,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        norm_layer: Callable[[int], nn.Module] | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        from timm.models.vision_transformer import Block

        super().__init__()
        norm_layer = norm_layer or partial(nn.LayerNorm, eps=1e-6)
        self.embed_dim = embed_dim
        self.default_input_res = default_input_res
        self.out_indices = list(out_indices) if out_indices else [-1]
        for index in self.out_indices:
            if not -depth <= index < depth:
                raise ValueError(
                    f"out_indices {self.out_indices}: {index} is not a block of this {depth}-block ViT."
                )
        self.out_channels = [embed_dim] * len(self.out_indices)
        self.patch_embed = PatchEmbedUnSafe(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim).normal_(std=1e-6))
        # sized for 16 px patches whatever patch_size is, as in TerraTorch 1.2 (the table is unused)
        num_patches = (img_size // 16) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        rates = [drop_path_rate * i / (depth - 1) if depth > 1 else 0.0 for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                embed_dim,
                num_heads,
                mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rate,
                norm_layer=norm_layer,
            )
            for rate in rates
        )
        self.norm = norm_layer(embed_dim)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        self._grid: tuple[int, int] | None = None

    def forward(self, x: Tensor, input_res: float | Sequence[float] | Tensor | None = None) -> list[Tensor]:
        """``(B, C, H, W)`` → one ``(B, 1 + h*w, E)`` sequence per entry of ``out_indices``.

        Args:
            x: Input images.
            input_res: Ground sample distance per sample (or one for all); default ``default_input_res``.
        """
        batch = x.shape[0]
        tokens = self.patch_embed(x)
        p = self.patch_embed.patch_size
        self._grid = (x.shape[-2] // p[0], x.shape[-1] // p[1])
        res = self.default_input_res if input_res is None else input_res
        res = torch.as_tensor(res, dtype=torch.float32, device=x.device).reshape(-1)
        if res.numel() == 1:
            res = res.expand(batch)
        if res.numel() != batch:
            raise ValueError(f"input_res has {res.numel()} values for a batch of {batch}.")
        pos_embed = get_2d_sincos_pos_embed_with_resolution(
            self.embed_dim, self._grid, res, cls_token=True, device=x.device
        )
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1) + pos_embed.to(tokens.dtype)
        tokens = self.pos_drop(tokens)
        depth = len(self.blocks)
        wanted = {index % depth for index in self.out_indices}
        outputs: dict[int, Tensor] = {}
        for index, block in enumerate(self.blocks[: max(wanted) + 1]):
            tokens = block(tokens)
            if index in wanted:
                outputs[index] = tokens
        return [outputs[index % depth] for index in self.out_indices]

    def prepare_features_for_image_model(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Token sequences → ``(B, E, h, w)`` maps (class token dropped), for convolutional decoders.

        The grid is the one of the last input, else a square one.
        """
        maps = []
        for tokens in features:
            tokens = tokens[:, 1:]
            grid = self._grid
            if grid is None or grid[0] * grid[1] != tokens.shape[1]:
                side = math.isqrt(tokens.shape[1])
                if side * side != tokens.shape[1]:
                    raise ValueError(f"Cannot lay {tokens.shape[1]} tokens out on a grid; run forward first.")
                grid = (side, side)
            maps.append(tokens.transpose(1, 2).reshape(tokens.shape[0], -1, *grid))
        return maps


# ----------------------------------------------------------------------------------------------
# TerraTorch 1.2's module registry
# ----------------------------------------------------------------------------------------------
#: Scale-MAE constructors by name (``create_model`` looks names up here).
scalemae_model_registry: dict[str, Callable[..., VisionTransformer]] = {}


def register_scalemae_model(
    constructor: Callable[..., VisionTransformer],
) -> Callable[..., VisionTransformer]:
    """Add ``constructor`` to :data:`scalemae_model_registry` under its function name."""
    scalemae_model_registry[constructor.__name__] = constructor
    return constructor


_SIZES: dict[str, dict[str, int]] = {
    "vit_base_patch16": {"patch_size": 16, "embed_dim": 768, "depth": 12, "num_heads": 12},
    "vit_large_patch16": {"patch_size": 16, "embed_dim": 1024, "depth": 24, "num_heads": 16},
    "vit_huge_patch14": {"patch_size": 14, "embed_dim": 1280, "depth": 32, "num_heads": 16},
}


def _sized(name: str, kwargs: dict[str, Any]) -> VisionTransformer:
    fixed = [key for key in _SIZES[name] if key in kwargs]
    if fixed:
        raise TypeError(f"{name} fixes {fixed}; build VisionTransformer directly for other sizes.")
    return VisionTransformer(**_SIZES[name], mlp_ratio=4, qkv_bias=True, **kwargs)


@register_scalemae_model
def vit_base_patch16(**kwargs: Any) -> VisionTransformer:
    """Scale-MAE ViT-Base/16 (embed_dim 768, 12 blocks)."""
    return _sized("vit_base_patch16", kwargs)


@register_scalemae_model
def vit_large_patch16(**kwargs: Any) -> VisionTransformer:
    """Scale-MAE ViT-Large/16 (embed_dim 1024, 24 blocks), the size of the published weights."""
    return _sized("vit_large_patch16", kwargs)


@register_scalemae_model
def vit_huge_patch14(**kwargs: Any) -> VisionTransformer:
    """Scale-MAE ViT-Huge/14 (embed_dim 1280, 32 blocks)."""
    return _sized("vit_huge_patch14", kwargs)


def load_scalemae_weights(
    model: VisionTransformer,
    ckpt_data: str | os.PathLike[str],
    model_bands: Sequence[object],
    input_size: int = 224,
    *,
    allow_partial: bool = False,
) -> VisionTransformer:
    """Load a Scale-MAE checkpoint (``{"model": ...}`` or a plain / torchgeo state dict) into ``model``.

    The patch projection is copied band by band from the pretrained RGB bands to ``model_bands`` (bands
    the checkpoint lacks keep their fresh initialisation). Classifier and MAE-decoder entries are
    ignored; ``pos_embed`` (unused) is dropped when its shape differs. Other missing weights are an
    error unless ``allow_partial``.

    Args:
        model: Encoder to fill.
        ckpt_data: Local checkpoint file.
        model_bands: Input bands of ``model``, in channel order.
        input_size: Kept for TerraTorch 1.2 calls (the shape of ``pos_embed`` is read from ``model``).
        allow_partial: Load what fits and warn about the rest.
    """
    del input_size
    path = weights_file(ckpt_data, None, "Scale-MAE")
    target_shape = model.pos_embed.shape

    def fit(state: dict[str, Tensor]) -> dict[str, Tensor]:
        if "pos_embed" in state and state["pos_embed"].shape != target_shape:
            del state["pos_embed"]
        return state

    load_pretrained_weights(
        model,
        path,
        model_bands=list(model_bands),
        ckpt_bands=list(PRETRAINED_BANDS),
        input_layers=["patch_embed.proj.weight"],
        allow_partial=allow_partial,
        ignore_missing=("pos_embed",),
        ignore_unexpected=_UNUSED_KEYS,
        state_dict_hook=fit,
    )
    return model


def _as_bands(bands: Sequence[object] | None) -> list[object]:
    if bands is None:
        return list(PRETRAINED_BANDS)
    return [HLSBands.try_convert_to_hls_bands_enum(band) for band in bands]


def create_model(
    model_name: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    bands: Sequence[object] | None = None,
    **kwargs: Any,
) -> VisionTransformer:
    """Build the Scale-MAE encoder ``model_name`` for ``bands`` (default RGB), loading ``ckpt_path`` if given.

    ``input_size`` is accepted (TerraTorch 1.2) and ignored; other keyword arguments go to
    :class:`VisionTransformer`. ``pos_embed`` is frozen (Scale-MAE computes its own embeddings).

    Raises:
        ValueError: ``model_name`` is not in :data:`scalemae_model_registry` (close matches are named).
    """
    kwargs.pop("input_size", None)
    if model_name not in scalemae_model_registry:
        close = difflib.get_close_matches(model_name, list(scalemae_model_registry), n=3)
        hint = f" Did you mean {close}?" if close else ""
        raise ValueError(
            f"Scale-MAE model {model_name!r} is not registered.{hint} Known: {list(scalemae_model_registry)}."
        )
    bands = _as_bands(bands)
    kwargs["in_chans"] = len(bands)
    model = scalemae_model_registry[model_name](**kwargs)
    if ckpt_path:
        load_scalemae_weights(model, ckpt_path, bands)
    model.pos_embed.requires_grad = False
    return model


# ----------------------------------------------------------------------------------------------
# backbones of TERRATORCH_BACKBONE_REGISTRY (ours)
# ----------------------------------------------------------------------------------------------
_BACKBONES = {
    "scalemae_base_patch16": ("vit_base_patch16", None),
    "scalemae_large_patch16": ("vit_large_patch16", SCALEMAE_LARGE_FMOW_RGB),
    "scalemae_huge_patch14": ("vit_huge_patch14", None),
}


def scalemae_metadata(name: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``name`` (mirrored in ``terratorch.registry.manifest``)."""
    arch, published = _BACKBONES[name]
    size = _SIZES[arch]
    meta: dict[str, Any] = {
        "family": "scalemae",
        "bands": [str(band) for band in PRETRAINED_BANDS],
        **size,
        "out_channels": [size["embed_dim"]],
    }
    if published is not None:
        meta["url"] = published.url
    return meta


def _register_backbone(name: str) -> None:
    arch, published = _BACKBONES[name]

    def build(
        model_bands: Sequence[object] | None = None,
        pretrained: bool = False,
        ckpt_data: str | os.PathLike[str] | None = None,
        weights: Any = published,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> VisionTransformer:
        bands = _as_bands(kwargs.pop("bands", model_bands))
        ckpt_data = kwargs.pop("ckpt_path", ckpt_data)
        kwargs.pop("input_size", None)
        model = scalemae_model_registry[arch](in_chans=len(bands), out_indices=out_indices, **kwargs)
        if pretrained or ckpt_data is not None:
            load_scalemae_weights(model, weights_file(ckpt_data, weights, name), bands)
        model.pos_embed.requires_grad = False
        return model

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"Scale-MAE encoder ``{name}`` ({arch}); ``model_bands`` default RGB, ``pretrained`` loads "
        f"``ckpt_data`` {'or torchgeo fMoW RGB weights' if published else '(no published weights)'}; "
        "other keyword arguments (``img_size``, ``default_input_res``, ...) go to :class:`VisionTransformer`."
    )
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=scalemae_metadata(name))


for _name in _BACKBONES:
    _register_backbone(_name)
