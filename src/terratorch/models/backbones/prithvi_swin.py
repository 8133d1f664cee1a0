"""Prithvi Swin backbones ``prithvi_swin_B`` / ``prithvi_swin_L``, registered in **timm's** registry.

They are :class:`~terratorch.models.backbones.swin_encoder_decoder.MMSegSwinTransformer` models (Swin-B /
Swin-L sizes, patch 4, window 7) for the six Prithvi HLS bands, with the reference release's
``state_dict`` layout (``patch_embed.projection``, ``stages.N.blocks.M.attn.w_msa``, ...), so
``timm.create_model("prithvi_swin_B", features_only=True)``, ``BACKBONE_REGISTRY.build("prithvi_swin_B")``
and ``"timm_prithvi_swin_B"`` all work and fine-tuned checkpoints of the reference load. Any input size
is accepted (padding inside the model). Weights load through :mod:`terratorch.models.weights` (local
files, band remapping of the patch embedding, missing weights are an error); checkpoints in timm's or
the official Swin layout are converted on the fly. The models expose
``prepare_features_for_image_model`` turning the NHWC stage outputs into NCHW maps.

There are no published Prithvi Swin weights to fetch: ``pretrained=True`` needs
``pretrained_cfg_overlay={"file": path}`` or ``ckpt_path``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from timm.models import FeatureListNet, build_model_with_cfg, generate_default_cfgs, register_model
from torch import Tensor

from terratorch.models.backbones.prithvi_vit import PRETRAINED_BANDS, PRITHVI_V2_MEAN, PRITHVI_V2_STD
from terratorch.models.backbones.swin_encoder_decoder import MMSegSwinTransformer
from terratorch.models.weights import load_pretrained_weights, read_checkpoint, resolve_weights_file

__all__ = [
    "PrithviSwin",
    "PrithviSwinFeatures",
    "convert_weights_swin2mmseg",
    "prithvi_swin_B",
    "prithvi_swin_L",
]

SWIN_ARCHS: dict[str, dict[str, Any]] = {
    "prithvi_swin_B": {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32)},
    "prithvi_swin_L": {"embed_dim": 192, "depths": (2, 2, 18, 2), "num_heads": (6, 12, 24, 48)},
}
#: The six HLS bands of the Prithvi family, as names.
_PRITHVI_BANDS: list[str] = [str(band) for band in PRETRAINED_BANDS]
_COMMON_ARGS: dict[str, Any] = {"patch_size": 4, "window_size": 7, "in_chans": 6}
INPUT_LAYER = "patch_embed.projection.weight"


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


class PrithviSwin(MMSegSwinTransformer):
    """The mmseg-layout Swin with band metadata and NHWC → NCHW feature preparation.

    Args:
        bands: Input bands in channel order (``len(bands) == in_chans``).
        **kwargs: :class:`~terratorch.models.backbones.swin_encoder_decoder.MMSegSwinTransformer` arguments.
    """

    def __init__(self, bands: Sequence[object] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        in_chans = kwargs.get("in_chans", 3)
        self.bands = list(bands) if bands is not None else list(range(in_chans))
        self.stage_channels = list(self.num_features)

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
        "num_classes": 1000,  # the reference's timm default: full models carry a 1000-class head
        "input_size": (len(_PRITHVI_BANDS), 224, 224),
        "fixed_input_size": False,
        "mean": tuple(PRITHVI_V2_MEAN),
        "std": tuple(PRITHVI_V2_STD),
        "first_conv": "patch_embed.projection",
        "classifier": "head.fc",
        "license": "apache-2.0",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({name: _cfg() for name in SWIN_ARCHS})


# ----------------------------------------------------------------------------------------------
# checkpoint conversion: timm / official Swin layout → mmseg layout
# ----------------------------------------------------------------------------------------------
_LAYER = re.compile(r"(^|\.)layers[._](\d+)\.")
_STAGE = re.compile(r"(^|\.)stages[._](\d+)\.")


def _merge_order(num_chs: int) -> Tensor:
    """Indices taking mmseg's unfold order (``c * 4 + k``) from the concat order (``k * C + c``).

    The concat order of timm/official Swin lists the 2x2 neighbours as (0,0), (1,0), (0,1), (1,1)
    (row, col); ``nn.Unfold`` lists them row-major with the channel outermost.
    """
    channels = num_chs // 4
    concat_slot = [0, 2, 1, 3]  # unfold kernel position k=(r, c) row-major → concat slot
    return torch.tensor([concat_slot[k] * channels + c for c in range(channels) for k in range(4)])


def is_timm_swin_layout(state_dict: Mapping[str, Tensor]) -> bool:
    """Whether ``state_dict`` holds a Swin in timm's or the official layout (``layers.N``, ``mlp.fc1``)."""
    return any(_LAYER.search(k) for k in state_dict) and not any(".w_msa." in k for k in state_dict)


def convert_weights_swin2mmseg(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert a timm / official Swin state dict to the mmseg layout of :class:`PrithviSwin`.

    Handles both stage conventions: official Swin (and timm < 0.9) merge patches at the end of stage
    ``N`` (``layers.N.downsample`` for ``N < last``); timm >= 0.9 merges at the start of stage ``N``
    (``layers.N.downsample`` for ``N >= 1``), which is shifted back by one stage here. Merging weights
    are reordered to the unfold order. Classifier keys (``head.*``) and ``attn_mask`` buffers are
    dropped; wrapper prefixes (``module.``, ``backbone.``, ...) are kept for the key fitting.
    """
    layers = {int(m.group(2)) for k in state_dict if (m := _LAYER.search(k))}
    merges = {int(m.group(2)) for k in state_dict if (m := _LAYER.search(k)) and ".downsample." in k}
    shift = 1 if layers and merges and max(merges) == max(layers) else 0
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("head.") or key.endswith("attn_mask"):
            continue
        match = _LAYER.search(key)
        if match is not None:
            index = int(match.group(2))
            if ".downsample." in key:
                index -= shift
                if key.endswith("reduction.weight"):
                    value = value[:, _merge_order(value.shape[1])]
                elif key.endswith(("norm.weight", "norm.bias")):
                    value = value[_merge_order(value.shape[0])]
            key = f"{key[: match.start()]}{match.group(1)}stages.{index}.{key[match.end() :]}"
            key = key.replace(".mlp.fc1.", ".ffn.layers.0.0.").replace(".mlp.fc2.", ".ffn.layers.1.")
            if ".attn." in key and ".attn.w_msa." not in key:
                key = key.replace(".attn.", ".attn.w_msa.")
        key = key.replace("patch_embed.proj.", "patch_embed.projection.")
        converted[key] = value
    return converted


def _resize_bias_tables(model_state: Mapping[str, Tensor]) -> Any:
    """A ``state_dict_hook`` resizing relative position bias tables of another window size (bicubic)."""

    def hook(state: dict[str, Tensor]) -> dict[str, Tensor]:
        for key, table in list(state.items()):
            if key.endswith("relative_position_index") and key in model_state:
                if table.shape != model_state[key].shape:
                    del state[key]  # a function of the window size, regenerated by the model
                continue
            if not key.endswith("relative_position_bias_table") or key not in model_state:
                continue
            current = model_state[key]
            (l_ckpt, heads_ckpt), (l_model, heads_model) = table.shape, current.shape
            if heads_ckpt != heads_model:
                warnings.warn(
                    f"{key}: checkpoint has {heads_ckpt} heads, the model {heads_model}; left as is.",
                    stacklevel=2,
                )
            elif l_ckpt != l_model:
                side_ckpt, side_model = int(l_ckpt**0.5), int(l_model**0.5)
                grid = table.permute(1, 0).reshape(1, heads_ckpt, side_ckpt, side_ckpt)
                resized = torch.nn.functional.interpolate(
                    grid.float(), size=(side_model, side_model), mode="bicubic"
                )
                state[key] = resized.view(heads_model, l_model).permute(1, 0).contiguous().to(table.dtype)
        return state

    return hook


def load_swin_weights(
    model: torch.nn.Module,
    path: str | Path,
    *,
    model_bands: Sequence[object],
    ckpt_bands: Sequence[object],
    allow_partial: bool = False,
    weights_only: bool = True,
) -> None:
    """Load a Prithvi Swin checkpoint (mmseg, timm or official layout) into ``model``.

    The classifier (``head.*``) is not loaded. Per-stage output norms (``stages.N.norm``) exist only
    in the mmseg layout; when converting a timm/official checkpoint they keep their initial values,
    as in the reference release.
    """
    state = read_checkpoint(path, weights_only=weights_only)
    # the classifier is never loaded (it stays as initialised, like in the reference release)
    state = {k: v for k, v in state.items() if not (k.startswith("head.") or ".head." in k)}
    ignore_missing = ["relative_position_index", "head."]  # index: fixed buffer timm does not save
    if is_timm_swin_layout(state):
        state = convert_weights_swin2mmseg(state)
        ignore_missing += [k for k in model.state_dict() if re.search(r"stages[._]\d+\.norm\.", k)]
    # feature extractors spell stages ``stages_N``, full models ``stages.N``: use the model's spelling
    joiner = "_" if any(k.startswith("stages_") for k in model.state_dict()) else "."
    state = {_STAGE.sub(lambda m: f"{m.group(1)}stages{joiner}{m.group(2)}.", k): v for k, v in state.items()}
    load_pretrained_weights(
        model,
        state,
        model_bands=model_bands,
        ckpt_bands=ckpt_bands,
        input_layers=[INPUT_LAYER],
        allow_partial=allow_partial,
        ignore_missing=ignore_missing,
        ignore_unexpected=("head.", "norm.", "relative_position_index", "attn_mask"),
        state_dict_hook=_resize_bias_tables(model.state_dict()),
        source=repr(str(path)),
    )


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
    out_indices: Sequence[int] | None = None,
    **kwargs: Any,
) -> PrithviSwin | PrithviSwinFeatures:
    kwargs.pop("num_frames", None)  # single-frame model; the reference drops it too
    if "img_size" in kwargs:
        kwargs.setdefault("pretrain_img_size", kwargs.pop("img_size"))
    args = {**_COMMON_ARGS, **SWIN_ARCHS[variant], **kwargs}
    if bands is None:
        bands = (
            _PRITHVI_BANDS if "in_chans" not in kwargs or kwargs["in_chans"] == len(_PRITHVI_BANDS) else None
        )
    bands = list(bands) if bands is not None else list(range(args["in_chans"]))
    args["in_chans"] = len(bands) if "in_chans" not in kwargs else kwargs["in_chans"]
    if out_indices is None:
        out_indices = tuple(range(len(args["depths"])))
    overlay = args.pop("pretrained_cfg_overlay", None) or {}
    path = ckpt_path or (overlay.get("file") if pretrained else None)
    if path is not None or pretrained:
        path = resolve_weights_file(path, model_name=variant)  # fail fast, before building
    model = build_model_with_cfg(
        PrithviSwin,
        variant,
        pretrained=False,
        pretrained_cfg_overlay=overlay or None,
        bands=bands,
        out_indices=tuple(out_indices),
        **args,
    )
    model.pretrained_bands = list(pretrained_bands) if pretrained_bands is not None else list(_PRITHVI_BANDS)
    model.model_bands = bands
    if path is not None:
        load_swin_weights(
            model,
            path,
            model_bands=bands,
            ckpt_bands=model.pretrained_bands,
            allow_partial=allow_partial,
            weights_only=weights_only,
        )
    if not features_only:
        return model
    features = PrithviSwinFeatures(model, out_indices=out_indices, output_fmt="NHWC", flatten_sequential=True)
    features.pretrained_cfg = features.default_cfg = model.pretrained_cfg
    features.bands = features.model_bands = bands
    features.pretrained_bands = model.pretrained_bands
    return features


@register_model
def prithvi_swin_B(  # noqa: N802 (published model name)
    pretrained: bool = False,
    pretrained_bands: Sequence[object] | None = None,
    bands: Sequence[object] | None = None,
    **kwargs: Any,
) -> PrithviSwin | PrithviSwinFeatures:
    """Prithvi Swin-B (embed 128, depths 2-2-18-2, heads 4-8-16-32) for the six HLS bands.

    Takes :class:`~terratorch.models.backbones.swin_encoder_decoder.MMSegSwinTransformer` arguments, timm's
    ``features_only``/``out_indices``/``pretrained_cfg_overlay``, plus ``ckpt_path``, ``allow_partial``
    and ``weights_only`` (see :mod:`terratorch.models.weights`) and ``img_size`` (alias of
    ``pretrain_img_size``).
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
    """Prithvi Swin-L (embed 192, depths 2-2-18-2, heads 6-12-24-48); kwargs as :func:`prithvi_swin_B`."""
    return _create_prithvi_swin(
        "prithvi_swin_L", pretrained, bands=bands, pretrained_bands=pretrained_bands, **kwargs
    )


# create_timm_model passes our weight kwargs through to entrypoints that handle them themselves.
prithvi_swin_B.handles_weight_kwargs = True  # type: ignore[attr-defined]
prithvi_swin_L.handles_weight_kwargs = True  # type: ignore[attr-defined]
