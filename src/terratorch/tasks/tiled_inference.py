"""Tiled (sliding-window) inference for scenes larger than a model's input size.

Two entry points share one crop grid, one blending window and one accumulation routine:

- :func:`tiled_inference` works on an in-memory tensor ``(B, C, H, W)`` (or ``(B, C, T, H, W)``).
  Peak memory is the output accumulator ``(B, out_C, H, W)`` + one batch of crops (+ two 1-D weight
  profiles); crop coordinates are generated lazily and crops are cut out one batch at a time.
- :func:`tiled_inference_geotiff` streams a GeoTIFF on disk to a GeoTIFF on disk: it reads one horizontal
  strip of rows (the height of a crop) at a time, keeps an accumulator only as tall as a crop, and writes
  rows as soon as no later crop can touch them. Memory is bounded by the strip, not by the scene. The
  raster rules (reading windows, nodata, output dtype and profile, row writing) are those of
  :mod:`terratorch.io.geotiff`; this module only tiles, blends and batches.

Crop placement: along each axis crops start at ``0, stride, 2*stride, ...`` and the last crop is aligned
with the far border, so every pixel is covered and no crop reaches outside the image. An axis shorter
than the crop gets a single crop that is padded (``padding`` mode) and cropped back.

Blending: overlapping predictions are averaged with a per-crop weight window. ``blend="cosine"`` uses a
Hann window sampled at pixel centres (strictly positive, so every covered pixel has positive weight),
held at its peak value on every side of a crop that touches the image border: border pixels are seen
by only one crop, so tapering there would only throw precision away. A window that reaches zero at
the crop edge leaves image-border pixels with zero (or nearly zero) total weight and blows them up in the
final division; that upstream TerraTorch bug cannot happen here. ``blend="none"`` averages overlapping
predictions with equal weight.

Normalisation: every crop window is an outer product ``wy ⊗ wx`` and the crops form a product grid, so
the summed weight of a pixel is ``py[y] * px[x]`` with ``py``/``px`` the summed 1-D windows. No ``(H, W)``
weight map is accumulated; the blended sum is divided by the two profiles.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from terratorch.choices import unknown_choice
from terratorch.io import geotiff

__all__ = [
    "BLEND_MODES",
    "OUTPUT_MODES",
    "PADDING_MODES",
    "TileGrid",
    "TiledInferenceParameters",
    "reference_blend_mask",
    "tiled_inference",
    "tiled_inference_geotiff",
]

BLEND_MODES = ("cosine", "none")
PADDING_MODES = ("reflect", "replicate", "constant")
OUTPUT_MODES = ("argmax", "probabilities", "raw")


# ----------------------------------------------------------------------------- validation
def _choice(value: str, valid: Sequence[str], what: str) -> str:
    """Return ``value`` if it is one of ``valid``, else raise a ValueError listing the options."""
    if value in valid:
        return value
    raise ValueError(unknown_choice(what, str(value), valid))


def _positive_int(value: Any, name: str) -> int:
    """Check that ``value`` is an int >= 1 (bools rejected) and return it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _crop_and_stride(
    crop: int, stride: int, h_crop: int | None, w_crop: int | None, h_stride: int | None, w_stride: int | None
) -> tuple[int, int, int, int]:
    """Resolve per-axis crop/stride (``h_*``/``w_*`` override ``crop``/``stride``) and validate them.

    Returns:
        ``(crop_h, crop_w, stride_h, stride_w)``.
    """
    crop_h = _positive_int(crop if h_crop is None else h_crop, "h_crop" if h_crop is not None else "crop")
    crop_w = _positive_int(crop if w_crop is None else w_crop, "w_crop" if w_crop is not None else "crop")
    stride_h = _positive_int(
        stride if h_stride is None else h_stride, "h_stride" if h_stride is not None else "stride"
    )
    stride_w = _positive_int(
        stride if w_stride is None else w_stride, "w_stride" if w_stride is not None else "stride"
    )
    for axis, c, s in (("height", crop_h, stride_h), ("width", crop_w, stride_w)):
        if s > c:
            raise ValueError(
                f"stride {s} is larger than crop {c} along the {axis}: crops would leave {s - c}-pixel "
                f"gaps. Use a stride <= crop (e.g. stride={max(1, c - c // 8)} for crop={c})."
            )
    return crop_h, crop_w, stride_h, stride_w


# ----------------------------------------------------------------------------- crop grid
def _axis_starts(length: int, crop: int, stride: int) -> tuple[int, ...]:
    """Start offsets of the crops along one axis; the last crop ends exactly at ``length``.

    An axis no longer than ``crop`` gets the single start ``0`` (that crop is padded).
    """
    if length <= crop:
        return (0,)
    starts = list(range(0, length - crop, stride))
    starts.append(length - crop)
    return tuple(starts)


def _axis_window(crop: int, taper_start: bool, taper_end: bool, blend: str) -> Tensor:
    """1-D blending weights ``(crop,)`` float32, strictly positive.

    A Hann window sampled at pixel centres, ``sin(pi * (i + 0.5) / crop) ** 2``; a side that touches the
    image border is held at 1 up to the centre (no other crop covers those pixels).
    """
    if blend == "none":
        return torch.ones(crop, dtype=torch.float32)
    pos = (torch.arange(crop, dtype=torch.float64) + 0.5) / crop
    window = torch.sin(math.pi * pos) ** 2
    if not taper_start:
        window = torch.where(pos <= 0.5, 1.0, window)
    if not taper_end:
        window = torch.where(pos >= 0.5, 1.0, window)
    return window.to(torch.float32)


@dataclass(frozen=True)
class TileGrid:
    """Crop positions of a ``height x width`` image and their blending weights.

    Attributes:
        height, width: Image size in pixels.
        crop_h, crop_w: Crop size fed to the model.
        ys, xs: Crop start rows / columns (the last one aligned with the border).
        blend: Blending mode, one of :data:`BLEND_MODES`.
    """

    height: int
    width: int
    crop_h: int
    crop_w: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    blend: str

    @classmethod
    def build(
        cls, height: int, width: int, crop_h: int, crop_w: int, stride_h: int, stride_w: int, blend: str
    ) -> TileGrid:
        """Place crops over a ``height x width`` image (see module docstring)."""
        return cls(
            height=height,
            width=width,
            crop_h=crop_h,
            crop_w=crop_w,
            ys=_axis_starts(height, crop_h, stride_h),
            xs=_axis_starts(width, crop_w, stride_w),
            blend=blend,
        )

    def __len__(self) -> int:
        return len(self.ys) * len(self.xs)

    def window(self, y: int, x: int, device: torch.device | str = "cpu") -> Tensor:
        """Weights ``(h, w)`` float32 of the crop at ``(y, x)``, clipped to the image (``h <= crop_h``)."""
        return _window_2d(
            (self.crop_h, y > 0, y + self.crop_h < self.height, min(self.crop_h, self.height - y)),
            (self.crop_w, x > 0, x + self.crop_w < self.width, min(self.crop_w, self.width - x)),
            self.blend,
            str(device),
        )

    def profiles(self, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
        """Summed axis windows ``(height,)`` and ``(width,)`` (float64): the weight of pixel ``(y, x)`` is
        ``py[y] * px[x]``, strictly positive everywhere."""
        return (
            _axis_profile(self.height, self.crop_h, self.ys, self.blend).to(device),
            _axis_profile(self.width, self.crop_w, self.xs, self.blend).to(device),
        )


def _axis_profile(length: int, crop: int, starts: tuple[int, ...], blend: str) -> Tensor:
    """Sum of the clipped 1-D windows of all crops along one axis, ``(length,)`` float64."""
    total = torch.zeros(length, dtype=torch.float64)
    for start in starts:
        keep = min(crop, length - start)
        window = _axis_window(crop, start > 0, start + crop < length, blend)[:keep]
        total[start : start + keep] += window.to(torch.float64)
    return total


def _normalise(acc: Tensor, py: Tensor, px: Tensor) -> Tensor:
    """Divide blended sums ``(..., rows, W)`` in place by the weights ``py[:, None] * px`` (see module doc).

    Both entry points go through here, so streaming and in-memory results agree to the last bit whenever
    the model returns the same crop predictions.
    """
    return acc.div_(py.to(acc.dtype)[:, None]).div_(px.to(acc.dtype))


@functools.lru_cache(maxsize=64)
def _window_2d(
    rows: tuple[int, bool, bool, int], cols: tuple[int, bool, bool, int], blend: str, device: str
) -> Tensor:
    """Outer product of two clipped axis windows; ``rows``/``cols`` = (crop, taper_start, taper_end, keep).

    Cached: a grid has at most nine distinct windows (interior, edges, corners), reused for every crop.
    Callers must not modify the returned tensor.
    """
    wy = _axis_window(*rows[:3], blend)[: rows[3]]
    wx = _axis_window(*cols[:3], blend)[: cols[3]]
    return (wy[:, None] * wx[None, :]).to(device)


@dataclass(frozen=True)
class _Tile:
    """One crop: batch item ``b`` at top-left ``(y, x)`` in image coordinates."""

    b: int
    y: int
    x: int


def _batched(tiles: Iterable[_Tile], size: int) -> Iterator[list[_Tile]]:
    """Group a lazy tile iterator into lists of at most ``size`` tiles."""
    iterator = iter(tiles)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


# ----------------------------------------------------------------------------- crops and model
def _pad_to(crop: Tensor, crop_h: int, crop_w: int, padding: str) -> Tensor:
    """Pad a crop ``(..., h, w)`` at the bottom/right up to ``(..., crop_h, crop_w)``.

    Reflection needs the padding to be smaller than the side, so it is applied in steps; a side of one
    pixel falls back to replication.
    """
    lead = crop.shape[:-2]
    out = crop.reshape(1, -1, *crop.shape[-2:])
    while out.shape[-2] < crop_h or out.shape[-1] < crop_w:
        h, w = out.shape[-2:]
        if padding == "reflect" and min(h, w) >= 2:
            pad_h, pad_w, mode = min(crop_h - h, h - 1), min(crop_w - w, w - 1), "reflect"
        else:
            pad_h, pad_w, mode = crop_h - h, crop_w - w, "replicate" if padding == "reflect" else padding
        out = F.pad(out, (0, pad_w, 0, pad_h), mode=mode)
    return out.reshape(*lead, crop_h, crop_w)


def _cut_crops(
    image: Tensor,
    tiles: list[_Tile],
    grid: TileGrid,
    padding: str,
    row_offset: int = 0,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Stack the crops of ``tiles`` from ``image`` ``(B, C, [T,] rows, W)`` into ``(n, C, [T,] h, w)``.

    ``row_offset`` is the image row stored at ``image`` row 0 (streaming strips); ``dtype`` converts each
    crop (streaming keeps strips in the file's dtype and converts crop by crop).
    """
    crops = []
    for tile in tiles:
        top = tile.y - row_offset
        crop = image[tile.b, ..., top : top + grid.crop_h, tile.x : tile.x + grid.crop_w]
        if dtype is not None:
            crop = crop.to(dtype)
        if crop.shape[-2:] != (grid.crop_h, grid.crop_w):
            crop = _pad_to(crop, grid.crop_h, grid.crop_w, padding)
        crops.append(crop)
    return torch.stack(crops)


def _per_crop_kwargs(kwargs: dict[str, Any], tiles: list[_Tile], batch: int) -> dict[str, Any]:
    """Select the rows of per-sample kwargs (tensors whose first dim is the batch size) for each crop."""
    if not kwargs:
        return kwargs
    selected: dict[str, Any] = {}
    index: Tensor | None = None
    for key, value in kwargs.items():
        if isinstance(value, Tensor) and value.ndim >= 1 and value.shape[0] == batch:
            if index is None:
                index = torch.tensor([t.b for t in tiles], device=value.device)
            selected[key] = value.index_select(0, index.to(value.device))
        else:
            selected[key] = value
    return selected


def _run_model(
    model_forward: Callable[..., Any], crops: Tensor, kwargs: dict[str, Any], out_channels: int | None
) -> tuple[Tensor, bool]:
    """Call the model on a crop batch and check that it returns pixel-wise predictions.

    Returns:
        Predictions ``(n, out_C, [...,] h, w)`` and whether the model returned ``(n, h, w)`` (then a
        channel dim of 1 was added).
    """
    out = model_forward(crops, **kwargs)
    if not isinstance(out, Tensor):
        out = getattr(out, "output", out)  # ModelOutput and look-alikes
    if not isinstance(out, Tensor):
        raise TypeError(
            f"model_forward must return a Tensor or a ModelOutput, got {type(out).__name__}; "
            "pass e.g. `lambda x: model(x).output`."
        )
    n, crop_hw = crops.shape[0], tuple(crops.shape[-2:])
    if out.ndim < 3 or out.shape[0] != n or tuple(out.shape[-2:]) != crop_hw:
        raise ValueError(
            f"tiled_inference needs pixel-wise predictions (n, C, h, w) or (n, h, w) at the crop size; "
            f"for crops {tuple(crops.shape)} model_forward returned {tuple(out.shape)}."
        )
    if not out.is_floating_point():
        raise TypeError(
            f"model_forward returned {out.dtype} predictions; overlapping crops are averaged, so return "
            "logits, probabilities or values (floating point), and take the argmax afterwards."
        )
    single = out.ndim == 3
    if single:
        out = out.unsqueeze(1)
    if out_channels is not None and out.shape[1] != out_channels:
        raise ValueError(f"out_channels={out_channels} but model_forward returned {out.shape[1]} channels.")
    return out, single


def _accumulate(acc: Tensor, out: Tensor, tiles: list[_Tile], grid: TileGrid, row0: int) -> None:
    """Add window-weighted predictions ``out`` ``(n, C, [...,] h, w)`` into ``acc`` ``(B, C, ..., rows, W)``.

    ``row0`` is the image row stored at accumulator row 0 (non-zero for streaming strips).
    """
    for i, tile in enumerate(tiles):
        window = grid.window(tile.y, tile.x, acc.device).to(acc.dtype)
        h, w = window.shape
        top = tile.y - row0
        region = acc[tile.b, ..., top : top + h, tile.x : tile.x + w]
        region.addcmul_(out[i, ..., :h, :w].to(acc.dtype), window)


def _accumulator_dtype(out: Tensor) -> torch.dtype:
    """Float64 outputs accumulate in float64, everything else in float32 (half precision would drift)."""
    return torch.float64 if out.dtype == torch.float64 else torch.float32


# ----------------------------------------------------------------------------- reference blending
@dataclass
class TiledInferenceParameters:
    """Tiled-inference settings in one object (the reference release's deprecated spelling).

    ``tiled_inference(forward, x, out_channels, params)`` reads every field and ignores the matching
    keyword arguments, as the reference does. The reference declares its defaults as one-element
    tuples (a trailing-comma slip); ours are the plain values.
    """

    h_crop: int = 224
    h_stride: int = 200
    w_crop: int = 224
    w_stride: int = 200
    delta: int = 4
    average_patches: bool = True
    blend_overlaps: bool = True
    batch_size: int = 16
    verbose: bool = False


def _first(value: Any) -> Any:
    """Unwrap a one-element tuple (defaults of a reference-built ``TiledInferenceParameters``)."""
    return value[0] if isinstance(value, tuple) and len(value) == 1 else value


def _ramp_axis(crop: int, stride: int, delta: int) -> Tensor:
    """1-D weights of a reference blend mask: a raised-cosine ramp over the overlap on both ends."""
    overlap = min(crop // 2, crop - stride) - delta
    pos = torch.arange(crop - 2 * delta)
    weights = torch.ones(pos.shape[0], dtype=torch.float32)
    if overlap:
        ramp = torch.cos(math.pi * (pos[:overlap] + 1) / (overlap + 1)) / 2 + 0.5
        weights[:overlap] = ramp.flip(0)
        weights[-overlap:] = ramp
    return weights


def reference_blend_mask(h_crop: int, h_stride: int, w_crop: int, w_stride: int, delta: int = 0) -> Tensor:
    """Weights ``(h_crop - 2 delta, w_crop - 2 delta)`` the reference gives each crop's kept area.

    Every weight is at least ``1e-6`` so every pixel covered by a crop ends with positive weight.
    """
    mask = _ramp_axis(h_crop, h_stride, delta)[:, None] * _ramp_axis(w_crop, w_stride, delta)[None, :]
    return mask + 1e-6


def _reference_chips(h_img: int, w_img: int, h_crop: int, h_stride: int, w_crop: int, w_stride: int):
    """Crop corners ``(row, col, interior)`` in the reference's order (it matters without averaging).

    The right column and the bottom row of crops are aligned with the far border; the grid proper
    starts at 0 and steps by the stride while a full crop plus one pixel still fits.
    """
    rows = range(0, h_img - h_crop - 1, h_stride)
    cols = range(0, w_img - w_crop - 1, w_stride)
    for row in rows:
        yield row, w_img - w_crop, False
    for col in cols:
        yield h_img - h_crop, col, False
    yield h_img - h_crop, w_img - w_crop, False
    for row in rows:
        for col in cols:
            yield row, col, row != 0 and col != 0


def _reference_tiled(
    model_forward: Callable[..., Any],
    input_batch: Tensor,
    h_crop: int,
    w_crop: int,
    h_stride: int,
    w_stride: int,
    delta: int,
    average_patches: bool,
    blend_overlaps: bool,
    batch_size: int,
    verbose: bool,
    padding: str | bool,
    device: str | torch.device | None,
    model_kwargs: dict[str, Any],
) -> Tensor:
    """Blend crops exactly as the reference release does for the same parameters.

    The image is padded by ``delta`` on each side (unless ``padding`` is false), ``delta`` pixels are
    dropped from every crop edge, kept areas are weighted by :func:`reference_blend_mask` and the sum
    is divided by the summed weights (or the last crop wins when ``average_patches`` is false).
    """
    sample = next(iter(input_batch.values())) if isinstance(input_batch, dict) else input_batch
    if sample.shape[-2] <= h_crop and sample.shape[-1] <= w_crop:
        with torch.no_grad():
            return model_forward(input_batch, **model_kwargs)
    if not isinstance(input_batch, Tensor):
        raise TypeError("tiled_inference takes a tensor input_batch; concatenate dict modalities first.")
    if (h_crop - h_stride) // 2 < delta or (w_crop - w_stride) // 2 < delta:
        delta = min((h_crop - h_stride) // 2, (w_crop - w_stride) // 2)
        warnings.warn(f"tiled_inference: delta exceeds half the overlap; using delta={delta}.", stacklevel=3)
    ret_device = device or input_batch.device
    image = input_batch.cpu()
    batch = image.shape[0]
    if padding:
        pad = (delta, delta, delta, delta, *([0, 0] * (image.ndim - 4)))
        image = F.pad(image, pad, mode=padding)
    h_img, w_img = image.shape[-2:]
    if blend_overlaps:
        inner_mask = reference_blend_mask(h_crop, h_stride, w_crop, w_stride, delta)
        border_mask = inner_mask if padding else reference_blend_mask(h_crop, h_stride, w_crop, w_stride)
    else:
        inner_mask = torch.ones(h_crop - 2 * delta, w_crop - 2 * delta)
        border_mask = inner_mask if padding else torch.ones(h_crop, w_crop)

    entries = []  # (b, row, col, trimmed)
    for row, col, interior in _reference_chips(h_img, w_img, h_crop, h_stride, w_crop, w_stride):
        trimmed = bool(padding) or interior
        entries.extend((b, row, col, trimmed) for b in range(batch))

    preds: Tensor | None = None
    counts: Tensor | None = None
    calls = range(0, len(entries), batch_size)
    with torch.no_grad():
        for start in _progress(calls, total=len(calls), enabled=verbose, unit="batch"):
            chunk = entries[start : start + batch_size]
            crops = torch.stack([image[b, ..., r : r + h_crop, c : c + w_crop] for b, r, c, _ in chunk])
            kwargs = _per_crop_kwargs(model_kwargs, [_Tile(b, r, c) for b, r, c, _ in chunk], batch)
            out = model_forward(crops.to(ret_device), **kwargs)
            out = getattr(out, "output", out).cpu()
            for (b, r, c, trimmed), predicted in zip(chunk, out, strict=True):
                if preds is None:
                    channels = 1 if predicted.ndim == 2 else predicted.shape[0]
                    preds = torch.zeros(batch, channels, h_img, w_img)
                    counts = torch.zeros(batch, h_img, w_img)
                if trimmed:
                    predicted = predicted[..., delta : h_crop - delta, delta : w_crop - delta]
                    rows, cols = slice(r + delta, r + h_crop - delta), slice(c + delta, c + w_crop - delta)
                    mask = inner_mask
                else:
                    rows, cols = slice(r, r + h_crop), slice(c, c + w_crop)
                    mask = border_mask
                if average_patches:
                    preds[b, :, rows, cols] += predicted * mask
                else:
                    preds[b, :, rows, cols] = predicted
                counts[b, rows, cols] += mask
    if padding:
        preds = preds[..., delta:-delta, delta:-delta]
        counts = counts[..., delta:-delta, delta:-delta]
    if bool((counts == 0).any()):
        raise RuntimeError(
            "tiled_inference: some pixels were covered by no crop; use a stride smaller than the crop "
            "minus 2*delta."
        )
    if average_patches:
        preds = preds / counts.unsqueeze(1)
    return preds.to(ret_device)


# ----------------------------------------------------------------------------- dict inputs
def pack_modalities(
    input_batch: Mapping[str, Tensor], model_forward: Callable[..., Any]
) -> tuple[Tensor, Callable[..., Any]]:
    """Join a ``{modality: tensor}`` batch along the channels so every modality is tiled the same way.

    Returns the joined ``(B, sum C, [T,] H, W)`` tensor and a forward that splits each crop batch back
    into ``{modality: crops}`` (each in its own dtype) before calling ``model_forward``.

    Raises:
        ValueError: a value is not a tensor, or the modalities differ in rank, ``H x W`` or time
            steps (names every modality with its shape).
    """
    modalities = list(input_batch)
    tensors = list(input_batch.values())
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        kinds = {m: type(v).__name__ for m, v in input_batch.items()}
        raise ValueError(f"tiled_inference: a dict input_batch must map modalities to tensors, got {kinds}.")
    shapes = ", ".join(f"{m}: {tuple(t.shape)}" for m, t in input_batch.items())
    ranks = {t.ndim for t in tensors}
    if len(ranks) != 1 or ranks.pop() not in (4, 5):
        raise ValueError(
            f"tiled_inference: the modalities must all be (B, C, H, W) or all (B, C, T, H, W); got {shapes}."
        )
    if len({(t.shape[0], *t.shape[2:]) for t in tensors}) != 1:
        raise ValueError(
            f"tiled_inference: the modalities must share batch size, time steps and H x W (tiles are cut at "
            f"the same pixels in all of them); got {shapes}."
        )
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    sizes = [t.shape[1] for t in tensors]
    dtypes = [t.dtype for t in tensors]
    joined = torch.cat([t.to(dtype) for t in tensors], dim=1)

    def forward(crops: Tensor, **kwargs: Any) -> Any:
        parts = torch.split(crops, sizes, dim=1)
        return model_forward({m: p.to(d) for m, p, d in zip(modalities, parts, dtypes)}, **kwargs)

    return joined, forward


# ----------------------------------------------------------------------------- in memory
def tiled_inference(
    model_forward: Callable[..., Any],
    input_batch: Tensor,
    out_channels: int | None = None,
    inference_parameters: TiledInferenceParameters | None = None,
    crop: int = 224,
    stride: int = 192,
    delta: int = 8,
    h_crop: int | None = None,
    w_crop: int | None = None,
    h_stride: int | None = None,
    w_stride: int | None = None,
    average_patches: bool = True,
    blend_overlaps: bool = True,
    batch_size: int = 16,
    verbose: bool = False,
    padding: str | bool = "reflect",
    device: str | torch.device | None = None,
    blend: str | None = None,
    **model_kwargs: Any,
) -> Tensor:
    """Run a model over overlapping crops of a large image and blend the crop predictions.

    The positional order and keywords are the reference release's, so
    ``tiled_inference(forward, x, n_classes, TiledInferenceParameters(...))`` works unchanged.
    ``blend`` picks the algorithm:

    - ``None`` (default) or ``"reference"``: the reference's blending (``delta`` border trim,
      raised-cosine overlap ramps, ``average_patches``/``blend_overlaps``), matching its numbers for
      the same parameters. An image no larger than one crop is passed to the model whole.
    - ``"cosine"`` / ``"none"``: our crop grid (see the module docstring): Hann window or plain
      average, no border trim, crops never leave the image; the same grid as
      :func:`tiled_inference_geotiff`, so streamed and in-memory results agree. ``delta``,
      ``average_patches``, ``blend_overlaps`` and ``device`` do not apply.

    Args:
        model_forward: Callable taking a crop batch ``(n, C, [T,] h_crop, w_crop)`` (plus ``model_kwargs``)
            and returning ``(n, out_C, h_crop, w_crop)``, ``(n, h_crop, w_crop)`` or a ``ModelOutput``
            (its ``.output`` is used), e.g. ``lambda x: model(x).output``.
        input_batch: ``(B, C, H, W)`` or ``(B, C, T, H, W)`` on any device; any ``H x W``. A
            ``{modality: tensor}`` dict (multimodal models) is tiled with the same crops in every
            modality, and ``model_forward`` receives ``{modality: crops}``.
        out_channels: Expected number of output channels (checked by ``cosine``/``none``); otherwise
            inferred from the first batch.
        inference_parameters: Deprecated settings object; when given its fields replace ``h_crop``,
            ``h_stride``, ``w_crop``, ``w_stride``, ``delta``, ``average_patches``,
            ``blend_overlaps``, ``batch_size`` and ``verbose``.
        crop, stride: Crop size and step in pixels for both axes.
        delta: Pixels dropped from each crop edge (reference blending).
        h_crop, w_crop, h_stride, w_stride: Per-axis overrides of ``crop`` / ``stride``.
        average_patches: Average overlapping crops (else the last crop wins; reference blending).
        blend_overlaps: Ramp the weights over overlaps (else equal weights; reference blending).
        batch_size: Crops per ``model_forward`` call (crops of all ``B`` images are batched together).
        verbose: Show a progress bar over model calls.
        padding: Padding mode: reference blending pads the image by ``delta`` (``False``: no
            padding); ``cosine``/``none`` pad crops of an image smaller than the crop
            (``"reflect"``, ``"replicate"`` or ``"constant"``).
        device: Device of the result and of the crops given to the model (reference blending;
            default: the input's device).
        blend: ``None``/``"reference"``, ``"cosine"`` or ``"none"`` (see above).
        **model_kwargs: Passed to ``model_forward``; tensors whose first dimension is ``B`` are treated as
            per-sample and indexed per crop (e.g. ``temporal_coords``).

    Returns:
        ``(B, out_C, H, W)`` on the input's device (``cosine``/``none`` return ``(B, H, W)`` when the
        model returns ``(n, h, w)``, in the model's output dtype).

    Raises:
        ValueError: Bad crop/stride/batch_size/blend/padding, input rank, or model output shape.
        TypeError: ``model_forward`` returned something other than floating-point pixel-wise predictions.
        Any error of ``model_forward`` (including CUDA out-of-memory) propagates unchanged.
    """
    if inference_parameters is not None:
        warnings.warn(
            "tiled_inference: inference_parameters is deprecated (as in the reference); pass its fields "
            "as keyword arguments. Its fields replace the matching keywords.",
            DeprecationWarning,
            stacklevel=2,
        )
        h_crop, h_stride = _first(inference_parameters.h_crop), _first(inference_parameters.h_stride)
        w_crop, w_stride = _first(inference_parameters.w_crop), _first(inference_parameters.w_stride)
        delta = _first(inference_parameters.delta)
        average_patches = _first(inference_parameters.average_patches)
        blend_overlaps = _first(inference_parameters.blend_overlaps)
        batch_size = _first(inference_parameters.batch_size)
        verbose = _first(inference_parameters.verbose)
    if isinstance(input_batch, Mapping):
        input_batch, model_forward = pack_modalities(input_batch, model_forward)
    if blend is None or blend == "reference":
        crop_h, crop_w, stride_h, stride_w = _crop_and_stride(
            crop, stride, h_crop, w_crop, h_stride, w_stride
        )
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise ValueError(f"delta must be a non-negative integer, got {delta!r}.")
        if padding and delta == 0:
            raise ValueError("tiled_inference: padding needs delta >= 1 (or padding=False).")
        if padding and padding not in PADDING_MODES:
            _choice(padding, PADDING_MODES, "padding")
        return _reference_tiled(
            model_forward,
            input_batch,
            crop_h,
            crop_w,
            stride_h,
            stride_w,
            delta,
            bool(average_patches),
            bool(blend_overlaps),
            _positive_int(batch_size, "batch_size"),
            verbose,
            padding,
            device,
            model_kwargs,
        )
    return _grid_tiled(
        model_forward,
        input_batch,
        out_channels=out_channels,
        crop=crop,
        stride=stride,
        h_crop=h_crop,
        w_crop=w_crop,
        h_stride=h_stride,
        w_stride=w_stride,
        batch_size=batch_size,
        blend=blend,
        padding=padding if isinstance(padding, str) else "reflect",
        verbose=verbose,
        **model_kwargs,
    )


def _grid_tiled(
    model_forward: Callable[..., Any],
    input_batch: Tensor,
    out_channels: int | None,
    crop: int,
    stride: int,
    h_crop: int | None,
    w_crop: int | None,
    h_stride: int | None,
    w_stride: int | None,
    batch_size: int,
    blend: str,
    padding: str,
    verbose: bool,
    **model_kwargs: Any,
) -> Tensor:
    """Our crop grid with ``blend`` ``cosine`` or ``none`` (see :func:`tiled_inference`)."""
    crop_h, crop_w, stride_h, stride_w = _crop_and_stride(crop, stride, h_crop, w_crop, h_stride, w_stride)
    batch_size = _positive_int(batch_size, "batch_size")
    blend = _choice(blend, BLEND_MODES, "blend")
    padding = _choice(padding, PADDING_MODES, "padding")
    if not isinstance(input_batch, Tensor) or input_batch.ndim not in (4, 5):
        shape = tuple(input_batch.shape) if isinstance(input_batch, Tensor) else type(input_batch).__name__
        raise ValueError(f"input_batch must be a (B, C, H, W) or (B, C, T, H, W) tensor, got {shape}.")

    batch, height, width = input_batch.shape[0], input_batch.shape[-2], input_batch.shape[-1]
    grid = TileGrid.build(height, width, crop_h, crop_w, stride_h, stride_w, blend)
    tiles = (_Tile(b, y, x) for y, x in itertools.product(grid.ys, grid.xs) for b in range(batch))
    n_calls = math.ceil(len(grid) * batch / batch_size)

    acc: Tensor | None = None
    single, out_dtype = False, input_batch.dtype
    with torch.no_grad():
        for chunk in _progress(_batched(tiles, batch_size), total=n_calls, enabled=verbose, unit="batch"):
            crops = _cut_crops(input_batch, chunk, grid, padding)
            kwargs = _per_crop_kwargs(model_kwargs, chunk, batch)
            out, single = _run_model(model_forward, crops, kwargs, out_channels)
            if acc is None:
                out_dtype, out_channels = out.dtype, out.shape[1]
                acc_dtype = _accumulator_dtype(out)
                acc = input_batch.new_zeros((batch, *out.shape[1:-2], height, width), dtype=acc_dtype)
            _accumulate(acc, out, chunk, grid, row0=0)
    if acc is None:  # pragma: no cover - the grid always holds at least one crop
        raise RuntimeError("tiled_inference produced no crops.")
    _normalise(acc, *grid.profiles(acc.device))
    result = acc[:, 0] if single else acc
    return result.to(out_dtype)


def _progress(iterable: Iterable[Any], total: int, enabled: bool, unit: str) -> Iterable[Any]:
    """Wrap ``iterable`` in a tqdm bar when ``enabled`` (tqdm imported only then)."""
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, unit=unit, desc="tiled inference")


# ----------------------------------------------------------------------------- GeoTIFF streaming
def _resolve_out_dtype(out_dtype: str | None, output: str) -> str:
    """Default ``uint8`` for argmax and ``float32`` otherwise; integers only for argmax, floats otherwise."""
    if out_dtype is None:
        return "uint8" if output == "argmax" else "float32"
    dtype = geotiff.check_raster_dtype(str(out_dtype))
    if geotiff.is_float_dtype(dtype) == (output == "argmax"):
        kind = "an integer" if output == "argmax" else "a float"
        raise ValueError(f"output={output!r} needs {kind} out_dtype, got {dtype!r}.")
    return dtype


def _argmax_channels(scores: Tensor) -> Tensor:
    """Index of the largest channel of ``scores`` ``(C, rows, W)``, the first one on ties.

    Same result as ``scores.argmax(dim=0)`` but a pass per channel, which is several times faster on CPU
    than a reduction over the outermost dimension for the few channels of a class map.
    """
    best = scores[0].clone()
    index = torch.zeros(scores.shape[1:], dtype=torch.int32, device=scores.device)
    for channel in range(1, scores.shape[0]):
        index.masked_fill_(scores[channel] > best, channel)
        torch.maximum(best, scores[channel], out=best)
    return index


def _to_raster(blended: Tensor, output: str, out_dtype: str) -> Any:
    """Turn blended predictions ``(C, rows, W)`` into a ``(bands, rows, W)`` numpy array of ``out_dtype``."""
    if output == "argmax":
        blended = _argmax_channels(blended).unsqueeze(0)
    elif output == "probabilities":
        blended = blended.softmax(dim=0)
    return geotiff.cast_to_dtype(blended.cpu().numpy(), out_dtype, what="Streamed prediction")


@dataclass
class _StreamSettings:
    """Resolved, validated arguments of :func:`tiled_inference_geotiff`."""

    grid: TileGrid
    indexes: list[int]
    batch_size: int
    output: str
    out_dtype: str
    nodata: float | None
    out_channels: int | None
    padding: str
    device: torch.device
    preprocess: Callable[[Tensor], Tensor] | None


def tiled_inference_geotiff(
    model_forward: Callable[..., Any],
    src_path: str | os.PathLike[str],
    dst_path: str | os.PathLike[str],
    crop: int = 224,
    stride: int = 192,
    batch_size: int = 16,
    bands: Sequence[int] | None = None,
    preprocess: Callable[[Tensor], Tensor] | None = None,
    out_channels: int | None = None,
    output: str = "argmax",
    out_dtype: str | None = None,
    nodata: float | None = None,
    device: str | torch.device = "cpu",
    blend: str = "cosine",
    progress: bool = True,
    *,
    padding: str = "reflect",
    h_crop: int | None = None,
    w_crop: int | None = None,
    h_stride: int | None = None,
    w_stride: int | None = None,
    **model_kwargs: Any,
) -> Path:
    """Stream a GeoTIFF through a model strip by strip and write the blended predictions as a GeoTIFF.

    Crops, windows and blending are those of :func:`tiled_inference` (the result matches it on the same
    scene). One strip (``crop`` rows x full width) is read at a time; rows no later crop can touch are
    converted and written at once, so memory is bounded by a strip, never by the scene: about
    ``crop * width * (bands + out_C) * 4`` bytes, one batch of crops with the model's activations, and a
    GDAL block cache capped at two rows of input blocks + 64 MiB (unless ``GDAL_CACHEMAX`` is set).

    Args:
        model_forward: Callable on a float32 crop batch ``(n, C, crop, crop)`` returning
            ``(n, out_C, crop, crop)``, ``(n, crop, crop)`` or a ``ModelOutput``.
        src_path: Input GeoTIFF.
        dst_path: Output GeoTIFF (written to ``<dst>.partial`` first, renamed when complete, replacing an
            existing file; on error the partial file is removed).
        crop, stride: Crop size and step (``stride <= crop``); strips are ``crop`` (or ``h_crop``) rows.
        batch_size: Crops per model call.
        bands: 1-based band indexes to read (default: all bands, in file order).
        preprocess: Applied to each float32 crop batch on ``device`` before the model, e.g. the
            datamodule's ``normalize``.
        out_channels: Expected number of model output channels (checked; ``None`` = inferred).
        output: ``"argmax"`` (one band of class indexes), ``"probabilities"`` (softmax over channels of
            the blended logits) or ``"raw"`` (blended model outputs).
        out_dtype: Raster dtype; default ``"uint8"`` for argmax, ``"float32"`` otherwise.
        nodata: Output nodata value; default the input's nodata (or, if it does not fit ``out_dtype`` or
            is a class index, the dtype's maximum / NaN, with a warning).
        device: Where crops and the accumulator live.
        blend: As in :func:`tiled_inference`.
        progress: Show a tqdm bar over strips.
        padding, h_crop, w_crop, h_stride, w_stride: As in :func:`tiled_inference` (keyword-only).
        **model_kwargs: Passed to ``model_forward``.

    Returns:
        ``dst_path`` as a :class:`~pathlib.Path`. Pixels where any selected input band equals its nodata
        value are written as output nodata; CRS and transform are copied from the input. Input values,
        nodata included, reach the model unchanged: replace them in ``preprocess`` if the model needs it
        (e.g. ``torch.nan_to_num``).

    Raises:
        FileNotFoundError: ``src_path`` does not exist.
        ValueError: Invalid crop/stride/bands/output/out_dtype/nodata or model output.
        terratorch.io.geotiff.GeoTIFFError: ``src_path`` cannot be read as a raster.
        terratorch.io.geotiff.GeoTIFFWriteError: The output cannot be written (disk full, file too large,
            no permission); the message names the file.
    """
    import rasterio

    src_path, dst_path = Path(src_path), Path(dst_path)
    if not src_path.is_file():
        raise FileNotFoundError(f"Input GeoTIFF not found: {src_path}")
    if dst_path.resolve() == src_path.resolve():
        raise ValueError(f"dst_path must differ from src_path ({src_path}); the input is read while writing.")
    crop_h, crop_w, stride_h, stride_w = _crop_and_stride(crop, stride, h_crop, w_crop, h_stride, w_stride)
    output = _choice(output, OUTPUT_MODES, "output")
    with rasterio.open(src_path) as src:
        settings = _StreamSettings(
            grid=TileGrid.build(
                src.height,
                src.width,
                crop_h,
                crop_w,
                stride_h,
                stride_w,
                _choice(blend, BLEND_MODES, "blend"),
            ),
            indexes=geotiff.check_band_indexes(bands, src.count, src_path),
            batch_size=_positive_int(batch_size, "batch_size"),
            output=output,
            out_dtype=_resolve_out_dtype(out_dtype, output),
            nodata=nodata,
            out_channels=out_channels,
            padding=_choice(padding, PADDING_MODES, "padding"),
            device=torch.device(device),
            preprocess=preprocess,
        )
        partial = dst_path.with_name(dst_path.name + ".partial")
        try:
            with torch.no_grad(), rasterio.Env(**geotiff.block_cache_option(src)):
                _stream(model_forward, src, partial, settings, model_kwargs, progress)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    with geotiff.writing(dst_path):
        os.replace(partial, dst_path)
    return dst_path


def _stream(
    model_forward: Callable[..., Any],
    src: Any,
    partial: Path,
    cfg: _StreamSettings,
    model_kwargs: dict[str, Any],
    progress: bool,
) -> None:
    """Strip loop of :func:`tiled_inference_geotiff`: read, predict, blend, write finished rows."""
    grid = cfg.grid
    py, px = grid.profiles(cfg.device)
    acc: Tensor | None = None
    writer: geotiff.RowWriter | None = None
    row0, invalid = 0, None  # image row at accumulator row 0; nodata mask of the last strip read
    try:
        for top in _progress(grid.ys, total=len(grid.ys), enabled=progress, unit="strip"):
            if acc is not None and top > row0:
                writer = writer or _open_writer(src, partial, cfg, acc.shape[1])
                blended = _normalise(acc[0, :, : top - row0], py[row0:top], px)  # rows dropped next
                writer.write(_finish_rows(blended, invalid, cfg))
                _shift_(acc, top - row0)
                row0 = top
            data, invalid = geotiff.read_window(src, cfg.indexes, top, min(grid.crop_h, grid.height - top))
            strip = torch.from_numpy(data).unsqueeze(0)
            for chunk in _batched((_Tile(0, top, x) for x in grid.xs), cfg.batch_size):
                crops = _cut_crops(strip, chunk, grid, cfg.padding, row_offset=top, dtype=torch.float32)
                crops = crops.to(cfg.device)
                if cfg.preprocess is not None:
                    crops = cfg.preprocess(crops)
                out, _ = _run_model(model_forward, crops, model_kwargs, cfg.out_channels)
                if acc is None:
                    acc = _allocate_strip(out, grid, cfg)
                _accumulate(acc, out, chunk, grid, row0=row0)
        if acc is None:  # pragma: no cover - the grid always holds at least one crop
            raise RuntimeError("tiled_inference_geotiff produced no crops.")
        writer = writer or _open_writer(src, partial, cfg, acc.shape[1])
        blended = _normalise(acc[0, :, : grid.height - row0], py[row0:], px)
        writer.write(_finish_rows(blended, invalid, cfg), final=True)
    finally:
        if writer is not None:
            writer.close()


def _allocate_strip(out: Tensor, grid: TileGrid, cfg: _StreamSettings) -> Tensor:
    """Accumulator ``(1, C, rows, W)`` for one strip, allocated after the first model call."""
    if out.ndim != 4:
        raise ValueError(
            f"GeoTIFF output needs predictions (n, C, h, w) or (n, h, w); model returned {tuple(out.shape)}."
        )
    if cfg.output != "raw" and out.shape[1] < 2:
        raise ValueError(
            f"output={cfg.output!r} needs at least 2 output channels (class scores); the model returned "
            f"{out.shape[1]}. Use output='raw' for regression."
        )
    rows = min(grid.crop_h, grid.height)
    dtype = _accumulator_dtype(out)
    return torch.zeros((1, out.shape[1], rows, grid.width), dtype=dtype, device=cfg.device)


def _open_writer(src: Any, partial: Path, cfg: _StreamSettings, channels: int) -> geotiff.RowWriter:
    """Create the output file once the model's channel count is known (resolving nodata and band count)."""
    classes = channels if cfg.output == "argmax" else None
    if classes is not None and not geotiff.fits_dtype(classes - 1, cfg.out_dtype):
        raise ValueError(f"{channels} classes do not fit out_dtype={cfg.out_dtype!r}; use 'uint16'.")
    # stacklevel: resolve_nodata <- here <- _stream <- tiled_inference_geotiff <- its caller
    cfg.nodata = geotiff.resolve_nodata(cfg.nodata, src.nodata, cfg.out_dtype, classes, stacklevel=4)
    profile = geotiff.georeferenced_profile(
        src,
        count=1 if cfg.output == "argmax" else channels,
        dtype=cfg.out_dtype,
        nodata=cfg.nodata,
        **geotiff.streaming_creation_options(cfg.out_dtype),
    )
    return geotiff.RowWriter(partial, profile)


def _finish_rows(blended: Tensor, invalid: Any, cfg: _StreamSettings) -> Any:
    """Convert blended rows ``(C, rows, W)`` to raster rows and write nodata where the input had it."""
    raster = _to_raster(blended, cfg.output, cfg.out_dtype)
    if invalid is not None and cfg.nodata is not None:
        raster[:, invalid[: blended.shape[1]]] = cfg.nodata
    return raster


def _shift_(acc: Tensor, rows: int) -> None:
    """Move accumulator rows ``[rows, end)`` to the top in place and zero the rows freed at the bottom."""
    keep = acc.shape[-2] - rows
    if keep > 0:
        acc[..., :keep, :] = acc[..., rows:, :].clone()  # clone: source and target may overlap
    acc[..., max(keep, 0) :, :] = 0
