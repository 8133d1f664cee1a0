"""Cheap sanity checks of a GeoTIFF dataset, run once when a datamodule sets it up.

Two mistakes train "fine" and silently ruin a model, so they are caught before training:

* an image and its label raster that are not on the same grid (another CRS, a shifted footprint,
  another size): the label no longer describes the pixels it is paired with;
* images that hold no data at all (every pixel nodata or NaN): with ``no_data_replace`` they become
  constant images, the loss stays finite and nothing warns.

The cost is bounded whatever the dataset size: headers (CRS, transform, size) of at most
:data:`HEADER_SAMPLE` pairs and one small window of at most :data:`PIXEL_SAMPLE` images, spread
over the file list (an image that looks empty is read further to confirm it). Set
:data:`ENABLED` to False, or the environment variable ``TERRATORCH_DATA_CHECKS=0``, to skip them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ENABLED",
    "HEADER_SAMPLE",
    "PIXEL_SAMPLE",
    "DataSanityWarning",
    "check_dataset",
    "check_empty_images",
    "check_pairs_aligned",
    "checks_enabled",
    "spread",
]

#: Module-level switch of every check here (the reference has no equivalent option).
ENABLED = True
#: Image/label pairs whose headers are compared.
HEADER_SAMPLE = 64
#: Images whose pixels (decimated) are checked for being entirely nodata/NaN.
PIXEL_SAMPLE = 8
#: Side of the first window read, and longest side of a decimated read.
DECIMATED_SIDE = 64
#: Tolerance of transform coefficients, as a fraction of the pixel size (float noise in headers).
TRANSFORM_TOLERANCE = 1e-6
#: File names shown in a message.
SHOWN = 3


class DataSanityWarning(UserWarning):
    """Some sampled images of a dataset hold no data (every pixel nodata or NaN)."""


def checks_enabled() -> bool:
    """True unless :data:`ENABLED` is False or ``TERRATORCH_DATA_CHECKS`` is ``0``/``false``/``off``."""
    setting = os.environ.get("TERRATORCH_DATA_CHECKS", "1").strip().lower()
    return ENABLED and setting not in ("0", "false", "off")


def spread(items: Sequence[Any], count: int) -> list[Any]:
    """Up to ``count`` items of ``items`` evenly spread from the first to the last (order kept)."""
    n = len(items)
    if n <= count:
        return list(items)
    if count <= 1:
        return [items[0]] if count == 1 else []
    positions = sorted({round(i * (n - 1) / (count - 1)) for i in range(count)})
    return [items[p] for p in positions]


@dataclass(frozen=True)
class _Header:
    crs: Any
    transform: Any
    width: int
    height: int

    @property
    def georeferenced(self) -> bool:
        return self.crs is not None


def _read_header(path: Path) -> _Header:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    from terratorch.datasets.utils import GeoTIFFError

    try:
        with warnings.catch_warnings(), rasterio.open(path) as src:
            warnings.simplefilter("ignore", NotGeoreferencedWarning)  # plain masks are compared by size
            return _Header(src.crs, src.transform, src.width, src.height)
    except RasterioError as error:
        raise GeoTIFFError(f"cannot read GeoTIFF {str(path)!r}: {error}") from error


def _transforms_close(a: Any, b: Any) -> bool:
    """Affine transforms equal up to :data:`TRANSFORM_TOLERANCE` of a pixel (offsets and sizes)."""
    pixel = max(abs(a.a), abs(a.e), abs(a.b), abs(a.d), 1e-12)
    tolerance = TRANSFORM_TOLERANCE * pixel
    scale_terms = (a.a - b.a, a.b - b.b, a.d - b.d, a.e - b.e)
    offset_terms = (a.c - b.c, a.f - b.f)
    return all(abs(t) <= tolerance for t in scale_terms) and all(abs(t) <= tolerance for t in offset_terms)


def _crs_text(crs: Any) -> str:
    if crs is None:
        return "none"
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.to_string()


def _transform_text(t: Any) -> str:
    return f"origin ({t.c:.6g}, {t.f:.6g}), pixel ({t.a:.6g}, {t.e:.6g})"


def check_pairs_aligned(pairs: Sequence[tuple[Path, Path]], *, where: str = "") -> None:
    """Check that each sampled image and its label share CRS, transform and size.

    Labels without a CRS (plain TIFF or PNG-like rasters) are compared by size only: many datasets
    store masks without georeference, and the reference accepts them.

    Args:
        pairs: ``(image, label)`` paths; at most :data:`HEADER_SAMPLE` of them, spread over the
            list, are opened (headers only).
        where: prefix of the message (e.g. the split), to say which config key is concerned.

    Raises:
        ValueError: a pair is on different grids; names both files and both values.
    """
    prefix = f"{where}: " if where else ""
    for image, label in spread(pairs, HEADER_SAMPLE):
        a, b = _read_header(Path(image)), _read_header(Path(label))
        if (a.height, a.width) != (b.height, b.width):
            raise ValueError(
                f"{prefix}size mismatch: image {image} is {a.height}x{a.width} (H x W) but its label {label} "
                f"is {b.height}x{b.width}; each label must cover its image pixel for pixel"
            )
        if not (a.georeferenced and b.georeferenced):
            continue
        if a.crs != b.crs:
            raise ValueError(
                f"{prefix}CRS mismatch: image {image} is in {_crs_text(a.crs)} but its label {label} is in "
                f"{_crs_text(b.crs)}; reproject the label onto the image's grid (e.g. gdalwarp -t_srs)"
            )
        if not _transforms_close(a.transform, b.transform):
            raise ValueError(
                f"{prefix}footprint mismatch: image {image} has {_transform_text(a.transform)} but its label "
                f"{label} has {_transform_text(b.transform)} (same CRS {_crs_text(a.crs)}); the label is "
                "shifted or resampled relative to the image, so its pixels describe other ground"
            )


def _holds_no_data(path: Path, indexes_for: Any) -> bool:
    """True when every pixel of ``path`` (selected bands) equals its nodata value or is NaN.

    Reads grow only while nothing valid is found: a central window of :data:`DECIMATED_SIDE` pixels
    (one block: enough for nearly every image), then a decimated view of the whole raster, then, to
    confirm, the full raster; so an image is only read in full when it really looks empty.
    """
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    from terratorch.datasets.utils import GeoTIFFError, nodata_mask

    def empty(data: np.ndarray, nodata_value: float | None) -> bool:
        mask = nodata_mask(data, nodata_value)
        return mask is not None and bool(mask.all())

    try:
        with rasterio.open(path) as src:
            indexes = indexes_for(path, src.count) if indexes_for is not None else None
            bands = indexes if indexes is not None else list(range(1, src.count + 1))
            side_h, side_w = min(src.height, DECIMATED_SIDE), min(src.width, DECIMATED_SIDE)
            window = Window((src.width - side_w) // 2, (src.height - side_h) // 2, side_w, side_h)
            if not empty(src.read(bands, window=window), src.nodata):
                return False
            step = max(1, int(np.ceil(max(src.height, src.width) / DECIMATED_SIDE)))
            if step > 1:
                shape = (len(bands), max(1, src.height // step), max(1, src.width // step))
                if not empty(src.read(bands, out_shape=shape), src.nodata):
                    return False
            return empty(src.read(bands), src.nodata)
    except RasterioError as error:
        raise GeoTIFFError(f"cannot read GeoTIFF {str(path)!r}: {error}") from error


def check_empty_images(
    files: Sequence[Path],
    indexes_for: Any = None,
    *,
    where: str = "",
    strict: bool = True,
) -> list[Path]:
    """Find sampled images that hold no data at all (every pixel nodata or NaN).

    Up to :data:`PIXEL_SAMPLE` images (spread over ``files``) are read, a small window first; only
    an image that looks empty is read further (decimated, then in full to confirm), so sparse
    images are not reported and valid ones cost one block each.

    Args:
        files: the image paths.
        indexes_for: ``(path, band count) -> 1-based band indexes`` (the dataset's bands); None
            reads every band.
        where: prefix of the messages (e.g. the split).
        strict: raise when every sampled image is empty (False: only warn, e.g. for prediction).

    Returns:
        The empty images among the sampled ones. They are reported with a :class:`DataSanityWarning`.

    Raises:
        ValueError: every sampled image is empty (training on them would learn nothing).
    """
    sample = [Path(p) for p in spread(files, PIXEL_SAMPLE)]
    empty = [path for path in sample if _holds_no_data(path, indexes_for)]
    if not empty:
        return empty
    prefix = f"{where}: " if where else ""
    names = ", ".join(str(p) for p in empty[:SHOWN]) + (" ..." if len(empty) > SHOWN else "")
    if strict and len(empty) == len(sample):
        raise ValueError(
            f"{prefix}all {len(sample)} sampled images hold no data (every pixel is nodata or NaN), e.g. "
            f"{names}; check the data root and img_grep, the files' nodata value, or the bands selected"
        )
    warnings.warn(
        f"{prefix}{len(empty)} of {len(sample)} sampled images hold no data (every pixel is nodata or NaN): "
        f"{names}; with no_data_replace they train as constant images",
        DataSanityWarning,
        stacklevel=3,
    )
    return empty


def check_dataset(dataset: Any, *, where: str = "", strict: bool = True) -> None:
    """Run the checks on a generic GeoTIFF dataset (others are left alone).

    Pixel-wise datasets (``samples`` of ``(image, label)``) get both checks; per-image-label datasets
    (``files``) the empty-image check. Does nothing when :func:`checks_enabled` is False.

    Args:
        dataset: the dataset (its ``samples`` or ``files`` and ``band_indexes`` are used).
        where: prefix of the messages (e.g. ``"train split"``).
        strict: see :func:`check_empty_images`.

    Raises:
        ValueError: misaligned image/label, or every sampled image empty (see the checks).
    """
    if not checks_enabled():
        return
    samples = getattr(dataset, "samples", None)
    files = getattr(dataset, "files", None)
    pairs: list[tuple[Path, Path]] = []
    if samples:
        pairs = [(Path(i), Path(label)) for i, label in samples if label is not None]
        images = [Path(i) for i, _ in samples]
    elif files:
        images = [Path(p) for p in files]
    else:
        return
    uses_bands = getattr(dataset, "dataset_bands", None) is not None
    key = _cache_key(pairs, images, getattr(dataset, "band_positions", None) if uses_bands else None)
    if key is not None and key in _PASSED:
        return  # the same files (unchanged) passed before: a benchmark sets up each split per trial
    if pairs:
        check_pairs_aligned(pairs, where=where)
    band_indexes = getattr(dataset, "band_indexes", None)
    check_empty_images(images, band_indexes if uses_bands else None, where=where, strict=strict)
    if key is not None:
        if len(_PASSED) >= _CACHE_SIZE:
            _PASSED.clear()
        _PASSED.add(key)


#: Keys of the file samples that passed (see :func:`_cache_key`); bounded by :data:`_CACHE_SIZE`.
_PASSED: set[tuple[Any, ...]] = set()
_CACHE_SIZE = 256


def _cache_key(
    pairs: Sequence[tuple[Path, Path]], images: Sequence[Path], bands: Any
) -> tuple[Any, ...] | None:
    """Identity of what the checks would read: the sampled files with their size and mtime, and the bands.

    None (never cached) when a sampled file cannot be ``stat``-ed: the checks then report it.
    """
    sampled = [p for pair in spread(pairs, HEADER_SAMPLE) for p in pair] + spread(images, PIXEL_SAMPLE)
    try:
        stamps = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in sampled)
    except OSError:
        return None
    return (stamps, tuple(bands) if bands is not None else None, HEADER_SAMPLE, PIXEL_SAMPLE)
