"""Clay v1.5 encoders as TerraTorch backbones: ``clay_v15_tiny``, ``clay_v15_small``, ``clay_v15_base``
and ``clay_v15_large`` (registered in ``TERRATORCH_BACKBONE_REGISTRY``; ours, 1.2 registered none).

:class:`Embedder` wraps the Clay v1.5 :class:`~.model.Encoder` (as ``clay_encoder``) without masking:
``forward`` takes ``[B, C, H, W]`` images whose bands are named by ``bands`` and returns the
``out_indices`` block outputs ``[B, 1 + L, dim]`` (class token first; the last block after the final
norm, i.e. what Clay's encoder returns); ``prepare_features_for_image_model`` turns each into a
``[B, dim, H/8, W/8]`` map. Any square input whose side is a multiple of 8 works.

Weights: ``ckpt_path`` (the published Clay v1.5 Lightning checkpoint, whose encoder is stored under
``model.encoder.*``; a ``ClayMAE`` state dict with ``encoder.*``; or a state dict of this backbone with
``clay_encoder.*``). ``pretrained=True`` alone reads ``v1.5/clay-v1.5.ckpt`` of ``made-with-clay/Clay``
from the local Hugging Face cache (only ``clay_v15_large`` is published). Nothing is downloaded unless
``TERRATORCH_ALLOW_DOWNLOAD=1`` (see :func:`terratorch.models.weights.resolve_weights_file`).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.models.backbones.clay_v1.modules import band_wavelengths
from terratorch.models.backbones.clay_v15.model import CLAY_MAE_SIZES, Encoder
from terratorch.models.weights import (
    CheckpointMismatchError,
    load_state_dict_into,
    read_checkpoint,
    resolve_weights_file,
)
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = [
    "CLAY_V15_BANDS",
    "Embedder",
    "clay_v15_base",
    "clay_v15_large",
    "clay_v15_small",
    "clay_v15_tiny",
    "clay_v15_weights_file",
    "default_cfgs",
]

logger = logging.getLogger(__name__)

#: Default input bands (Clay's names of the six Sentinel-2/HLS bands; wavelengths in
#: :data:`terratorch.models.backbones.clay_v1.modules.WAVELENGTHS`).
CLAY_V15_BANDS: list[str] = ["blue", "green", "red", "nir", "swir16", "swir22"]

#: Published weights per registry name.
default_cfgs: dict[str, dict[str, str]] = {
    "clay_v15_large": {"hf_hub_id": "made-with-clay/Clay", "hf_hub_filename": "v1.5/clay-v1.5.ckpt"}
}

_ENCODER_PREFIX = re.compile(r"^(model\.encoder\.|encoder\.|clay_encoder\.)")
_ENCODER_KEYS = ("dim", "depth", "heads", "dim_head", "mlp_ratio")
#: Keyword arguments model factories pass that this backbone does not need.
_IGNORED_KWARGS = ("features_only", "in_chans", "model_bands", "pretrained_bands", "padding")


def _encoder_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The encoder tensors of a checkpoint keyed as in :class:`~.model.Encoder` (decoder, teacher,
    projection and optimiser entries are dropped)."""
    return {_ENCODER_PREFIX.sub("", k): v for k, v in state.items() if _ENCODER_PREFIX.match(k)}


class Embedder(nn.Module):
    """A Clay v1.5 encoder (no masking) as a TerraTorch backbone.

    Args:
        model_size: ``tiny``, ``small``, ``base`` or ``large`` (:data:`~.model.CLAY_MAE_SIZES`).
        img_size: Nominal input side (only used by :meth:`fake_datacube`; the position encoding
            follows the input).
        num_frames: Frames folded into the tokens (used to reshape in ``prepare_features_for_image_model``).
        ckpt_path: Weights file to load into the encoder (see the module docstring).
        bands: Band of each input channel: names in Clay's wavelength table (or enums whose value is
            one) or float wavelengths in µm.
        out_indices: Blocks whose outputs ``forward`` returns (default: all; negative indices work).
        gsd: Ground sample distance (m) used when ``forward`` gets none; 10 m (Sentinel-2) by default.
        patch_size: Patch side in pixels (8 for the published weights).
        dim, depth, heads, dim_head, mlp_ratio: Override the ``model_size`` encoder size.
        **kwargs: Factory options without effect here (``features_only``, ``in_chans``, ...); anything
            else is logged as unused.
    """

    def __init__(
        self,
        model_size: str = "large",
        img_size: int = 256,
        num_frames: int = 1,
        ckpt_path: str | Path | None = None,
        bands: Sequence[object] = CLAY_V15_BANDS,
        out_indices: Sequence[int] | None = None,
        gsd: float = 10.0,
        patch_size: int = 8,
        dim: int | None = None,
        depth: int | None = None,
        heads: int | None = None,
        dim_head: int | None = None,
        mlp_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if model_size not in CLAY_MAE_SIZES:
            raise ValueError(f"Unknown Clay v1.5 model_size {model_size!r}; valid: {sorted(CLAY_MAE_SIZES)}.")
        unused = sorted(k for k in kwargs if k not in _IGNORED_KWARGS)
        if unused:
            logger.warning("Clay v1.5 backbone ignores these arguments: %s", unused)
        given = {"dim": dim, "depth": depth, "heads": heads, "dim_head": dim_head, "mlp_ratio": mlp_ratio}
        size = {k: CLAY_MAE_SIZES[model_size][k] if given[k] is None else given[k] for k in _ENCODER_KEYS}
        if (size["dim"] - 8) % 4:
            raise ValueError(
                f"Clay v1.5 needs dim - 8 divisible by 4 (position encoding), got dim={size['dim']}."
            )
        depth_ = int(size["depth"])
        indices = list(range(depth_)) if out_indices is None else [int(i) for i in out_indices]
        bad = [i for i in indices if not -depth_ <= i < depth_]
        if bad or not indices:
            raise ValueError(
                f"out_indices {indices} invalid for a Clay v1.5 encoder of {depth_} blocks "
                f"(valid: -{depth_}..{depth_ - 1}, at least one)."
            )
        self.model_size = model_size
        self.img_size = img_size
        self.num_frames = num_frames
        self.bands = list(bands)
        self.waves = band_wavelengths(self.bands)  # a wrong band name fails here, not at the first batch
        self.gsd = gsd
        self.patch_size = patch_size
        self.out_indices = [i % depth_ for i in indices]
        self.clay_encoder = Encoder(mask_ratio=0.0, patch_size=patch_size, shuffle=False, **size)
        self.embed_dim = int(size["dim"])
        self.out_channels = [self.embed_dim] * len(self.out_indices)
        self.feature_info = [
            {
                "num_chs": self.embed_dim,
                "reduction": patch_size,
                "module": f"clay_encoder.transformer.layers.{i}",
            }
            for i in self.out_indices
        ]
        if ckpt_path:
            self.load_clay_weights(ckpt_path)

    def load_clay_weights(self, ckpt_path: str | Path) -> None:
        """Load the encoder tensors of ``ckpt_path`` (all of them must be there, with our shapes).

        Raises:
            WeightsNotFoundError: ``ckpt_path`` does not exist (the message names it).
            CheckpointMismatchError: The file holds no Clay encoder tensors, or some of other shapes.
        """
        path = clay_v15_weights_file(f"clay_v15_{self.model_size}", ckpt_path)
        self.load_encoder_state(read_checkpoint(path), source=str(path))

    def load_encoder_state(self, state: Mapping[str, Tensor], source: str = "state dict") -> None:
        """Load the encoder of a Clay state dict (``model.encoder.*``, ``encoder.*``, ``clay_encoder.*``)."""
        encoder = _encoder_state(state)
        if not encoder:
            raise CheckpointMismatchError(
                f"{source!r} holds no Clay v1.5 encoder tensors (keys starting with 'model.encoder.', "
                f"'encoder.' or 'clay_encoder.'; first keys: {sorted(state)[:3]}); is it a Clay checkpoint?"
            )
        target = self.clay_encoder.state_dict()
        wrong = [
            f"{k} {tuple(v.shape)} vs ours {tuple(target[k].shape)}"
            for k, v in encoder.items()
            if k in target and v.shape != target[k].shape
        ]
        if wrong:
            raise CheckpointMismatchError(
                f"{source!r} has Clay encoder tensors of other shapes than clay_v15_{self.model_size} "
                f"(pick the model_size/dims of the checkpoint): {wrong[:3]}."
            )
        load_state_dict_into(self.clay_encoder, encoder, source=repr(source))

    def forward(
        self,
        x: Tensor,
        time: Tensor | None = None,
        latlon: Tensor | None = None,
        waves: Tensor | None = None,
        gsd: float | Tensor | None = None,
    ) -> list[Tensor]:
        """The ``out_indices`` block outputs ``[B, 1 + L, dim]`` of ``x`` ``[B, C, H, W]``.

        ``time`` and ``latlon`` (``[B, 4]`` each, Clay's sine/cosine encodings of week/hour and
        latitude/longitude) default to zeros, ``waves`` (``[C]`` µm) to the wavelengths of ``bands``,
        ``gsd`` to the one given at construction.
        """
        if x.ndim != 4:
            raise ValueError(
                f"Clay v1.5 expects [B, C, H, W] images, got shape {tuple(x.shape)}; wrap it in a "
                "TemporalWrapper for [B, C, T, H, W] series."
            )
        batch = x.shape[0]
        waves = torch.tensor(self.waves, device=x.device) if waves is None else waves
        if waves.shape[-1] != x.shape[1]:
            raise ValueError(
                f"Clay v1.5 input has {x.shape[1]} channels but {waves.shape[-1]} band wavelengths "
                f"(bands={self.bands}); give one band per input channel."
            )
        datacube = {
            "pixels": x,
            "time": torch.zeros((batch, 4), device=x.device) if time is None else time,
            "latlon": torch.zeros((batch, 4), device=x.device) if latlon is None else latlon,
            "gsd": self.gsd if gsd is None else gsd,
            "waves": waves,
        }
        tokens, *_ = self.clay_encoder.tokens(datacube)
        blocks = self.clay_encoder.transformer.forward_blocks(tokens)
        return [blocks[i] for i in self.out_indices]

    forward_features = forward

    def fake_datacube(self) -> dict[str, Tensor]:
        """A random datacube of 3 bands at ``img_size`` (for tracing/export)."""
        return {
            "pixels": torch.randn(2, 3, self.img_size, self.img_size),
            "time": torch.randn(2, 4),
            "latlon": torch.randn(2, 4),
            "waves": torch.randn(3),
            "gsd": torch.tensor(self.gsd),
        }

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """Each feature without its class token as a ``[B, dim * num_frames, g, g]`` map (row-major)."""
        maps = []
        for feature in features:
            tokens = feature[:, 1:, :]
            side = math.isqrt(tokens.shape[1] // self.num_frames)
            maps.append(tokens.permute(0, 2, 1).reshape(tokens.shape[0], -1, side, side))
        return maps

    def freeze(self) -> None:
        """Stop gradients through the whole encoder."""
        for param in self.parameters():
            param.requires_grad_(False)


def clay_v15_weights_file(variant: str, ckpt_path: str | Path | None = None) -> Path:
    """The local file to load: ``ckpt_path``, else the published checkpoint in the Hugging Face cache.

    Raises:
        WeightsNotFoundError: ``ckpt_path`` does not exist, or (without it) the published file is not
            in the local cache; the message names where it looked.
        ValueError: No ``ckpt_path`` and ``variant`` has no published weights.
    """
    if ckpt_path is None and variant not in default_cfgs:
        raise ValueError(
            f"{variant} has no published weights (only {sorted(default_cfgs)} has); pass ckpt_path=<file> "
            "or pretrained=False."
        )
    cfg = default_cfgs.get(variant, {})
    return resolve_weights_file(
        ckpt_path,
        hf_repo_id=cfg.get("hf_hub_id"),
        hf_filenames=[cfg["hf_hub_filename"]] if cfg else [],
        model_name=variant,
    )


def backbone_metadata(variant: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``variant`` (mirrored in ``terratorch.registry.manifest``)."""
    size = CLAY_MAE_SIZES[variant.removeprefix("clay_v15_")]
    return {
        "family": "clay_v15",
        "bands": list(CLAY_V15_BANDS),
        "embed_dim": size["dim"],
        "depth": size["depth"],
        "num_heads": size["heads"],
        "patch_size": 8,
        "out_channels": [size["dim"]] * size["depth"],
        **default_cfgs.get(variant, {}),
    }


def _build(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> Embedder:
    size = variant.removeprefix("clay_v15_")
    model_size = kwargs.pop("model_size", size)
    if model_size != size:
        raise ValueError(f"{variant} is model_size={size!r}; got model_size={model_size!r}.")
    path = clay_v15_weights_file(variant) if pretrained and not kwargs.get("ckpt_path") else None
    model = Embedder(model_size=size, **kwargs)
    if path is not None:
        model.load_encoder_state(read_checkpoint(path), source=str(path))
    return model


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=backbone_metadata("clay_v15_tiny"))
def clay_v15_tiny(pretrained: bool = False, **kwargs: Any) -> Embedder:
    """Clay v1.5 tiny encoder (192 wide, 6 blocks); no published weights."""
    return _build("clay_v15_tiny", pretrained, kwargs)


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=backbone_metadata("clay_v15_small"))
def clay_v15_small(pretrained: bool = False, **kwargs: Any) -> Embedder:
    """Clay v1.5 small encoder (384 wide, 6 blocks); no published weights."""
    return _build("clay_v15_small", pretrained, kwargs)


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=backbone_metadata("clay_v15_base"))
def clay_v15_base(pretrained: bool = False, **kwargs: Any) -> Embedder:
    """Clay v1.5 base encoder (768 wide, 12 blocks); no published weights."""
    return _build("clay_v15_base", pretrained, kwargs)


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=backbone_metadata("clay_v15_large"))
def clay_v15_large(pretrained: bool = False, **kwargs: Any) -> Embedder:
    """Clay v1.5 large encoder (1024 wide, 24 blocks), the published one: ``pretrained=True`` without
    ``ckpt_path`` loads ``v1.5/clay-v1.5.ckpt`` from the local Hugging Face cache.
    """
    return _build("clay_v15_large", pretrained, kwargs)
