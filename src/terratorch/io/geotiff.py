"""GeoTIFF reading and writing: the one place for the toolkit's raster rules.

Used by the datasets (windowed reads, nodata masks, ``constant_scale`` / ``no_data_replace``), the
prediction writers and streaming tiled inference (output dtype, nodata value, safe casting,
georeferenced profiles, writing row by row). The rules:

- **dtypes**: outputs are one of :data:`RASTER_DTYPES`; class maps default to the smallest unsigned
  type that leaves its maximum free for nodata, values to ``float32``.
- **nodata**: a pixel is nodata where it equals the file's nodata value (NaN matches NaN); reads for
  models also treat NaN as missing. An output keeps its input's nodata when the value fits the output
  dtype and is not a class index, otherwise it gets NaN (floats) or the dtype's maximum (integers).
- **casting**: floats are rounded to the nearest integer; values outside the integer dtype's range
  are refused, never wrapped around or clipped silently.
- **errors**: an unreadable file raises :class:`GeoTIFFError`, any OS error while writing (disk full,
  file too large, permission) raises :class:`GeoTIFFWriteError`; both name the file and keep the
  original error as ``__cause__``.

numpy is imported here; rasterio inside the functions that touch files, so importing this module
does not load GDAL.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from terratorch.choices import did_you_mean

__all__ = [
    "BLOCK",
    "RASTER_DTYPES",
    "GeoTIFFError",
    "GeoTIFFWriteError",
    "RasterHeader",
    "RasterRead",
    "RowWriter",
    "block_cache_option",
    "cast_to_dtype",
    "check_band_indexes",
    "check_raster_dtype",
    "class_map_dtype",
    "fallback_nodata",
    "fits_dtype",
    "georeferenced_profile",
    "invalid_pixels",
    "is_class_index",
    "is_float_dtype",
    "nodata_mask",
    "output_nodata",
    "raster_profile",
    "raster_shape",
    "read_header",
    "read_raster",
    "read_window",
    "reading",
    "resample_nearest",
    "resolve_nodata",
    "scale_and_fill",
    "scaled_transform",
    "streaming_creation_options",
    "write_array",
    "write_geotiff",
    "writing",
]

RASTER_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")
"""Raster data types accepted for outputs (``out_dtype``)."""

BLOCK = 256
"""Tile edge of the GeoTIFFs written by streaming inference; rows are written in whole tile rows."""


class GeoTIFFError(OSError):
    """A GeoTIFF could not be opened or read (corrupt, truncated or not a raster); names the file."""


class GeoTIFFWriteError(GeoTIFFError):
    """A GeoTIFF could not be written (disk full, file too large, no permission); names the file.

    ``errno`` and ``filename`` are those of the original error, which is kept as ``__cause__``.
    """

    def __str__(self) -> str:
        """The message alone (``OSError`` would rebuild it from ``errno`` and ``filename``)."""
        return str(self.args[0]) if self.args else super().__str__()


# ----------------------------------------------------------------------------- dtypes and nodata


def is_float_dtype(dtype: str | np.dtype) -> bool:
    """True for floating-point raster dtypes (``float32``, ``float64``)."""
    return np.issubdtype(np.dtype(dtype), np.floating)


def check_raster_dtype(name: str | None, *, key: str = "out_dtype") -> str | None:
    """Validate a raster dtype name (``None`` passes: the caller chooses per prediction).

    Raises:
        ValueError: ``name`` is not one of :data:`RASTER_DTYPES`; names ``key`` and suggests close names.
    """
    if name is None or name in RASTER_DTYPES:
        return name
    hint = did_you_mean(str(name), RASTER_DTYPES, bare=True)
    raise ValueError(f"{key} {name!r} is not a raster dtype.{hint} Valid: {', '.join(RASTER_DTYPES)}.")


def class_map_dtype(top: int) -> str:
    """Smallest unsigned dtype holding class indexes ``0..top`` with its maximum left free for nodata."""
    for dtype in ("uint8", "uint16", "uint32"):
        if top < np.iinfo(dtype).max:
            return dtype
    return "int64"


def fits_dtype(value: float, dtype: str) -> bool:
    """Whether ``value`` can be stored exactly in a raster of ``dtype`` (NaN fits only floats)."""
    if is_float_dtype(dtype):
        return math.isnan(value) or abs(value) <= float(np.finfo(dtype).max)
    info = np.iinfo(dtype)
    return float(value).is_integer() and info.min <= value <= info.max


def is_class_index(value: float, n_classes: int | None) -> bool:
    """True when ``value`` is one of the class indexes ``0..n_classes-1`` (so unusable as nodata)."""
    return bool(n_classes) and 0 <= value < n_classes


def fallback_nodata(dtype: str) -> float:
    """The nodata value used when the input's does not fit: NaN for floats, the maximum for integers."""
    return float("nan") if is_float_dtype(dtype) else float(np.iinfo(dtype).max)


def output_nodata(src_nodata: float | None, dtype: str, n_classes: int | None = None) -> float | None:
    """Nodata value of an output raster of ``dtype`` made from an input whose nodata is ``src_nodata``.

    Args:
        src_nodata: The input's nodata value (``None``: the output has none either).
        dtype: Output raster dtype.
        n_classes: Number of classes of a class map (its indexes are not usable); ``None`` for values.

    Returns:
        ``src_nodata`` when it fits ``dtype`` and is not a class index, else :func:`fallback_nodata`.
    """
    if src_nodata is None:
        return None
    return float(src_nodata) if _usable_nodata(src_nodata, dtype, n_classes) else fallback_nodata(dtype)


def resolve_nodata(
    requested: float | None,
    src_nodata: float | None,
    dtype: str,
    n_classes: int | None = None,
    *,
    stacklevel: int = 2,
) -> float | None:
    """Nodata value of an output: ``requested`` (validated) if given, else :func:`output_nodata`.

    Warns (``UserWarning``, at ``stacklevel`` above this function's caller) when the input's nodata
    had to be replaced by :func:`fallback_nodata`.

    Raises:
        ValueError: ``requested`` does not fit ``dtype`` or is a class index, or no free value is left
            (every value of ``dtype`` is a class index).
    """
    if requested is not None:
        if not fits_dtype(requested, dtype) or is_class_index(requested, n_classes):
            classes = f" and {n_classes} classes" if n_classes else ""
            raise ValueError(
                f"nodata={requested} cannot be used with out_dtype={dtype!r}{classes}: it must fit the "
                "dtype and not be a class index."
            )
        return requested
    if src_nodata is None or _usable_nodata(src_nodata, dtype, n_classes):
        return src_nodata
    fallback = fallback_nodata(dtype)
    if is_class_index(fallback, n_classes):
        raise ValueError(
            f"No free nodata value in {dtype!r} for {n_classes} classes; pass a wider out_dtype."
        )
    warnings.warn(
        f"Input nodata {src_nodata} does not fit out_dtype={dtype!r} (or is a class index); "
        f"writing nodata={fallback} instead. Pass nodata=... to choose.",
        UserWarning,
        stacklevel=stacklevel + 1,
    )
    return fallback


def _usable_nodata(value: float, dtype: str, n_classes: int | None) -> bool:
    """An input nodata value can be kept when it fits ``dtype`` and is not a class index."""
    return fits_dtype(value, dtype) and not is_class_index(value, n_classes)


def cast_to_dtype(values: np.ndarray, dtype: str, *, what: str = "Prediction") -> np.ndarray:
    """Cast ``values`` (any shape) to a new array of ``dtype``; floats are rounded for integer types.

    The result never shares memory with ``values`` (callers may reuse their buffer afterwards).

    Raises:
        ValueError: a value lies outside the integer dtype's range (it would wrap around); ``what``
            names the data in the message (e.g. ``"Prediction for a.tif"``).
    """
    if is_float_dtype(dtype) or values.size == 0:
        return values.astype(dtype)
    info = np.iinfo(dtype)
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if low < info.min or high > info.max:
        raise ValueError(
            f"{what} has values in [{low}, {high}], outside out_dtype={dtype!r} "
            f"[{info.min}, {info.max}]; choose a wider out_dtype (e.g. int32 or float32)."
        )
    if np.issubdtype(values.dtype, np.floating):
        return np.rint(values).astype(dtype)
    return values.astype(dtype)


# ----------------------------------------------------------------------------- nodata masks and pixels


def nodata_mask(data: np.ndarray, nodata_value: float | None, *, nan_is_nodata: bool = True) -> Any:
    """Per-band mask ``(C, H, W)`` (same shape as ``data``) of missing pixels, or ``None`` if none can be.

    A pixel is missing where it equals ``nodata_value``; with ``nan_is_nodata`` (the default, for data
    fed to models) NaN is missing in float data even when the file declares another nodata value.
    Works on numpy arrays and torch tensors alike.
    """
    nan_value = nodata_value is not None and math.isnan(nodata_value)
    mask = None
    if nodata_value is not None and not nan_value:
        mask = data == nodata_value
    if (nan_is_nodata or nan_value) and _is_float(data):
        nan = data != data  # NaN test that works for numpy arrays and torch tensors
        mask = nan if mask is None else mask | nan
    return mask


def invalid_pixels(data: np.ndarray, nodata_value: float | None, *, nan_is_nodata: bool = False) -> Any:
    """``(H, W)`` bool mask of pixels missing in any band of ``data`` ``(C, H, W)``, or ``None``.

    Defaults to the GDAL rule (equal to the nodata value, NaN only when the nodata value is NaN),
    which decides the pixels an output marks as nodata.
    """
    mask = nodata_mask(data, nodata_value, nan_is_nodata=nan_is_nodata)
    if mask is None:
        return None
    return mask.any(axis=0) if isinstance(mask, np.ndarray) else mask.any(dim=0)


def scale_and_fill(
    data: Any, *, scale: float = 1.0, nodata: float | None = None, fill: float | None = None
) -> tuple[Any, Any]:
    """Turn raw pixels into model input: float32, times ``scale``, missing pixels set to ``fill``.

    Args:
        data: ``(..., H, W)`` numpy array or torch tensor in the file's dtype (or float32).
        scale: Multiplier (``constant_scale``); applied before filling, so ``fill`` is stored as is.
        nodata: The file's nodata value; it and NaN mark missing pixels (see :func:`nodata_mask`).
        fill: Value written into missing pixels (``no_data_replace``); ``None`` leaves them.

    Returns:
        ``(values, missing)``: float32 values (a new array) and the mask of missing pixels (``None``
        when there can be none), both shaped like ``data``.
    """
    missing = nodata_mask(data, nodata)
    if isinstance(data, np.ndarray):
        if scale != 1.0:  # one pass: cast and scale together
            values = np.multiply(data, scale, dtype=np.float32)
        else:
            values = data.astype(np.float32, copy=True)
    else:  # a torch tensor (torch is loaded when one exists)
        values = data.float() * scale if scale != 1.0 else data.float().clone()
    if fill is not None and missing is not None:
        values[missing] = fill
    return values, missing


def _is_float(data: Any) -> bool:
    """Floating-point dtype test for a numpy array or a torch tensor."""
    if isinstance(data, np.ndarray):
        return np.issubdtype(data.dtype, np.floating)
    return bool(data.is_floating_point())


# ----------------------------------------------------------------------------- reading


@dataclass
class RasterRead:
    """The result of one windowed read.

    Attributes:
        data: ``(C, H, W)`` array in the file's dtype.
        nodata_value: the file's nodata value (None when unset).
        count: number of bands in the file.
    """

    data: np.ndarray
    nodata_value: float | None
    count: int

    @property
    def nodata(self) -> np.ndarray | None:
        """``(C, H, W)`` bool mask: True where a pixel equals the nodata value or is NaN (None if
        there can be none). Computed on access, so reads that do not need it skip the pass."""
        return nodata_mask(self.data, self.nodata_value)


@contextmanager
def reading(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise rasterio errors inside the block as :class:`GeoTIFFError` naming ``path``."""
    from rasterio.errors import RasterioError

    try:
        yield
    except RasterioError as error:
        raise GeoTIFFError(f"cannot read GeoTIFF {str(path)!r}: {error}") from error


def read_raster(
    path: str | os.PathLike[str],
    indexes_for: Callable[[int], list[int] | None] | None = None,
    *,
    window: Any = None,
) -> RasterRead:
    """Open ``path``, read one window of selected bands, close it.

    Args:
        path: the GeoTIFF.
        indexes_for: called with the file's band count, returns the 1-based band indexes to read
            (None: all); it raises ValueError when the file does not have the bands it needs.
        window: a ``rasterio.windows.Window`` or None for the whole raster.

    Raises:
        GeoTIFFError: the file is missing, corrupt or truncated (message names the file).
    """
    import rasterio

    with reading(path), rasterio.open(path) as src:
        indexes = indexes_for(src.count) if indexes_for is not None else None
        return RasterRead(data=src.read(indexes, window=window), nodata_value=src.nodata, count=src.count)


@dataclass(frozen=True)
class RasterHeader:
    """What a GeoTIFF's header says (no pixels read).

    Attributes:
        count, height, width: Bands and grid size.
        crs, transform: Georeference (``crs`` is None for a plain TIFF).
        nodata: The nodata value, or None.
    """

    count: int
    height: int
    width: int
    crs: Any
    transform: Any
    nodata: float | None


def read_header(path: str | os.PathLike[str]) -> RasterHeader:
    """Read the header of ``path`` (:class:`GeoTIFFError` naming the file when it is not a raster)."""
    import rasterio

    with reading(path), rasterio.open(path) as src:
        return RasterHeader(src.count, src.height, src.width, src.crs, src.transform, src.nodata)


def raster_shape(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    """Return ``(count, height, width)`` from the header only (no pixels are read)."""
    header = read_header(path)
    return header.count, header.height, header.width


def check_band_indexes(bands: Sequence[int] | None, count: int, path: str | os.PathLike[str]) -> list[int]:
    """Validate 1-based band indexes against a file with ``count`` bands (``None`` = all, in order).

    Raises:
        ValueError: an index is not an int in ``1..count`` (or none is given); names the file.
    """
    if bands is None:
        return list(range(1, count + 1))
    indexes = list(bands)
    bad = [b for b in indexes if isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= count]
    if bad or not indexes:
        raise ValueError(
            f"bands={indexes} is invalid for {path} ({count} bands): give 1-based band indexes in "
            f"1..{count}; offending: {bad}."
        )
    return indexes


def read_window(src: Any, indexes: Sequence[int], top: int, rows: int) -> tuple[np.ndarray, Any]:
    """Read image rows ``[top, top + rows)`` (full width) of bands ``indexes`` from an open dataset.

    Returns:
        ``(data, invalid)``: ``(C, rows, W)`` in the file's dtype, and the ``(rows, W)`` bool mask of
        pixels where any selected band equals its nodata value (``None`` when no band declares one).
    """
    from rasterio.windows import Window

    with reading(src.name):
        data = src.read(indexes=list(indexes), window=Window(0, top, src.width, rows))
    invalid = None
    for band, index in zip(data, indexes):
        missing = invalid_pixels(band[None], src.nodatavals[index - 1])
        if missing is not None:
            invalid = missing if invalid is None else invalid | missing
    return data, invalid


# ----------------------------------------------------------------------------- writing


@contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise any OS or rasterio error inside the block as :class:`GeoTIFFWriteError` naming ``path``.

    GDAL reports a full disk, a file-size limit or a missing permission as a rasterio I/O error (an
    ``OSError``) without saying which of the files in flight failed; this says it.
    """
    from rasterio.errors import RasterioError

    try:
        yield
    except GeoTIFFWriteError:
        raise
    except (OSError, RasterioError) as error:
        where = Path(path)
        message = (
            f"cannot write GeoTIFF {str(where)!r}: {error}. Check the free space, the file-size limit "
            f"and the write permission of {str(where.parent)!r}."
        )
        wrapped = GeoTIFFWriteError(message)
        wrapped.errno = getattr(error, "errno", None)
        wrapped.filename = str(where)
        raise wrapped from error


def scaled_transform(transform: Any, src_shape: tuple[int, int], dst_shape: tuple[int, int]) -> Any:
    """Affine transform of a ``dst_shape`` ``(H, W)`` grid covering the footprint of ``src_shape``.

    Pixel sizes are multiplied by ``src / dst`` along each axis; the origin (top-left corner) stays.
    """
    from affine import Affine

    (src_h, src_w), (dst_h, dst_w) = src_shape, dst_shape
    if (src_h, src_w) == (dst_h, dst_w):
        return transform
    return transform @ Affine.scale(src_w / dst_w, src_h / dst_h)


def resample_nearest(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling of a ``(H, W)`` array onto an ``(h, w)`` grid of the same footprint.

    Used to carry an input's nodata mask onto an output raster of another resolution.
    """
    if mask.shape == tuple(shape):
        return mask
    rows = ((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0]).astype(int)
    cols = ((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1]).astype(int)
    return mask[np.ix_(rows, cols)]


def georeferenced_profile(
    src: Any,
    *,
    count: int,
    dtype: str,
    nodata: float | None,
    height: int | None = None,
    width: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Creation profile of a GeoTIFF on the grid of the open dataset ``src`` (its CRS and transform).

    Args:
        src: Open rasterio dataset the output is georeferenced like.
        count, dtype, nodata: Bands, data type and nodata value of the output.
        height, width: Output grid size (default: the input's); a different size keeps the footprint
            and scales the pixel size (see :func:`scaled_transform`).
        **options: Extra creation options (``compress``, ``tiled``, ...).
    """
    height = src.height if height is None else height
    width = src.width if width is None else width
    transform = scaled_transform(src.transform, (src.height, src.width), (height, width))
    return raster_profile(height, width, count, dtype, nodata, crs=src.crs, transform=transform, **options)


def raster_profile(
    height: int,
    width: int,
    count: int,
    dtype: str,
    nodata: float | None,
    *,
    crs: Any,
    transform: Any,
    **options: Any,
) -> dict[str, Any]:
    """Creation profile of a ``count x height x width`` GeoTIFF of ``dtype`` on a given georeference.

    ``options`` are extra GDAL creation options (``compress``, ``tiled``, ...).
    """
    return {
        "driver": "GTiff",
        "height": height,
        "width": width,
        "count": count,
        "dtype": dtype,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        **options,
    }


def streaming_creation_options(dtype: str) -> dict[str, Any]:
    """Options for large outputs: :data:`BLOCK`-pixel deflate tiles, BigTIFF when needed."""
    return {
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "deflate",
        "zlevel": 1,  # level 6 took ~10% of the run time with a small model, for little size gain
        "predictor": 3 if is_float_dtype(dtype) else 2,
        "BIGTIFF": "IF_SAFER",
    }


def write_array(path: str | os.PathLike[str], data: np.ndarray, profile: dict[str, Any]) -> Path:
    """Write ``data`` ``(C, H, W)`` as one GeoTIFF with ``profile``; OS errors name ``path``."""
    import rasterio

    with writing(path), rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return Path(path)


def write_geotiff(
    path: str | Path,
    array: np.ndarray,
    *,
    nodata: float | None = None,
    crs: str | int = 32633,
    transform: Any = None,
    descriptions: Sequence[str] | None = None,
    **profile: Any,
) -> Path:
    """Write a ``(C, H, W)`` or ``(H, W)`` array as a georeferenced GeoTIFF.

    Args:
        path: output file (parent directories are created).
        array: pixel values; the dtype is kept.
        nodata: the file's nodata value, or None.
        crs: an EPSG code or any CRS string rasterio understands.
        transform: affine transform; default: 30 m pixels at (500000, 5000000).
        descriptions: optional band names stored in the file.
        **profile: extra creation options (``tiled``, ``compress``, ...).

    Raises:
        GeoTIFFWriteError: the file could not be written (names it).
    """
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    path = Path(path)
    data = array if array.ndim == 3 else array[None]
    crs_obj = CRS.from_epsg(crs) if isinstance(crs, int) else CRS.from_user_input(crs)
    if transform is None:
        transform = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_000_000.0)
    count, height, width = data.shape
    options = raster_profile(height, width, count, data.dtype.name, nodata, crs=crs_obj, transform=transform)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", **options, **profile) as dst:
            dst.write(data)
            for index, name in enumerate(descriptions or (), start=1):
                dst.set_band_description(index, name)
    return path


class RowWriter:
    """Writes a GeoTIFF top to bottom in whole rows of tiles, so every tile is compressed once.

    Rows arrive in any number per call (``write``); they are queued until a full row of
    :data:`BLOCK`-pixel tiles is ready. OS errors name the file (:class:`GeoTIFFWriteError`).
    """

    def __init__(self, path: str | os.PathLike[str], profile: dict[str, Any]) -> None:
        import rasterio

        self.path = Path(path)
        with writing(self.path):
            self._dst = rasterio.open(self.path, "w", **profile)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._next_row = 0

    def write(self, rows: np.ndarray, final: bool = False) -> None:
        """Queue ``rows`` ``(bands, n, W)`` and write every complete row of tiles (all when ``final``)."""
        from rasterio.windows import Window

        self._pending.append(rows)
        self._pending_rows += rows.shape[1]
        ready = self._pending_rows if final else self._pending_rows // BLOCK * BLOCK
        if ready == 0:
            return
        data = np.concatenate(self._pending, axis=1)
        with writing(self.path):
            self._dst.write(data[:, :ready], window=Window(0, self._next_row, data.shape[2], ready))
        self._next_row += ready
        self._pending = [data[:, ready:]] if ready < data.shape[1] else []
        self._pending_rows -= ready

    def close(self) -> None:
        """Close the file (rasterio flushes and finalises the GeoTIFF; errors name the file)."""
        with writing(self.path):
            self._dst.close()


def block_cache_option(src: Any) -> dict[str, int]:
    """GDAL block-cache size for streaming ``src``: two rows of its blocks plus room for output tiles.

    GDAL's default cache (5% of RAM) would otherwise fill up with blocks of the scene already
    processed and make peak memory grow with the scene. A ``GDAL_CACHEMAX`` the user set (environment
    or an enclosing ``rasterio.Env``) is respected (then ``{}`` is returned).
    """
    import rasterio

    if "GDAL_CACHEMAX" in os.environ or (rasterio.env.hasenv() and "GDAL_CACHEMAX" in rasterio.env.getenv()):
        return {}
    block_h, block_w = src.block_shapes[0]
    itemsize = max(np.dtype(dtype).itemsize for dtype in src.dtypes)
    row_bytes = math.ceil(src.width / block_w) * block_w * block_h * src.count * itemsize
    return {"GDAL_CACHEMAX": 2 * row_bytes + 64 * 2**20}  # values >= 100000 are bytes for GDAL
