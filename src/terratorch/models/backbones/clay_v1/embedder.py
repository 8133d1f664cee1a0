"""The Clay v1 backbone ``clay_v1_base`` (registered in ``TERRATORCH_BACKBONE_REGISTRY``).

:class:`Embedder` wraps the Clay encoder (as ``clay_encoder``, the state-dict prefix of TerraTorch
1.2) for fine-tuning: ``forward`` takes ``[B, C, H, W]`` images whose bands are named by ``bands``
and returns the ``out_indices`` block outputs ``[B, 1 + L, 768]`` (class token first);
``prepare_features_for_image_model`` turns each into a ``[B, 768, H/8, W/8]`` map.

Weights: ``ckpt_path`` (a Clay Lightning checkpoint with ``model.encoder.*`` keys, or a state dict of
this model) is loaded whether or not ``pretrained`` is set, as in 1.2; ``pretrained=True`` alone reads
``v1/clay-v1-base.ckpt`` of ``made-with-clay/Clay-legacy`` from the local Hugging Face cache (see
:func:`terratorch.models.weights.resolve_weights_file`).
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

from terratorch.models.backbones.clay_v1.modules import Datacuber, EmbeddingEncoder
from terratorch.models.weights import (
    CheckpointMismatchError,
    load_state_dict_into,
    read_checkpoint,
    resolve_weights_file,
)
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = ["CLAY_V1_BANDS", "Embedder", "clay_v1_base", "clay_v1_weights_file", "default_cfgs"]

logger = logging.getLogger(__name__)

#: Default input bands of ``clay_v1_base`` (Clay's names for the six HLS/Sentinel-2 bands).
CLAY_V1_BANDS: list[str] = ["blue", "green", "red", "nir", "swir16", "swir22"]

#: Where the published weights of each variant live on the Hugging Face hub.
default_cfgs: dict[str, dict[str, str]] = {
    "clay_v1_base": {"hf_hub_id": "made-with-clay/Clay-legacy", "hf_hub_filename": "v1/clay-v1-base.ckpt"}
}

#: Keyword arguments 1.2's timm-based builder consumed without effect; accepted here for configs.
_IGNORED_KWARGS = ("features_only", "model_bands", "pretrained_bands", "pretrained_strict")

_ENCODER_PREFIX = re.compile(r"^(model\.encoder\.|clay_encoder\.)")


def _encoder_state(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The encoder tensors of a checkpoint, keyed as in :class:`EmbeddingEncoder`.

    Clay's Lightning checkpoints hold the whole MAE under ``model.`` (encoder at ``model.encoder.``);
    files saved from this model use ``clay_encoder.``. Other keys (the MAE decoder, teacher) are dropped.
    """
    return {_ENCODER_PREFIX.sub("", k): v for k, v in state.items() if _ENCODER_PREFIX.match(k)}


class Embedder(nn.Module):
    """Clay v1 base encoder (ViT-B, patch 8, 768 channels, 12 blocks) as a TerraTorch backbone.

    Args:
        img_size: Side of the (square) input images; fixes the position-encoding grid.
        num_frames: Frames folded into the tokens (used to reshape in ``prepare_features_for_image_model``).
        ckpt_path: Weights file to load into the encoder (see the module docstring). As in 1.2 the
            loaded encoder is frozen (``requires_grad=False``), except the VPT prompts.
        bands: Band of each input channel: names in :data:`~.modules.WAVELENGTHS` (or enums whose value
            is one) or float wavelengths in µm. An unknown name raises ``ValueError``.
        out_indices: Blocks whose outputs ``forward`` returns.
        vpt: Add visual prompt tuning tokens to every block.
        vpt_n_tokens: Prompt tokens per block (required with ``vpt``).
        vpt_dropout: Dropout on the prompt tokens.
        **kwargs: Options 1.2's builder accepted and ignored; anything else is logged as unused.
    """

    default_out_indices = tuple(range(12))

    def __init__(
        self,
        img_size: int = 256,
        num_frames: int = 1,
        ckpt_path: str | Path | None = None,
        bands: Sequence[object] = CLAY_V1_BANDS,
        out_indices: Sequence[int] = default_out_indices,
        vpt: bool = False,
        vpt_n_tokens: int | None = None,
        vpt_dropout: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        unused = sorted(k for k in kwargs if k not in _IGNORED_KWARGS)
        if unused:
            logger.warning("clay_v1_base ignores these arguments (1.2 did too): %s", unused)
        depth, dim = 12, 768
        out_indices = list(out_indices)
        bad = [i for i in out_indices if not -depth <= i < depth]
        if bad:
            raise ValueError(
                f"out_indices {bad} out of range for Clay v1's {depth} blocks (valid: 0..{depth - 1})."
            )
        self.img_size = img_size
        self.num_frames = num_frames
        self.bands = list(bands)
        self.out_indices = out_indices
        self.datacuber = Datacuber(bands=self.bands)
        self.clay_encoder = EmbeddingEncoder(
            img_size=img_size,
            patch_size=8,
            dim=dim,
            depth=depth,
            heads=12,
            dim_head=64,
            mlp_ratio=4.0,
            vpt=vpt,
            vpt_n_tokens=vpt_n_tokens,
            vpt_dropout=vpt_dropout,
        )
        self.feature_info = [{"num_chs": dim, "reduction": 1, "module": f"blocks.{i}"} for i in range(depth)]
        self.out_channels = [dim] * len(out_indices)
        if ckpt_path:
            self.load_clay_weights(ckpt_path)

    def load_clay_weights(self, ckpt_path: str | Path) -> None:
        """Load the encoder tensors of ``ckpt_path`` and freeze the encoder (1.2's behaviour).

        Encoder weights the file lacks stay as initialised and are logged; VPT prompts are never
        expected in the file.

        Raises:
            PretrainedWeightsNotFoundError: ``ckpt_path`` does not exist (the message names it).
            CheckpointMismatchError: The file has Clay encoder tensors of other shapes.
        """
        path = clay_v1_weights_file("clay_v1_base", ckpt_path)
        state = {f"clay_encoder.{k}": v for k, v in _encoder_state(read_checkpoint(path)).items()}
        self._load(state, path, strict=False)
        for name, param in self.clay_encoder.named_parameters():
            if "vpt_prompt_embeddings" not in name:
                param.requires_grad_(False)

    def _load(self, state: dict[str, Tensor], path: Path, strict: bool) -> None:
        target = self.state_dict()
        if not state:
            raise CheckpointMismatchError(
                f"{str(path)!r} holds no Clay v1 encoder tensors (keys starting with 'model.encoder.' "
                "or 'clay_encoder.'); is it a Clay v1 checkpoint?"
            )
        wrong = [
            f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}"
            for k, v in state.items()
            if k in target and v.shape != target[k].shape
        ]
        if wrong:
            raise CheckpointMismatchError(
                f"{str(path)!r} has Clay encoder tensors of other shapes than clay_v1_base: {wrong[:3]}."
            )
        load_state_dict_into(
            self,
            state,
            source=repr(str(path)),
            allow_partial=not strict,
            ignore_missing=("clay_encoder.transformer.vpt_",),
        )

    @staticmethod
    def transform_state_dict(state_dict: Mapping[str, Any], model: nn.Module) -> dict[str, Tensor]:
        """A Clay checkpoint (``{"state_dict": ...}``) keyed for ``model``, keeping its VPT prompts."""
        inner = state_dict.get("state_dict", state_dict)
        out = {f"clay_encoder.{k}": v for k, v in _encoder_state(inner).items()}
        out.update({k: v for k, v in model.state_dict().items() if "vpt_prompt_embeddings" in k})
        return out

    def forward_features(
        self,
        x: Tensor,
        time: Tensor | None = None,
        latlon: Tensor | None = None,
        waves: Tensor | None = None,
        gsd: float | None = None,
    ) -> list[Tensor]:
        """The ``out_indices`` block outputs ``[B, 1 + L, 768]`` of ``x`` ``[B, C, H, W]``.

        ``time``/``latlon`` (``[B, 4]`` each), ``waves`` (``[C]`` µm) and ``gsd`` default to Clay's
        neutral values and the wavelengths of ``bands``.
        """
        if x.ndim != 4:
            raise ValueError(
                f"clay_v1_base expects [B, C, H, W] images, got shape {tuple(x.shape)}; wrap it in a "
                "TemporalWrapper for [B, C, T, H, W] series."
            )
        datacube = self.datacuber(x=x, time=time, latlon=latlon, waves=waves, gsd=gsd)
        embeddings = self.clay_encoder(datacube)
        return [embeddings[i] for i in self.out_indices]

    forward = forward_features

    def fake_datacube(self) -> dict[str, Tensor]:
        """A random datacube of 3 bands at ``img_size`` (for tracing/export)."""
        return {
            "pixels": torch.randn(2, 3, self.img_size, self.img_size),
            "time": torch.randn(2, 4),
            "latlon": torch.randn(2, 4),
            "waves": torch.randn(3),
            "gsd": torch.randn(1),
        }

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """Each feature without its class token as a ``[B, 768 * num_frames, g, g]`` map (row-major tokens).

        1.2 returned only the map of the last feature, a list that did not match ``out_channels`` (so
        only decoders reading the last feature worked); here every feature is mapped and the last
        entry is that same map.
        """
        maps = []
        for feature in features:
            tokens = feature[:, 1:, :]
            side = int(math.sqrt(tokens.shape[1] // self.num_frames))
            maps.append(tokens.permute(0, 2, 1).reshape(tokens.shape[0], -1, side, side))
        return maps

    def freeze(self) -> None:
        """Stop gradients everywhere except the VPT prompts, so VPT trains on a frozen backbone."""
        for name, param in self.named_parameters():
            if "vpt_prompt_embeddings" not in name:
                param.requires_grad_(False)


def clay_v1_weights_file(variant: str, ckpt_path: str | Path | None = None) -> Path:
    """The local file to load: ``ckpt_path``, else the published checkpoint in the Hugging Face cache."""
    cfg = default_cfgs[variant]
    return resolve_weights_file(
        ckpt_path, hf_repo_id=cfg["hf_hub_id"], hf_filenames=[cfg["hf_hub_filename"]], model_name=variant
    )


def backbone_metadata(variant: str = "clay_v1_base") -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``variant`` (mirrored in ``terratorch.registry.manifest``)."""
    return {
        "family": "clay_v1",
        "bands": list(CLAY_V1_BANDS),
        "embed_dim": 768,
        "depth": 12,
        "num_heads": 12,
        "patch_size": 8,
        "out_channels": [768] * 12,
        **default_cfgs[variant],
    }


@TERRATORCH_BACKBONE_REGISTRY.register(metadata=backbone_metadata("clay_v1_base"))
def clay_v1_base(pretrained: bool = False, **kwargs: Any) -> Embedder:
    """Clay v1 base encoder; ``pretrained=True`` (without ``ckpt_path``) loads the published weights strictly.

    Other keyword arguments go to :class:`Embedder` (``bands``, ``img_size``, ``ckpt_path``,
    ``out_indices``, ``vpt``, ...).
    """
    ckpt_path = kwargs.get("ckpt_path")
    path = clay_v1_weights_file("clay_v1_base") if pretrained and not ckpt_path else None
    model = Embedder(**kwargs)
    if path is not None:
        model._load(Embedder.transform_state_dict(read_checkpoint(path), model), path, strict=True)
    return model
