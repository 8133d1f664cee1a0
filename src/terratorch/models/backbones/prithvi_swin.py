"""Prithvi Swin backbones ``prithvi_swin_B`` / ``prithvi_swin_L``, registered in **timm's** registry.

They are timm Swin Transformers (Swin-B / Swin-L sizes, patch 4, window 7) for the six Prithvi HLS
bands, so ``timm.create_model("prithvi_swin_B", features_only=True)``,
``BACKBONE_REGISTRY.build("prithvi_swin_B")`` and ``"timm_prithvi_swin_B"`` all work. Differences
from stock timm Swin: any input size that is a multiple of 32 is accepted (``dynamic_img_size``
defaults to True), weights load through :mod:`terratorch.models.weights` (local files, band
remapping, missing weights are an error), and the models expose
``prepare_features_for_image_model`` turning the NHWC stage outputs into NCHW maps.

There are no published Prithvi Swin weights to fetch: ``pretrained=True`` needs
``pretrained_cfg_overlay={"file": path}`` or ``ckpt_path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from timm.models import FeatureListNet, build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.swin_transformer import SwinTransformer
from torch import Tensor

from terratorch.models.weights import load_pretrained_weights, resolve_weights_file
from terratorch.registry.manifest import PRITHVI_BANDS, PRITHVI_V2_MEAN, PRITHVI_V2_STD

__all__ = ["PrithviSwin", "PrithviSwinFeatures", "prithvi_swin_B", "prithvi_swin_L"]

SWIN_ARCHS: dict[str, dict[str, Any]] = {
    "prithvi_swin_B": {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)},
    "prithvi_swin_L": {"embed_dim": 192, "depths": (2, 2, 18, 2), "num_heads": (6, 12, 24, 48)},
}


def _nhwc_to_nchw(features: list[Tensor], channels: Sequence[int]) -> list[Tensor]:
    """Permute each ``(B, H, W, C)`` stage output to ``(B, C, H, W)``.

    Inputs are NHWC by contract (``W == C`` is therefore not ambiguous); a map whose last dimension
    is not the stage width is taken to be NCHW already and passes through.
    """
    out = []
    for feature, chans in zip(features, channels):
        is_nhwc = feature.ndim == 4 and feature.shape[-1] == chans
        out.append(feature.permute(0, 3, 1, 2).contiguous() if is_nhwc else feature)
    return out


class PrithviSwin(SwinTransformer):
    """timm's Swin Transformer with band metadata and NHWC → NCHW feature preparation.

    Args:
        bands: Input bands in channel order (``len(bands) == in_chans``).
        **kwargs: :class:`timm.models.swin_transformer.SwinTransformer` arguments.
    """

    def __init__(self, bands: Sequence[object] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        in_chans = kwargs.get("in_chans", 3)
        self.bands = list(bands) if bands is not None else list(range(in_chans))
        self.stage_channels = [int(self.embed_dim * 2**i) for i in range(self.num_layers)]

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """``(B, H_i, W_i, C_i)`` stage outputs → ``(B, C_i, H_i, W_i)``."""
        return _nhwc_to_nchw(features, self.stage_channels)


class PrithviSwinFeatures(FeatureListNet):
    """The ``features_only`` form: a list of NHWC stage outputs, plus the NCHW converter."""

    def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
        """``(B, H_i, W_i, C_i)`` stage outputs → ``(B, C_i, H_i, W_i)``."""
        return _nhwc_to_nchw(features, self.feature_info.channels())


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        "input_size": (len(PRITHVI_BANDS), 224, 224),
        "fixed_input_size": False,
        "mean": tuple(PRITHVI_V2_MEAN),
        "std": tuple(PRITHVI_V2_STD),
        "first_conv": "patch_embed.proj",
        "classifier": "head.fc",
        "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({name: _cfg() for name in SWIN_ARCHS})


def _create_prithvi_swin(
    variant: str,
    pretrained: bool = False,
    *,
    bands: Sequence[object] | None = None,
    pretrained_bands: Sequence[object] | None = None,
    ckpt_path: str | Path | None = None,
    allow_partial: bool = False,
    weights_only: bool = True,
    features_only: bool = False,
    out_indices: Sequence[int] = (0, 1, 2, 3),
    **kwargs: Any,
) -> PrithviSwin | PrithviSwinFeatures:
    in_chans = kwargs.get("in_chans")
    if bands is None:
        bands = PRITHVI_BANDS if in_chans in (None, len(PRITHVI_BANDS)) else list(range(in_chans))
    bands = list(bands)
    kwargs["in_chans"] = len(bands) if in_chans is None else in_chans
    kwargs.setdefault("dynamic_img_size", True)
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    path = ckpt_path or (overlay.get("file") if pretrained else None)
    if path is not None or pretrained:
        path = resolve_weights_file(path, model_name=variant)  # fail fast, before building
    model = build_model_with_cfg(
        PrithviSwin, variant, pretrained=False, bands=bands, **{**SWIN_ARCHS[variant], **kwargs}
    )
    if path is not None:
        load_pretrained_weights(
            model,
            path,
            model_bands=bands,
            ckpt_bands=list(pretrained_bands) if pretrained_bands is not None else PRITHVI_BANDS,
            input_layers=["patch_embed.proj.weight"],
            allow_partial=allow_partial,
            weights_only=weights_only,
            ignore_unexpected=("head.", "relative_position_index", "attn_mask"),
        )
    if not features_only:
        return model
    features = PrithviSwinFeatures(model, out_indices=out_indices, output_fmt="NHWC", flatten_sequential=True)
    features.pretrained_cfg = features.default_cfg = model.pretrained_cfg
    features.bands = bands
    return features


@register_model
def prithvi_swin_B(  # noqa: N802 (published model name)
    pretrained: bool = False,
    pretrained_bands: Sequence[object] | None = None,
    bands: Sequence[object] | None = None,
    **kwargs: Any,
) -> PrithviSwin | PrithviSwinFeatures:
    """Prithvi Swin-B (embed 128, depths 2-2-18-2) for the six HLS bands.

    Takes timm's kwargs plus ``bands``, ``pretrained_bands``, ``ckpt_path``, ``allow_partial`` and
    ``weights_only`` (see :mod:`terratorch.models.weights`).
    """
    return _create_prithvi_swin(
        "prithvi_swin_B", pretrained, bands=bands, pretrained_bands=pretrained_bands, **kwargs
    )


@register_model
def prithvi_swin_L(  # noqa: N802 (published model name)
    pretrained: bool = False,
    pretrained_bands: Sequence[object] | None = None,
    bands: Sequence[object] | None = None,
    **kwargs: Any,
) -> PrithviSwin | PrithviSwinFeatures:
    """Prithvi Swin-L (embed 192, depths 2-2-18-2); kwargs as :func:`prithvi_swin_B`."""
    return _create_prithvi_swin(
        "prithvi_swin_L", pretrained, bands=bands, pretrained_bands=pretrained_bands, **kwargs
    )


# create_timm_model passes our weight kwargs through to entrypoints that handle them themselves.
prithvi_swin_B.handles_weight_kwargs = True  # type: ignore[attr-defined]
prithvi_swin_L.handles_weight_kwargs = True  # type: ignore[attr-defined]
