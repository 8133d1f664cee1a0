"""Small helpers shared by the model factories and models.

``extract_prefix_keys`` routes ``backbone_*`` / ``decoder_*`` / ``head_*`` keyword arguments;
``pad_images`` / ``center_crop`` / ``get_image_size`` are the padding and cropping the models apply;
``TemporalWrapper`` is re-exported here because user code imports it from this path.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from terratorch.models.temporal_wrapper import TemporalWrapper

__all__ = [
    "DecoderNotFoundError",
    "TemporalWrapper",
    "center_crop",
    "describe_state_dict_mismatch",
    "extract_prefix_keys",
    "get_image_size",
    "load_state_dict_checked",
    "pad_images",
    "strip_legacy_prefixes",
]


class DecoderNotFoundError(Exception):
    """A decoder name that no registry knows."""


def extract_prefix_keys(d: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``d`` into the entries whose key starts with ``prefix`` and the rest.

    Args:
        d: Keyword arguments, e.g. ``{"backbone_img_size": 64, "decoder_channels": 32}``.
        prefix: The prefix to match, e.g. ``"backbone_"``.

    Returns:
        ``(extracted, remaining)``: the matching entries with the prefix removed
        (``{"img_size": 64}``) and the other entries unchanged (``{"decoder_channels": 32}``).
    """
    extracted: dict[str, Any] = {}
    remaining: dict[str, Any] = {}
    for key, value in d.items():
        if key.startswith(prefix):
            extracted[key[len(prefix) :]] = value
        else:
            remaining[key] = value
    return extracted, remaining


def get_image_size(x: Any) -> tuple[int, int]:
    """``(H, W)`` of an image tensor, or the largest image of a ``{modality: tensor}`` dict."""
    import torch

    if isinstance(x, torch.Tensor):
        return tuple(x.shape[-2:])  # type: ignore[return-value]
    if isinstance(x, Mapping):
        shapes = [tuple(v.shape[-2:]) for v in x.values() if isinstance(v, torch.Tensor) and v.ndim in (4, 5)]
        if not shapes:
            raise ValueError(
                f"No image modality among inputs {list(x)}; images must be (B, C, H, W) or (B, C, T, H, W)."
            )
        if len(set(shapes)) != 1:
            warnings.warn(
                f"Modalities have different spatial shapes {shapes}; using the largest.", stacklevel=2
            )
            shapes.sort(key=lambda s: s[0] * s[1], reverse=True)
        return shapes[0]  # type: ignore[return-value]
    raise ValueError(
        f"Cannot tell the image size of a {type(x).__name__}; expected a tensor or a dict of tensors."
    )


def center_crop(x: Any, out_size: Sequence[int]) -> Any:
    """Crop the last two dims of ``x`` to ``out_size`` around the centre (no-op where already smaller)."""
    h_out, w_out = (int(s) for s in out_size)
    height, width = x.shape[-2], x.shape[-1]
    top = max((height - h_out) // 2, 0)
    left = max((width - w_out) // 2, 0)
    return x[..., top : top + h_out, left : left + w_out]


def _patch_hw(patch_size: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(patch_size, int):
        return 1, patch_size, patch_size
    sizes = [int(s) for s in patch_size]
    if len(sizes) == 1:
        return 1, sizes[0], sizes[0]
    if len(sizes) == 2:
        return 1, sizes[0], sizes[1]
    if len(sizes) == 3:
        return sizes[0], sizes[1], sizes[2]
    raise ValueError(f"patch_size {patch_size!r} is invalid: give an int or 1, 2 or 3 ints ((t,) h, w).")


def pad_images(imgs: Any, patch_size: int | Sequence[int], padding: str, grid_multiple: int = 2) -> Any:
    """Pad images so H and W are multiples of ``grid_multiple`` patches (and T of the tubelet size).

    The padding is split evenly between both sides (the models crop the centre back). The default,
    twice the patch size as in the reference, keeps the token grid even; models pass the multiple their
    necks declare (:attr:`terratorch.models.necks.Neck.input_multiple`, combined with 2). Dicts are padded
    per modality; tensors with fewer than 4 dims and non-tensors pass through. ``reflect`` padding
    larger than the image falls back to ``replicate`` (the reference release raises there).
    """
    import torch
    import torch.nn.functional as F

    if isinstance(imgs, Mapping):
        return {k: pad_images(v, patch_size, padding, grid_multiple) for k, v in imgs.items()}
    if not isinstance(imgs, torch.Tensor) or imgs.ndim < 4:
        return imgs
    p_t, p_h, p_w = _patch_hw(patch_size)
    if grid_multiple < 1:
        raise ValueError(f"grid_multiple must be a positive number of patches, got {grid_multiple}.")
    p_h, p_w = p_h * grid_multiple, p_w * grid_multiple
    if p_t > 1 and imgs.ndim < 5:
        raise ValueError(
            f"Padding to a tubelet size of {p_t} frames needs (B, C, T, H, W) inputs, got shape "
            f"{tuple(imgs.shape)}."
        )
    height, width = imgs.shape[-2:]
    frames = imgs.shape[-3] if imgs.ndim > 4 else 1
    t_pad, h_pad, w_pad = (-frames) % p_t, (-height) % p_h, (-width) % p_w
    if not (t_pad or h_pad or w_pad):
        return imgs
    pads = [w_pad // 2, w_pad - w_pad // 2, h_pad // 2, h_pad - h_pad // 2]
    if t_pad:
        pads += [0, t_pad]
    mode = padding
    if mode == "reflect" and (
        h_pad // 2 >= height or (h_pad - h_pad // 2) >= height or w_pad - w_pad // 2 >= width
    ):
        mode = "replicate"
    return torch.stack([F.pad(img, tuple(pads), mode=mode) for img in imgs])


LEGACY_TIMM_SEGMENT = "_timm_module"


def strip_legacy_prefixes(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Drop the ``_timm_module.`` key segment that checkpoints of older TerraTorch releases carry.

    ``model.encoder._timm_module.conv1.weight`` becomes ``model.encoder.conv1.weight``; other keys are
    unchanged. Returns a new dict (same tensors) in the original order.
    """
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        if LEGACY_TIMM_SEGMENT in parts:
            parts.remove(LEGACY_TIMM_SEGMENT)
            key = ".".join(parts)
        out[key] = value
    if hasattr(state_dict, "_metadata"):
        out = _with_metadata(out, state_dict._metadata)  # type: ignore[attr-defined]
    return out


def _with_metadata(state: dict[str, Any], metadata: Any) -> dict[str, Any]:
    from collections import OrderedDict

    ordered = OrderedDict(state)
    ordered._metadata = metadata  # type: ignore[attr-defined]
    return ordered


def describe_state_dict_mismatch(
    expected: Mapping[str, Any], loaded: Mapping[str, Any], owner: str, limit: int = 5
) -> str:
    """A short report of how a checkpoint's keys/shapes differ from a model's ('' when they fit).

    Names at most ``limit`` keys per kind (missing, unexpected, shape mismatch) with their shapes and
    the total counts, instead of torch's list of every key.
    """

    def shape(value: Any) -> str:
        return str(list(value.shape)) if hasattr(value, "shape") else type(value).__name__

    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    resized = [
        k
        for k in expected
        if k in loaded
        and hasattr(loaded[k], "shape")
        and hasattr(expected[k], "shape")
        and tuple(loaded[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or resized):
        return ""
    lines = [f"The checkpoint does not fit {owner}:"]
    if missing:
        shown = ", ".join(f"{k} {shape(expected[k])}" for k in missing[:limit])
        lines.append(f"  {len(missing)} key(s) of the model missing from the checkpoint, first: {shown}")
    if unexpected:
        shown = ", ".join(f"{k} {shape(loaded[k])}" for k in unexpected[:limit])
        lines.append(f"  {len(unexpected)} checkpoint key(s) the model does not have, first: {shown}")
    if resized:
        shown = ", ".join(
            f"{k}: checkpoint {shape(loaded[k])}, model {shape(expected[k])}" for k in resized[:limit]
        )
        lines.append(f"  {len(resized)} shape mismatch(es), first: {shown}")
    lines.append(
        "  Build the model with the arguments the checkpoint was trained with (model_args), or load with "
        "strict=False to skip keys."
    )
    return "\n".join(lines)


def load_state_dict_checked(
    module: Any, state_dict: Mapping[str, Any], strict: bool = True, **kwargs: Any
) -> Any:
    """``module.load_state_dict`` after :func:`strip_legacy_prefixes`, with a short mismatch report.

    With ``strict=True`` a mismatch raises ``RuntimeError`` naming the first few keys and shapes;
    with ``strict=False`` only shape mismatches raise (as in torch) and missing/unexpected keys are
    returned.
    """
    state_dict = strip_legacy_prefixes(state_dict)
    expected = module.state_dict()
    report = describe_state_dict_mismatch(expected, state_dict, type(module).__name__)
    if report and (strict or "shape mismatch" in report):
        if not strict:
            keep = {
                k: v
                for k, v in expected.items()
                if k in state_dict
                and hasattr(v, "shape")
                and hasattr(state_dict[k], "shape")
                and tuple(v.shape) != tuple(state_dict[k].shape)
            }
            report = describe_state_dict_mismatch(
                {k: expected[k] for k in keep}, {k: state_dict[k] for k in keep}, type(module).__name__
            )
        raise RuntimeError(report)
    import torch

    return torch.nn.Module.load_state_dict(module, state_dict, strict=strict, **kwargs)
