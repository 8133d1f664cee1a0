"""What the factories need to know about any backbone, whatever library it comes from.

A backbone is any ``nn.Module`` whose ``forward`` returns a list of features. This module answers
the questions the assembled models ask about it: its channel list, the size inputs must be a
multiple of, which extra batch keys its ``forward`` accepts; and it pads inputs to that multiple.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.weights import PretrainedWeightsNotFoundError

__all__ = [
    "PretrainedWeightsNotFoundError",
    "accepted_kwargs",
    "channel_list_of",
    "check_feature_channels",
    "instantiate_spec",
    "pad_to_multiple",
    "patch_size_of",
    "resolve_timm_pretrained",
]


def channel_list_of(backbone: nn.Module) -> list[int]:
    """Channels of each feature ``backbone`` returns.

    Looks at ``backbone.out_channels`` (a list, or an int for a single feature) first, then at a timm
    ``FeatureInfo`` in ``backbone.feature_info`` (only its ``num_chs`` entries are used).

    Raises:
        TypeError: The backbone has neither attribute (or they hold something unusable).
    """
    out_channels = getattr(backbone, "out_channels", None)
    if isinstance(out_channels, int):
        return [out_channels]
    if isinstance(out_channels, (list, tuple)) and all(isinstance(c, int) for c in out_channels):
        return list(out_channels)
    feature_info = getattr(backbone, "feature_info", None)
    if feature_info is not None:
        if hasattr(feature_info, "channels"):
            return [int(c) for c in feature_info.channels()]
        info = getattr(feature_info, "info", feature_info)
        if isinstance(info, (list, tuple)) and all(isinstance(i, Mapping) and "num_chs" in i for i in info):
            return [int(i["num_chs"]) for i in info]
    raise TypeError(
        f"Cannot tell the channels of backbone {type(backbone).__name__}: it needs an `out_channels` "
        "attribute (list of ints, one per returned feature) or a `feature_info` attribute holding a "
        f"timm FeatureInfo (or a list of dicts with 'num_chs'). Found out_channels={out_channels!r}, "
        f"feature_info={type(feature_info).__name__ if feature_info is not None else None}."
    )


def patch_size_of(backbone: nn.Module) -> tuple[int, int] | None:
    """The (height, width) multiple that inputs of ``backbone`` are padded to.

    The backbone's ``patch_size`` (int, ``(h, w)`` or ``(t, h, w)``) combined (least common
    multiple) with the largest ``reduction`` of a timm ``FeatureInfo`` in ``feature_info``, so that
    every pyramid level has an exact size and decoders can fuse levels (a Swin has patch 4 but
    stride-32 features). ``None`` when neither exists: inputs are then not padded.
    """
    size = getattr(backbone, "patch_size", None)
    reduction = _largest_reduction(getattr(backbone, "feature_info", None))
    if size is None:
        return (reduction, reduction) if reduction else None
    if isinstance(size, int):
        patch = (size, size)
    elif isinstance(size, (tuple, list)) and len(size) >= 2:
        patch = (int(size[-2]), int(size[-1]))  # Prithvi-style (t, h, w) tubelets: spatial part
    elif isinstance(size, (tuple, list)) and len(size) == 1:
        patch = (int(size[0]), int(size[0]))
    else:
        raise TypeError(
            f"Backbone {type(backbone).__name__}.patch_size must be an int or a tuple, got {size!r}."
        )
    if reduction:
        patch = (math.lcm(patch[0], reduction), math.lcm(patch[1], reduction))
    return patch


def _largest_reduction(feature_info: Any) -> int | None:
    reduction = getattr(feature_info, "reduction", None)
    if not callable(reduction):
        return None
    values = [r for r in reduction() if isinstance(r, int) and r > 0]
    return max(values) if values else None


def pad_to_multiple(x: Tensor, multiple: tuple[int, int] | None, mode: str = "reflect") -> Tensor:
    """Pad the last two dims (H, W) of ``x`` at the bottom/right up to multiples of ``multiple``.

    Works for ``(B, C, H, W)`` and ``(B, C, T, H, W)`` inputs. ``reflect`` needs the pad to be
    smaller than the image, so tiny images fall back to ``replicate``.
    """
    if multiple is None:
        return x
    height, width = x.shape[-2:]
    pad_h = (-height) % multiple[0]
    pad_w = (-width) % multiple[1]
    if pad_h == 0 and pad_w == 0:
        return x
    if mode == "reflect" and (pad_h >= height or pad_w >= width):
        mode = "replicate"
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, height, width) if x.ndim != 4 else x
    if mode == "constant":
        padded = F.pad(flat, (0, pad_w, 0, pad_h), mode="constant", value=0.0)
    else:
        padded = F.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return padded.reshape(*lead, height + pad_h, width + pad_w)


def accepted_kwargs(module: nn.Module) -> set[str] | None:
    """Names of the keyword arguments ``module.forward`` accepts; ``None`` when it takes ``**kwargs``."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):
        return None
    names: set[str] = set()
    for param in list(signature.parameters.values())[1:]:  # the first one is the input image
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
            names.add(param.name)
    return names


def check_feature_channels(features: list[Tensor], expected: list[int], where: str) -> None:
    """Raise ``ValueError`` when the features' channel axis does not match ``expected``.

    Maps ``(B, C, H, W)`` are checked on dim 1, tokens ``(B, L, D)`` on the last dim; other ranks are
    not checked (e.g. time kept by ``TemporalWrapper(pooling="keep")``).
    """
    received = [_channels(f) for f in features]
    if len(features) != len(expected) or any(r is not None and r != e for r, e in zip(received, expected)):
        raise ValueError(
            f"{where}: the decoder was built for {len(expected)} features with channels {expected}, but "
            f"the backbone (after necks) returned {len(features)} features with channels {received}. Fix "
            "the backbone's out_channels/feature_info, the necks, or build the decoder for this channel list."
        )


def _channels(feature: Tensor) -> int | None:
    if feature.ndim == 4:
        return int(feature.shape[1])
    if feature.ndim == 3:
        return int(feature.shape[-1])
    return None


def instantiate_spec(spec: Any, what: str) -> Any:
    """Build ``{"class_path": "pkg.mod.Class", "init_args": {...}}`` (as written in YAML configs).

    Anything else is returned unchanged, so factories accept names, instances and such specs alike.
    """
    if not isinstance(spec, Mapping) or "class_path" not in spec:
        return spec
    unknown = set(spec) - {"class_path", "init_args"}
    if unknown:
        raise ValueError(
            f"{what} spec has unknown keys {sorted(unknown)}; valid keys: class_path, init_args."
        )
    target = _import_object(str(spec["class_path"]), what)
    return target(**dict(spec.get("init_args") or {}))


def _import_object(path: str, what: str) -> Callable[..., Any]:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ValueError(
            f"{what} class_path {path!r} must be a dotted path such as 'my_pkg.module.MyBackbone'."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ImportError(
            f"{what} class_path {path!r}: cannot import module {module_name!r} ({error})."
        ) from error
    if not hasattr(module, attr):
        raise AttributeError(f"{what} class_path {path!r}: module {module_name!r} has no attribute {attr!r}.")
    return getattr(module, attr)


def resolve_timm_pretrained(name: str, overlay: dict[str, Any] | None) -> dict[str, Any]:
    """Make ``pretrained=True`` for a timm model load from a local file (timm itself would download).

    Returns the ``pretrained_cfg_overlay`` to pass to timm: the user's one when it names an existing
    ``file`` or holds a ``state_dict``; otherwise one pointing at the file that
    :func:`terratorch.models.weights.resolve_weights_file` finds (local caches, then a download only
    when ``TERRATORCH_ALLOW_DOWNLOAD=1``), the rule the Prithvi backbones follow too.

    Raises:
        PretrainedWeightsNotFoundError: The overlay's file does not exist, or no weights were found;
            the message says where it looked and how to proceed.
        CheckpointFormatError: The overlay's file is not a PyTorch checkpoint (text, random bytes).
    """
    from terratorch.models.weights import check_checkpoint_format, resolve_timm_weights_file

    overlay = dict(overlay or {})
    if overlay.get("file"):
        path = Path(os.fspath(overlay["file"])).expanduser()
        if not path.is_file():
            raise PretrainedWeightsNotFoundError(
                f"backbone_pretrained_cfg_overlay file {str(path)!r} for timm model {name!r} does not exist."
            )
        if path.suffix != ".safetensors":  # timm's torch.load error would suggest weights_only=False
            check_checkpoint_format(path)
        overlay["file"] = str(path)
        return overlay
    if overlay.get("state_dict") is not None:
        return overlay
    import timm

    cfg = timm.models.get_pretrained_cfg(name, allow_unregistered=True) if timm.is_model(name) else None
    if cfg is None:
        raise PretrainedWeightsNotFoundError(
            f"pretrained=True for timm backbone {name!r}, but timm publishes no weights for it: pass "
            "backbone_pretrained_cfg_overlay={'file': '<path to weights>'}, or pass pretrained=False."
        )
    overlay["file"] = str(resolve_timm_weights_file(f"timm backbone {name!r}", cfg.to_dict()))
    return overlay
