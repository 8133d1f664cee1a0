"""Helpers shared by the GeoTIFF datasets: band selection, statistics files, file discovery, splits.

Raster reading and writing (windowed reads, nodata masks, ``write_geotiff``) live in
:mod:`terratorch.io.geotiff`; the names are re-exported here for the datasets and older imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from terratorch.choices import close_matches
from terratorch.io.geotiff import (
    GeoTIFFError,
    RasterRead,
    nodata_mask,
    raster_shape,
    read_raster,
    write_geotiff,
)

__all__ = [
    "Band",
    "BandSpec",
    "GeoTIFFError",
    "Modalities",
    "RasterRead",
    "expand_bands",
    "file_key",
    "filter_split",
    "find_files",
    "in_split",
    "load_float_list",
    "nodata_mask",
    "pair_images_labels",
    "raster_shape",
    "read_raster",
    "read_split_file",
    "select_band_indices",
    "write_geotiff",
]

Band = str | int
BandSpec = Sequence[Band | Sequence[int]]


# ----------------------------------------------------------------------------- bands


def expand_bands(bands: BandSpec | None, *, key: str = "bands") -> list[Band] | None:
    """Normalise a band list from a config: names stay ``str``, ints stay ints, ``[a, b]`` expands.

    ``[a, b]`` (a two-int list or tuple) is an inclusive range, so ``["BLUE", [1, 3]]`` becomes
    ``["BLUE", 1, 2, 3]``. Band enums (``HLSBands.RED``) become their string value.

    Raises:
        ValueError: when an item is neither a name, an int nor a two-int range (names ``key``).
    """
    if bands is None:
        return None
    expanded: list[Band] = []
    for item in bands:
        if isinstance(item, Enum):
            expanded.append(str(item.value))
        elif isinstance(item, bool):
            raise ValueError(f"{key}: {item!r} is not a band; use a name, an int or an [a, b] range")
        elif isinstance(item, str | int):
            expanded.append(item)
        elif isinstance(item, Sequence) and len(item) == 2 and all(isinstance(v, int) for v in item):
            start, stop = item
            if stop < start:
                raise ValueError(f"{key}: range {list(item)} is empty; write [low, high] with low <= high")
            expanded.extend(range(start, stop + 1))
        else:
            raise ValueError(
                f"{key}: {item!r} is not a band; use a name (str), an int or an inclusive [a, b] range"
            )
    return expanded


def select_band_indices(dataset_bands: Sequence[Band], output_bands: Sequence[Band]) -> list[int]:
    """Return the 0-based positions of ``output_bands`` inside ``dataset_bands`` (order kept).

    Raises:
        ValueError: when an output band is not among the dataset bands; shows both lists and the
            closest names, because silently zero-filling or reordering bands ruins a model.
    """
    positions = {band: i for i, band in enumerate(dataset_bands)}
    missing = [band for band in output_bands if band not in positions]
    if missing:
        hints = []
        for band in missing:
            names = [str(b) for b in dataset_bands]
            close = close_matches(str(band), names, n=3)
            close += [n for n in names if str(band).lower() in n.lower() and n not in close][:3]
            if close:
                hints.append(f"{band!r} -> did you mean {', '.join(close)}?")
        hint = f" ({'; '.join(hints)})" if hints else ""
        raise ValueError(
            f"output_bands must be a subset of dataset_bands; not found: {list(missing)}{hint}. "
            f"output_bands={list(output_bands)}, dataset_bands={list(dataset_bands)}"
        )
    return [positions[band] for band in output_bands]


# ----------------------------------------------------------------------------- means / stds


def load_float_list(value: Sequence[float] | str | Path | None, *, key: str) -> list[float] | None:
    """Read per-band statistics given inline or as a file path.

    A file holds one value per line (``#`` comments allowed) or a YAML/JSON list. Used for
    ``means``/``stds`` so configs can point at the output of ``compute_statistics``.

    Raises:
        FileNotFoundError: when ``value`` is a path that does not exist (names ``key``).
        ValueError: when the file or list holds something that is not a number.
    """
    if value is None:
        return None
    if isinstance(value, str | Path):
        return _read_float_file(Path(value), key=key)
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{key}: expected a list of numbers or a file path, got {value!r}") from error


def _read_float_file(path: Path, *, key: str) -> list[float]:
    if not path.is_file():
        raise FileNotFoundError(f"{key}: file {str(path)!r} does not exist (give a list or an existing file)")
    text = path.read_text()
    stripped = text.strip()
    if stripped.startswith("["):
        items = json.loads(stripped) if path.suffix == ".json" else _yaml_load(stripped)
    elif path.suffix in (".yaml", ".yml", ".json"):
        items = json.loads(stripped) if path.suffix == ".json" else _yaml_load(stripped)
        if isinstance(items, dict):
            raise ValueError(f"{key}: {path} holds a mapping; it must hold a list with one value per band")
    else:
        items = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        items = [item for item in items if item]
    try:
        return [float(v) for v in items]
    except (TypeError, ValueError) as error:
        raise ValueError(f"{key}: {path} must hold one number per band, found {items!r}") from error


def _yaml_load(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


# ----------------------------------------------------------------------------- files and splits


def find_files(
    root: str | Path, grep: str, *, key: str = "data_root", grep_key: str = "img_grep"
) -> list[Path]:
    """List the files under ``root`` matching the glob ``grep`` (sorted; files are not opened).

    Every match that is not a directory counts, broken symbolic links included (as with the
    reference's ``glob.glob``), so a dangling link fails when it is read, under its own name.

    Raises:
        FileNotFoundError: when ``root`` is missing or the glob matches nothing; says which glob
            found nothing where.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{key}: directory {str(root)!r} does not exist")
    files = sorted(p for p in root.glob(grep) if not p.is_dir())
    if not files:
        raise FileNotFoundError(
            f"{key}: no files matched {grep_key}={grep!r} in {str(root)!r} "
            f"(check the directory and the glob, e.g. '*.tif')"
        )
    return files


def file_key(path: Path, grep: str) -> str:
    """Return the part of a file name matched by the ``*`` of a single-star glob.

    Images and labels are paired by this key, so ``scene1_img.tif`` (``*_img.tif``) pairs with
    ``scene1_mask.tif`` (``*_mask.tif``). Globs with zero or several stars fall back to the stem
    before the first dot. Fixes upstream's pairing of two sorted lists by position, which
    silently mismatches when one file is missing.
    """
    pattern = Path(grep).name
    name = path.name
    if pattern.count("*") == 1 and not any(c in pattern for c in "?["):
        prefix, suffix = pattern.split("*")
        if name.startswith(prefix) and name.endswith(suffix) and len(name) >= len(prefix) + len(suffix):
            return name[len(prefix) : len(name) - len(suffix)]
    return name.split(".", 1)[0]


def read_split_file(path: str | Path, *, key: str = "split") -> set[str]:
    """Read a split file: one sample stem (or file name) per line; blank lines are ignored.

    Raises:
        FileNotFoundError: when the file does not exist (names ``key``).
        ValueError: when the file lists no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}: split file {str(path)!r} does not exist")
    stems = {line.strip() for line in path.read_text().splitlines() if line.strip()}
    if not stems:
        raise ValueError(f"{key}: split file {str(path)!r} is empty; list one sample stem per line")
    return stems


def in_split(path: Path, key: str, split: set[str] | None) -> bool:
    """True when no split is given or the file's key, name or stem is listed in it."""
    if split is None:
        return True
    return key in split or path.name in split or path.name.split(".", 1)[0] in split


def pair_images_labels(
    images: list[Path], labels: list[Path], *, img_grep: str, label_grep: str
) -> list[tuple[Path, Path]]:
    """Pair image and label files by their glob key (see :func:`file_key`).

    Raises:
        ValueError: when an image has no label (or the counts differ); lists the unmatched files.
    """
    by_key = {file_key(p, label_grep): p for p in labels}
    pairs, unmatched = [], []
    for image in images:
        label = by_key.get(file_key(image, img_grep))
        if label is None:
            unmatched.append(image.name)
        else:
            pairs.append((image, label))
    if unmatched:
        raise ValueError(
            f"image/label mismatch: {len(images)} images vs {len(labels)} labels; "
            f"no label matching label_grep={label_grep!r} for {unmatched[:5]}"
            f"{' ...' if len(unmatched) > 5 else ''} (images in {str(images[0].parent)!r}, labels in "
            f"{str(labels[0].parent) if labels else '?'!r}); pairs share the part matched by '*'"
        )
    return pairs


def filter_split(
    files: Iterable[Path],
    grep: str,
    split: set[str] | None,
    *,
    ignore_extensions: bool | None = None,
    allow_substring: bool | None = None,
) -> list[Path]:
    """Keep the files listed in ``split`` (all of them when ``split`` is None).

    Without the two flags a file is kept when its glob key, name or stem is listed. With them the
    split-file options of the generic datamodules apply: ``ignore_extensions`` drops the last
    extension of both the listed entries and the file names before comparing (so ``a.jpg`` lists
    ``a.tif``), and ``allow_substring`` keeps a file when any entry occurs inside its name
    (otherwise the name must equal an entry).
    """
    if split is None:
        return list(files)
    if ignore_extensions is None and allow_substring is None:
        return [p for p in files if in_split(p, file_key(p, grep), split)]
    strip = bool(ignore_extensions)
    entries = {_drop_extension(entry) if strip else entry for entry in split}
    kept = []
    for path in files:
        name = _drop_extension(path.name) if strip else path.name
        if name in entries or (allow_substring is not False and any(e in name for e in entries)):
            kept.append(path)
    return kept


def _drop_extension(name: str) -> str:
    """``a.b.tif`` -> ``a.b`` (only the last extension, as split files list ``name.ext``)."""
    stem, dot, _ = name.rpartition(".")
    return stem if dot and stem else name


class Modalities(Enum):
    """Modality names of the TerraMind pretraining data (the reference's enum)."""

    S1GRD = "S1GRD"
    S1RTC = "S1RTC"
    S2L1C = "S2L1C"
    S2L2A = "S2L2A"
    S2RGB = "S2RGB"
    DEM = "DEM"
    NDVI = "NDVI"
    LULC = "LULC"
