"""Helpers shared by the named benchmark datasets (Sen1Floods11, fire scars, crop classification, ...).

These datasets have a fixed on-disk layout and fixed band names; the helpers check both and say
what was expected when something is missing, read GeoTIFFs the way the reference reads them
(nodata and NaN pixels masked, then optionally replaced), and turn samples into tensors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from terratorch.choices import close_matches

__all__ = [
    "band_positions",
    "center_pixel_coords",
    "check_split",
    "compose_named_transforms",
    "keep_listed",
    "read_lines",
    "read_masked",
    "require_dir",
    "require_file",
    "to_tensors",
]


def check_split(split: str, splits: Iterable[str], dataset: str) -> None:
    """Raise a ValueError naming the valid splits when ``split`` is not one of them."""
    valid = list(splits)
    if split not in valid:
        hint = close_matches(str(split), valid, n=1)
        raise ValueError(
            f"{dataset}: unknown split {split!r}; valid splits are {valid}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )


def band_positions(bands: Sequence[str], all_bands: Sequence[str], dataset: str) -> list[int]:
    """Positions of ``bands`` within the dataset's ``all_bands`` (order of ``bands`` kept).

    Raises:
        ValueError: a band the dataset does not have; lists the dataset's bands and close names.
    """
    if isinstance(bands, str) or not isinstance(bands, Sequence):
        raise ValueError(f"{dataset}: bands must be a list of band names, got {bands!r}")
    names = [str(getattr(b, "value", b)) for b in bands]
    missing = [b for b in names if b not in all_bands]
    if missing:
        hints = {}
        for band in missing:
            close = close_matches(band, list(all_bands), n=2)
            hints[band] = close + [n for n in all_bands if band.lower() in n.lower() and n not in close][:3]
        hint = "; ".join(f"{b!r} -> did you mean {', '.join(h)}?" for b, h in hints.items() if h)
        raise ValueError(
            f"{dataset}: band(s) {missing} are not available; the dataset's bands are {list(all_bands)}"
            + (f" ({hint})" if hint else "")
        )
    return [list(all_bands).index(b) for b in names]


def require_dir(path: Path, dataset: str, what: str) -> Path:
    """Return ``path`` when it is a directory, else raise FileNotFoundError saying what it should hold."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{dataset}: expected the {what} directory at {str(path)!r}, which does not exist"
        )
    return path


def require_file(path: Path, dataset: str, what: str) -> Path:
    """Return ``path`` when it is a file, else raise FileNotFoundError saying what it should be."""
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: expected the {what} at {str(path)!r}, which does not exist")
    return path


def read_lines(path: Path, dataset: str, what: str) -> list[str]:
    """Non-empty, stripped lines of a split file (raises FileNotFoundError naming it when missing)."""
    require_file(path, dataset, what)
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def keep_listed(files: Iterable[Path], entries: Iterable[str]) -> list[Path]:
    """Keep the files whose stem contains one of the split entries (extensions of both ignored).

    This is the reference's split-file rule (``ignore_extensions=True, allow_substring=True``):
    an entry ``Ghana_103272`` selects ``Ghana_103272_S2Hand.tif``.
    """
    stems = {os.path.splitext(entry)[0] for entry in entries}
    kept = []
    for path in files:
        name = os.path.splitext(path.name)[0]
        if name in stems or any(stem in name for stem in stems):
            kept.append(path)
    return sorted(kept)


def read_masked(path: Path, nan_replace: float | None) -> tuple[np.ndarray, Any]:
    """Read a GeoTIFF as float ``(C, H, W)`` with nodata pixels set to NaN, then to ``nan_replace``.

    Integer rasters become float32 (float64 rasters stay float64), as with a masked read in
    rioxarray, so the values match the reference's before its final cast.

    Returns:
        ``(data, src_meta)`` where ``src_meta`` holds ``transform``, ``crs``, ``height``, ``width``.
    """
    import rasterio

    from terratorch.io.geotiff import reading

    with reading(path), rasterio.open(path) as src:
        raw = src.read()
        nodata = src.nodata
        meta = {"transform": src.transform, "crs": src.crs, "height": src.height, "width": src.width}
    data = raw.astype(np.float64 if raw.dtype == np.float64 else np.float32)
    if nodata is not None:
        data[raw == nodata] = np.nan
    if nan_replace is not None:
        data[np.isnan(data)] = nan_replace
    return data, meta


def compose_named_transforms(transforms: Any) -> Any:
    """Compose a list of albumentations transforms without shape checks (images may be ``(T, H, W, C)``).

    None stays None (samples are converted to tensors directly); a ``Compose`` or any callable is
    used as given.
    """
    if transforms is None or callable(transforms):
        return transforms
    import albumentations as A

    items = list(transforms)
    for position, item in enumerate(items):
        if not callable(item):
            raise TypeError(
                f"transform #{position} is {item!r}, not a transform; give albumentations objects, e.g. "
                "'- class_path: albumentations.HorizontalFlip' in a config"
            )
    return A.Compose(items, is_check_shapes=False) if items else None


def to_tensors(transform: Any, sample: dict[str, Any]) -> dict[str, Any]:
    """Apply ``transform`` to a sample of arrays (image ``(H, W, C)`` or ``(T, H, W, C)``) and return tensors.

    Arrays left as NumPy (no transform, or a pipeline without ``ToTensorV2``) are converted with
    the channel axis moved first, so images come out ``(C, H, W)`` or ``(C, T, H, W)``.
    """
    if transform is not None:
        sample = transform(**sample)
    out = {}
    for key, value in sample.items():
        if isinstance(value, np.ndarray):
            if key == "image" and value.ndim > 2:
                value = np.moveaxis(value, -1, 0)
            value = torch.from_numpy(np.ascontiguousarray(value))
        out[key] = value
    return out


def center_pixel_coords(meta: dict[str, Any], *, to_wgs84: bool = False) -> torch.Tensor:
    """``(y, x)`` of the centre pixel's centre: in the raster's CRS, or (lat, lon) with ``to_wgs84``.

    The reference reprojects a one-pixel raster with rioxarray for ``to_wgs84``; transforming the
    pixel centre gives the same point up to the resampling grid of that reprojection.
    """
    x, y = meta["transform"] @ (meta["width"] // 2 + 0.5, meta["height"] // 2 + 0.5)
    if to_wgs84 and meta["crs"] is not None and not meta["crs"].is_geographic:
        from rasterio.warp import transform

        xs, ys = transform(meta["crs"], "EPSG:4326", [x], [y])
        x, y = xs[0], ys[0]
    return torch.tensor([y, x], dtype=torch.float32)
