"""Synthetic, georeferenced multispectral GeoTIFF datasets for tests, examples and tutorials.

The data has learnable structure at two scales. Classes are small smooth fields (about
``FIELD_SIZE`` pixels across) with a spectral signature per class and, for every class but the
first, a striped texture a few pixels in period (field rows, roofs); strong per-pixel noise and
illumination changes sit on top. One pixel's spectrum is therefore only a noisy hint, while a few
pixels of context (what a convolution sees) make the class clear: a small CNN learns the
segmentation in a few epochs, and a model that only sees 16-pixel patches cannot place the field
boundaries. Regression targets are smooth fields with a linear spectral response.

Every file is a real GeoTIFF (EPSG:32633, 30 m affine transform, a nodata value and a few nodata
pixels). Output is byte-for-byte identical for the same arguments and seed.

Layout written by :func:`make_demo_dataset` under ``root``::

    images/            chip_0000_img.tif ...      (segmentation, regression tasks)
    images/<class>/    chip_0000.tif ...          (classification)
    labels/            chip_0000_mask.tif ...     (segmentation: uint8 ids, nodata 255;
                                                   pixel_regression: float32, nodata -9999)
    labels.csv         filename,<columns>         (multilabel: 0/1 per class; scalar_regression)
    splits/            train.txt val.txt test.txt (one stem per line)
    means.txt stds.txt per-band statistics of the train split (after constant_scale)

:func:`make_detection_demo` writes an object-detection dataset instead (bright squares of two
classes, COCO annotations and a ground truth in pixel and map coordinates; see its docstring).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("segmentation", "classification", "pixel_regression", "scalar_regression", "multilabel")
CRS_EPSG = 32633
PIXEL_SIZE = 30.0
ORIGIN = (500_000.0, 5_000_000.0)
IMAGE_NODATA = -9999
MASK_NODATA = 255
TARGET_NODATA = -9999.0
CONSTANT_SCALE = 0.0001  # images are int16 reflectance x 10000
FIELD_SIZE = 6  # lattice spacing (pixels) of the class fields in chips (scenes: 32 px, see make_demo_scene)
PIXEL_NOISE = 0.12  # std of the per-pixel Gaussian noise of class-type images (reflectance units)
TEXTURE_AMPLITUDE = 0.3  # relative brightness swing of a class texture
TEXTURE_TILE = 12  # textures repeat every TEXTURE_TILE pixels in both directions
# waves per TEXTURE_TILE pixels (along columns, along rows) of class 1, 2, ...: periods of 3-4 px
_TEXTURE_WAVES = ((3, 0), (0, 3), (2, 2), (2, -2), (4, 0), (0, 4), (3, 3))
_BAND_NAMES = (
    "BLUE",
    "GREEN",
    "RED",
    "NIR_NARROW",
    "SWIR_1",
    "SWIR_2",
    "COASTAL_AEROSOL",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "NIR_BROAD",
    "WATER_VAPOR",
    "CIRRUS",
)
# alphabetical, so sorted class folders (the classification datamodule's default order) keep index order
_CLASS_NAMES = ("bare_soil", "built_up", "cropland", "forest", "grassland", "snow", "water", "wetland")

DATAMODULES = {
    "segmentation": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
    "classification": "terratorch.datamodules.GenericNonGeoClassificationDataModule",
    "pixel_regression": "terratorch.datamodules.GenericNonGeoPixelwiseRegressionDataModule",
    "scalar_regression": "terratorch.datamodules.GenericNonGeoScalarRegressionDataModule",
    "multilabel": "terratorch.datamodules.GenericNonGeoMultiLabelClassificationDataModule",
}


@dataclass
class DemoDataset:
    """What :func:`make_demo_dataset` wrote, plus ready-made datamodule arguments.

    Attributes:
        root: the dataset directory.
        task: one of ``TASKS``.
        image_dir: directory of images (class sub-folders for classification).
        label_dir: directory of label rasters (pixel-wise tasks) or None.
        label_file: CSV of per-image targets (multilabel, scalar_regression) or None.
        splits: ``{"train": path, "val": path, "test": path}`` split files (one stem per line).
        img_grep / label_grep: globs selecting images / labels.
        band_names: the bands stored in every image, in order.
        class_names: class names (classification-type tasks), index order.
        num_classes: number of classes (0 for regression).
        means / stds: per-band statistics of the train split after ``constant_scale``.
        means_file / stds_file: the same, one value per line.
        constant_scale: factor turning stored int16 values into reflectance.
    """

    root: Path
    task: str
    image_dir: Path
    label_dir: Path | None
    label_file: Path | None
    splits: dict[str, Path]
    img_grep: str
    label_grep: str | None
    band_names: list[str]
    class_names: list[str]
    num_classes: int
    means: list[float]
    stds: list[float]
    means_file: Path
    stds_file: Path
    constant_scale: float = CONSTANT_SCALE
    stems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def datamodule_class_path(self) -> str:
        """Import path of the datamodule that reads this dataset."""
        return DATAMODULES[self.task]

    def datamodule_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments of the matching datamodule (``overrides`` win)."""
        kwargs: dict[str, Any] = {
            "img_grep": self.img_grep,
            "dataset_bands": list(self.band_names),
            "output_bands": list(self.band_names),
            "means": str(self.means_file),
            "stds": str(self.stds_file),
            "constant_scale": self.constant_scale,
            "no_data_replace": 0.0,
        }
        for split in ("train", "val", "test"):
            kwargs[f"{split}_data_root"] = str(self.image_dir)
            kwargs[f"{split}_split"] = str(self.splits[split])
        if self.label_dir is not None:
            kwargs["label_grep"] = self.label_grep
            kwargs["no_label_replace"] = -1
            for split in ("train", "val", "test"):
                kwargs[f"{split}_label_data_root"] = str(self.label_dir)
        if self.label_file is not None:
            kwargs["label_file"] = str(self.label_file)
        if self.task in ("segmentation", "classification", "multilabel"):
            kwargs["num_classes"] = self.num_classes
        if self.task == "classification":
            kwargs["class_names"] = list(self.class_names)  # folder k holds class index k
        kwargs.update(overrides)
        return kwargs

    def make_datamodule(self, **overrides: Any) -> Any:
        """Build the matching datamodule (imports Lightning)."""
        import importlib

        module, name = self.datamodule_class_path.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)(**self.datamodule_kwargs(**overrides))


# ----------------------------------------------------------------------------- synthetic fields


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def smooth_field(
    grid: np.ndarray, row0: int, nrows: int, ncols: int, cell: int, *, col0: int = 0
) -> np.ndarray:
    """Interpolate a coarse random lattice into a smooth field (no full-scene array needed).

    Args:
        grid: ``(K, gh, gw)`` lattice values; lattice point ``(i, j)`` sits at pixel ``(i*cell, j*cell)``.
        row0, nrows, ncols, col0: the pixel rows ``[row0, row0 + nrows)`` and columns
            ``[col0, col0 + ncols)`` wanted.
        cell: lattice spacing in pixels (blob size).

    Returns:
        ``(K, nrows, ncols)`` float32 field, smooth (C1) between lattice points.
    """
    y = (np.arange(row0, row0 + nrows, dtype=np.float64) + 0.5) / cell
    x = (np.arange(col0, col0 + ncols, dtype=np.float64) + 0.5) / cell
    iy, ix = np.floor(y).astype(np.int64), np.floor(x).astype(np.int64)
    fy = _smoothstep(y - iy).astype(np.float32)[:, None]
    fx = _smoothstep(x - ix).astype(np.float32)[None, :]
    # separable: interpolate the few lattice rows along x, then those along y
    top = int(iy[0])
    rows = grid[:, top : int(iy[-1]) + 2].astype(np.float32)
    along_x = rows[:, :, ix] * (1 - fx) + rows[:, :, ix + 1] * fx
    local = iy - top
    return along_x[:, local] * (1 - fy) + along_x[:, local + 1] * fy


def _lattice(rng: np.random.Generator, k: int, height: int, width: int, cell: int) -> np.ndarray:
    return rng.random((k, height // cell + 2, width // cell + 2), dtype=np.float64)


def class_signatures(num_classes: int, num_bands: int, seed: int) -> np.ndarray:
    """Per-class mean reflectance ``(num_classes, num_bands)``; shared by chips and scenes of a seed."""
    rng = np.random.default_rng([seed, 7919])
    return rng.uniform(0.03, 0.5, size=(num_classes, num_bands)).astype(np.float32)


def class_textures(num_classes: int) -> np.ndarray:
    """Per-class brightness patterns ``(num_classes, TEXTURE_TILE, TEXTURE_TILE)`` in ``[-1, 1]``.

    Class 0 is flat; class ``k >= 1`` is a sinusoidal grating (stripes 3-4 pixels apart, a different
    orientation per class) that tiles seamlessly, so chips and scene windows index it with
    ``(row % TEXTURE_TILE, col % TEXTURE_TILE)``.
    """
    rows, cols = np.mgrid[0:TEXTURE_TILE, 0:TEXTURE_TILE].astype(np.float64)
    patterns = np.zeros((num_classes, TEXTURE_TILE, TEXTURE_TILE), dtype=np.float32)
    for k in range(1, num_classes):
        along_cols, along_rows = _TEXTURE_WAVES[(k - 1) % len(_TEXTURE_WAVES)]
        patterns[k] = np.sin(2 * np.pi * (along_cols * cols + along_rows * rows) / TEXTURE_TILE)
    return patterns


def textured_reflectance(
    signatures: np.ndarray, textures: np.ndarray, class_map: np.ndarray, row0: int = 0, col0: int = 0
) -> np.ndarray:
    """``(B, h, w)`` reflectance of a class map: each class's signature times its texture.

    Args:
        signatures: ``(num_classes, B)`` from :func:`class_signatures`.
        textures: ``(num_classes, TEXTURE_TILE, TEXTURE_TILE)`` from :func:`class_textures`.
        class_map: ``(h, w)`` class indices.
        row0, col0: position of ``class_map``'s top-left pixel in the texture's frame (a chip's
            random phase, or a scene window's offset).
    """
    h, w = class_map.shape
    rows = (np.arange(row0, row0 + h) % TEXTURE_TILE)[:, None]
    cols = (np.arange(col0, col0 + w) % TEXTURE_TILE)[None, :]
    gain = 1.0 + TEXTURE_AMPLITUDE * textures[class_map, rows, cols]
    reflectance = np.take(signatures.T, class_map, axis=1)  # (B, h, w)
    reflectance *= gain[None]
    return reflectance


def regression_signatures(num_bands: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(base, slope)`` spectra: a pixel with target ``t`` has reflectance ``base + t * slope``."""
    rng = np.random.default_rng([seed, 104729])
    base = rng.uniform(0.15, 0.3, size=num_bands)
    rising = rng.random(num_bands) < 0.6  # most bands brighten with the target, some darken
    slope = np.where(rising, rng.uniform(0.1, 0.3, num_bands), -rng.uniform(0.05, 0.12, num_bands))
    return base.astype(np.float32), slope.astype(np.float32)


def _render(
    reflectance: np.ndarray,
    illumination: np.ndarray,
    rng: np.random.Generator,
    amplitude: float = 0.2,
    noise: np.ndarray | None = None,
    noise_std: float = 0.012,
) -> np.ndarray:
    """``(B, H, W)`` reflectance -> int16 x 10000 with illumination change (+-amplitude/2) and noise.

    ``noise`` (same shape) replaces freshly drawn Gaussian noise of std ``noise_std``; scenes pass
    slices of a pre-drawn bank because drawing normals dominates the cost of large scenes.
    """
    gain = (1.0 - amplitude / 2 + amplitude * illumination).astype(np.float32)
    noisy = reflectance * gain
    if noise is None:
        noise = noise_std * rng.standard_normal(reflectance.shape, dtype=np.float32)
    noisy += noise
    noisy *= 1.0 / CONSTANT_SCALE
    np.clip(np.rint(noisy, out=noisy), 0, 10000, out=noisy)
    return noisy.astype(np.int16)


def band_names_for(num_bands: int) -> list[str]:
    """Band names of the demo images: the Prithvi HLS bands first, then ``B<i>``."""
    names = list(_BAND_NAMES[:num_bands])
    return names + [f"B{i}" for i in range(len(names) + 1, num_bands + 1)]


def class_names_for(num_classes: int) -> list[str]:
    """Readable class names (``class_<i>`` beyond the built-in list)."""
    names = list(_CLASS_NAMES[:num_classes])
    return names + [f"class_{i}" for i in range(len(names), num_classes)]


# ----------------------------------------------------------------------------- writing


def _transform(col: int, row: int) -> Any:
    """Affine transform of a raster whose top-left pixel sits ``(col, row)`` pixels from ORIGIN."""
    from affine import Affine

    return Affine(
        PIXEL_SIZE, 0.0, ORIGIN[0] + col * PIXEL_SIZE, 0.0, -PIXEL_SIZE, ORIGIN[1] - row * PIXEL_SIZE
    )


def _profile(height: int, width: int, count: int, dtype: str, nodata: float) -> dict:
    from rasterio.crs import CRS

    from terratorch.io.geotiff import raster_profile

    return raster_profile(
        height, width, count, dtype, nodata, crs=CRS.from_epsg(CRS_EPSG), transform=_transform(0, 0)
    )


@dataclass
class _Chip:
    image: np.ndarray  # (B, H, W) int16
    nodata: np.ndarray  # (H, W) bool
    class_map: np.ndarray | None = None  # (H, W) int
    target: np.ndarray | None = None  # (H, W) float32 in [0, 1]
    label: Any = None


def _nodata_pixels(rng: np.random.Generator, size: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    count = int(rng.integers(2, 7))
    mask[rng.integers(0, size, count), rng.integers(0, size, count)] = True
    return mask


def _class_chip(
    rng, signatures: np.ndarray, textures: np.ndarray, size: int, task: str, forced_label: int = 0
) -> _Chip:
    num_classes = signatures.shape[0]
    cell = FIELD_SIZE
    fields = smooth_field(_lattice(rng, num_classes, size, size, cell), 0, size, size, cell)
    label: Any = None
    if task == "classification":
        label = int(forced_label)
        fields[label] += 0.45  # the image's class covers most of it
    elif task == "multilabel":
        present = rng.random(num_classes) < 0.5
        present[int(rng.integers(num_classes))] = True
        fields[~present] = -1.0
    class_map = np.argmax(fields, axis=0)
    if task == "multilabel":
        area = np.bincount(class_map.ravel(), minlength=num_classes) / class_map.size
        label = [int(a >= 0.02) for a in area]
    illumination = smooth_field(_lattice(rng, 1, size, size, cell * 2), 0, size, size, cell * 2)[0]
    phase = rng.integers(TEXTURE_TILE, size=2)  # where the chip sits in the texture's frame
    reflectance = textured_reflectance(signatures, textures, class_map, int(phase[0]), int(phase[1]))
    image = _render(reflectance, illumination, rng, noise_std=PIXEL_NOISE)
    nodata = _nodata_pixels(rng, size)
    image[:, nodata] = IMAGE_NODATA
    return _Chip(image=image, nodata=nodata, class_map=class_map, label=label)


def _regression_chip(rng, base: np.ndarray, slope: np.ndarray, size: int) -> _Chip:
    cell = max(8, size // 4)
    offset = rng.random()
    target = 0.5 * smooth_field(_lattice(rng, 1, size, size, cell), 0, size, size, cell)[0] + 0.5 * offset
    reflectance = base[:, None, None] + target[None] * slope[:, None, None]
    illumination = smooth_field(_lattice(rng, 1, size, size, cell * 2), 0, size, size, cell * 2)[0]
    image = _render(reflectance, illumination, rng, amplitude=0.04)
    nodata = _nodata_pixels(rng, size)
    image[:, nodata] = IMAGE_NODATA
    return _Chip(image=image, nodata=nodata, target=target.astype(np.float32), label=float(target.mean()))


class _TrainStatistics:
    """Per-band mean/std of the train chips' valid pixels, in ``constant_scale`` units."""

    def __init__(self) -> None:
        from terratorch.datasets.statistics import BandAccumulator

        self.accumulator = BandAccumulator()

    def add(self, chip: _Chip) -> None:
        nodata = np.broadcast_to(chip.nodata, chip.image.shape)
        self.accumulator.add(chip.image * CONSTANT_SCALE, nodata)

    def result(self) -> tuple[list[float], list[float]]:
        means, stds = self.accumulator.result()
        return [round(v, 6) for v in means], [round(v, 6) for v in stds]


def make_demo_dataset(
    root: str | Path,
    task: str,
    *,
    n_train: int = 16,
    n_val: int = 8,
    n_test: int = 8,
    size: int = 64,
    num_bands: int = 6,
    num_classes: int = 3,
    seed: int = 0,
) -> DemoDataset:
    """Write a small georeferenced demo dataset for ``task`` under ``root``.

    Args:
        root: output directory (created; existing demo files are overwritten).
        task: one of ``segmentation``, ``classification``, ``pixel_regression``,
            ``scalar_regression``, ``multilabel``.
        n_train, n_val, n_test: chips per split.
        size: chip height and width in pixels.
        num_bands: bands per image (named ``BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2, ...``).
        num_classes: classes of the classification-type tasks (ignored for regression).
        seed: the same seed writes the same bytes.

    Returns:
        A :class:`DemoDataset` describing the paths, with ``datamodule_kwargs()``.

    Raises:
        ValueError: unknown task or non-positive sizes (lists the valid tasks).
    """
    _check_args(task, n_train=n_train, n_val=n_val, n_test=n_test, size=size, num_bands=num_bands)
    if task in ("segmentation", "classification", "multilabel") and num_classes < 2:
        raise ValueError(f"num_classes must be >= 2 for {task}, got {num_classes}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    counts = {"train": n_train, "val": n_val, "test": n_test}
    classes = class_names_for(num_classes) if "regression" not in task else []
    signatures = class_signatures(num_classes, num_bands, seed)
    textures = class_textures(num_classes)
    base, slope = regression_signatures(num_bands, seed)
    bands = band_names_for(num_bands)
    stats = _TrainStatistics()
    stems: dict[str, list[str]] = {split: [] for split in counts}
    csv_rows: list[list[Any]] = []
    index = 0
    for split, count in counts.items():
        for position in range(count):
            stem = f"chip_{index:04d}"
            if task in ("segmentation", "classification", "multilabel"):
                # classification cycles through the classes so every split is balanced
                chip = _class_chip(rng, signatures, textures, size, task, forced_label=position % num_classes)
            else:
                chip = _regression_chip(rng, base, slope, size)
            _write_chip(root, task, stem, index, chip, size, bands, classes)
            if task in ("multilabel", "scalar_regression"):
                label = chip.label if task == "multilabel" else [f"{chip.label:.6f}"]
                csv_rows.append([f"{stem}.tif", *label])
            if split == "train":
                stats.add(chip)
            stems[split].append(stem)
            index += 1
    return _finish(root, task, stems, csv_rows, stats, bands, classes, num_classes)


def _check_args(task: str, **sizes: int) -> None:
    if task not in TASKS:
        from terratorch.choices import close_matches

        close = close_matches(task, TASKS, n=2)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown demo task {task!r}; valid tasks: {', '.join(TASKS)}.{hint}")
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def _write_chip(root: Path, task: str, stem: str, index: int, chip: _Chip, size: int, bands, classes) -> None:
    from terratorch.datasets.utils import write_geotiff

    transform = _transform((index % 16) * (size + 8), (index // 16) * (size + 8))  # chips tile a UTM area
    if task == "classification":
        for name in classes:  # every class folder exists, even one without chips
            (root / "images" / name).mkdir(parents=True, exist_ok=True)
        image_path = root / "images" / classes[chip.label] / f"{stem}.tif"
    elif task in ("multilabel", "scalar_regression"):
        image_path = root / "images" / f"{stem}.tif"
    else:
        image_path = root / "images" / f"{stem}_img.tif"
    geo = {"crs": CRS_EPSG, "transform": transform}
    write_geotiff(image_path, chip.image, nodata=IMAGE_NODATA, descriptions=bands, **geo)
    if task == "segmentation":
        mask = chip.class_map.astype(np.uint8)
        mask[chip.nodata] = MASK_NODATA
        write_geotiff(root / "labels" / f"{stem}_mask.tif", mask, nodata=MASK_NODATA, **geo)
    elif task == "pixel_regression":
        target = chip.target.copy()
        target[chip.nodata] = TARGET_NODATA
        write_geotiff(root / "labels" / f"{stem}_mask.tif", target, nodata=TARGET_NODATA, **geo)


def _finish(root: Path, task, stems, csv_rows, stats, bands, classes, num_classes) -> DemoDataset:
    splits = {}
    for split, names in stems.items():
        splits[split] = root / "splits" / f"{split}.txt"
        splits[split].parent.mkdir(parents=True, exist_ok=True)
        splits[split].write_text("".join(f"{name}\n" for name in names))
    label_file = None
    if csv_rows:
        label_file = root / "labels.csv"
        header = ["filename", *(classes if task == "multilabel" else ["target"])]
        with label_file.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(csv_rows)
    means, stds = stats.result()
    (root / "means.txt").write_text("".join(f"{v}\n" for v in means))
    (root / "stds.txt").write_text("".join(f"{v}\n" for v in stds))
    pixel_wise = task in ("segmentation", "pixel_regression")
    img_grep = "*_img.tif" if pixel_wise else "*.tif"
    return DemoDataset(
        root=root,
        task=task,
        image_dir=root / "images",
        label_dir=root / "labels" if pixel_wise else None,
        label_file=label_file,
        splits=splits,
        img_grep=img_grep,
        label_grep="*_mask.tif" if pixel_wise else None,
        band_names=bands,
        class_names=classes,
        num_classes=num_classes if classes else 0,
        means=means,
        stds=stds,
        means_file=root / "means.txt",
        stds_file=root / "stds.txt",
        stems=stems,
    )


# ----------------------------------------------------------------------------- large scenes


def make_demo_scene(
    path: str | Path,
    height: int,
    width: int,
    num_bands: int = 6,
    seed: int = 0,
    *,
    num_classes: int = 3,
    mask_path: str | Path | None = None,
    block_size: int = 256,
    compress: str | None = None,
) -> Path:
    """Write one large georeferenced scene window by window (memory ~ one window, not the scene).

    The scene uses the class signatures, textures and noise of ``make_demo_dataset(...,
    task="segmentation", seed=seed)``, so a model trained on those chips segments it; its fields
    are larger (32 px lattice), which keeps the lattice small for huge scenes. Tiled
    (``block_size``) so that windowed reads are cheap. A 16384 x 16384 x 6 int16 scene is 3.2 GB
    uncompressed.

    Args:
        path: output GeoTIFF (int16 reflectance x 10000, nodata -9999, EPSG:32633).
        height, width: scene size in pixels (any size).
        num_bands, seed, num_classes: as in :func:`make_demo_dataset`.
        mask_path: when given, also write the true class map there (uint8).
        block_size: GeoTIFF tile size (multiple of 16).
        compress: GDAL compression (e.g. ``"deflate"``) or None.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    import rasterio
    from rasterio.windows import Window

    if height < 1 or width < 1:
        raise ValueError(f"scene size must be positive, got height={height}, width={width}")
    if block_size % 16:
        raise ValueError(f"block_size must be a multiple of 16, got {block_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    signatures = class_signatures(num_classes, num_bands, seed)
    textures = class_textures(num_classes)
    cell = 32
    grid = _lattice(np.random.default_rng([seed, 1]), num_classes, height, width, cell)
    light = _lattice(np.random.default_rng([seed, 2]), 1, height, width, cell * 4)
    profile = _profile(height, width, num_bands, "int16", IMAGE_NODATA)
    extra = {"tiled": True, "blockxsize": block_size, "blockysize": block_size}
    if compress:
        extra["compress"] = compress
    # whole tile rows, in column chunks: every write fills complete tiles, memory ~ one chunk
    chunk = max(block_size, (1 << 19) // block_size // block_size * block_size)
    bank_shape = (num_bands, block_size, chunk + block_size)
    noise = np.random.default_rng([seed, 4]).standard_normal(bank_shape, dtype=np.float32)
    noise *= PIXEL_NOISE
    mask_dst = None
    with rasterio.open(path, "w", **profile, **extra) as dst:
        if mask_path is not None:
            mask_profile = _profile(height, width, 1, "uint8", MASK_NODATA)
            mask_dst = rasterio.open(mask_path, "w", **mask_profile, **extra)
        try:
            for row0 in range(0, height, block_size):
                for col0 in range(0, width, chunk):
                    window = Window(col0, row0, min(chunk, width - col0), min(block_size, height - row0))
                    class_map = _write_scene_window(
                        dst, window, (grid, light, noise), (signatures, textures), cell, seed
                    )
                    if mask_dst is not None:
                        mask_dst.write(class_map.astype(np.uint8)[None], window=window)
        finally:
            if mask_dst is not None:
                mask_dst.close()
        for index, name in enumerate(band_names_for(num_bands), start=1):
            dst.set_band_description(index, name)
    return path


def _write_scene_window(dst, window, fields, looks, cell: int, seed: int) -> np.ndarray:
    """Render and write one window of a scene; returns its ``(h, w)`` class map.

    ``fields`` is ``(class lattice, illumination lattice, noise bank)``, ``looks`` is
    ``(class signatures, class textures)``.
    """
    grid, light, noise_bank = fields
    signatures, textures = looks
    row0, col0, nrows, ncols = int(window.row_off), int(window.col_off), int(window.height), int(window.width)
    rng = np.random.default_rng([seed, 3, row0, col0])
    class_map = np.argmax(smooth_field(grid, row0, nrows, ncols, cell, col0=col0), axis=0)
    illumination = smooth_field(light, row0, nrows, ncols, cell * 4, col0=col0)[0]
    offset = int(rng.integers(noise_bank.shape[2] - ncols + 1))
    reflectance = textured_reflectance(signatures, textures, class_map, row0, col0)
    image = _render(reflectance, illumination, rng, noise=noise_bank[:, :nrows, offset : offset + ncols])
    image[:, rng.random((nrows, ncols)) < 1e-4] = IMAGE_NODATA
    dst.write(image, window=window)
    return class_map


# ----------------------------------------------------------------------------- CLI


# ----------------------------------------------------------------------------- two modalities

S2L2A_BANDS = (
    "COASTAL_AEROSOL",
    "BLUE",
    "GREEN",
    "RED",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "NIR_BROAD",
    "NIR_NARROW",
    "WATER_VAPOR",
    "SWIR_1",
    "SWIR_2",
)
S1GRD_BANDS = ("VV", "VH")


@dataclass
class MultimodalDemo:
    """What :func:`make_multimodal_demo` wrote, plus ready-made ``GenericMultiModalDataModule`` arguments.

    Attributes:
        root: the dataset directory.
        modalities: modality names, in order (``S2L2A``, ``S1GRD``).
        data_roots: ``{modality: directory}``.
        image_grep: ``{modality: glob}``.
        label_dir, label_grep: the label rasters (uint8 class ids, nodata 255).
        splits: ``{"train": path, "val": path, "test": path}`` (one sample id per line).
        bands: ``{modality: band names}``.
        num_classes: number of classes.
        means, stds: ``{modality: per-band values}`` of the train split.
        stems: the sample ids of each split.
    """

    root: Path
    modalities: list[str]
    data_roots: dict[str, Path]
    image_grep: dict[str, str]
    label_dir: Path
    label_grep: str
    splits: dict[str, Path]
    bands: dict[str, list[str]]
    num_classes: int
    means: dict[str, list[float]]
    stds: dict[str, list[float]]
    stems: dict[str, list[str]] = field(default_factory=dict)

    def datamodule_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments of ``GenericMultiModalDataModule`` for this data (``overrides`` win)."""
        roots = {m: str(p) for m, p in self.data_roots.items()}
        kwargs: dict[str, Any] = {
            "task": "segmentation",
            "modalities": list(self.modalities),
            "image_grep": dict(self.image_grep),
            "label_grep": self.label_grep,
            "means": {m: list(v) for m, v in self.means.items()},
            "stds": {m: list(v) for m, v in self.stds.items()},
            "num_classes": self.num_classes,
            "no_data_replace": 0.0,
            "no_label_replace": -1,
        }
        for split in ("train", "val", "test"):
            kwargs[f"{split}_data_root"] = dict(roots)
            kwargs[f"{split}_label_data_root"] = str(self.label_dir)
            kwargs[f"{split}_split"] = str(self.splits[split])
        kwargs.update(overrides)
        return kwargs


def make_multimodal_demo(
    root: str | Path,
    *,
    n_train: int = 16,
    n_val: int = 8,
    n_test: int = 4,
    size: int = 32,
    num_classes: int = 3,
    seed: int = 0,
) -> MultimodalDemo:
    """Write a two-modality segmentation dataset: S2L2A (12 bands) and S1GRD (2 bands) on one grid.

    Each chip has smooth class fields. The optical signature separates class 0 from the others;
    the radar backscatter separates the last class from the others, so only a model that uses both
    modalities gets every class right (each modality alone confuses two classes). Files::

        S2L2A/chip_0000_S2L2A.tif   int16 reflectance x 10000, nodata -9999 (a few pixels)
        S1GRD/chip_0000_S1GRD.tif   float32 backscatter in dB
        labels/chip_0000_mask.tif   uint8 class ids, nodata 255 where S2 is nodata
        splits/{train,val,test}.txt sample ids (chip_0000 ...)
        statistics.json             per-modality means/stds of the train split

    Returns:
        A :class:`MultimodalDemo` describing the files. Same arguments and seed, same bytes.

    Raises:
        ValueError: fewer than 2 classes, a chip smaller than 8 pixels or an empty train split.
    """
    from terratorch.datasets.utils import write_geotiff

    if num_classes < 2 or size < 8 or n_train < 1:
        raise ValueError(
            f"make_multimodal_demo needs num_classes >= 2, size >= 8 and n_train >= 1; got "
            f"num_classes={num_classes}, size={size}, n_train={n_train}"
        )
    root = Path(root)
    rng = np.random.default_rng([seed, 31337])
    optical = rng.uniform(0.05, 0.45, size=(2, len(S2L2A_BANDS))).astype(np.float32)
    radar = np.array([[-12.0, -19.0], [-6.0, -11.0]], dtype=np.float32)
    optical_class = np.minimum(np.arange(num_classes), 1)  # class 0 | the rest
    radar_class = (np.arange(num_classes) == num_classes - 1).astype(np.int64)  # last class | the rest
    grep = {"S2L2A": "*_S2L2A.tif", "S1GRD": "*_S1GRD.tif"}
    dirs = {m: root / m for m in grep}
    counts = {"train": n_train, "val": n_val, "test": n_test}
    stems: dict[str, list[str]] = {}
    sums = {m: [] for m in grep}
    index = 0
    for split, count in counts.items():
        stems[split] = []
        for _ in range(count):
            stem = f"chip_{index:04d}"
            fields = smooth_field(
                _lattice(rng, num_classes, size, size, FIELD_SIZE), 0, size, size, FIELD_SIZE
            )
            class_map = np.argmax(fields, axis=0)
            s2 = optical[optical_class[class_map]].transpose(2, 0, 1)
            s2 = s2 + 0.05 * rng.standard_normal(s2.shape, dtype=np.float32)
            s2 = np.clip(np.rint(s2 / CONSTANT_SCALE), 0, 10000).astype(np.int16)
            s1 = radar[radar_class[class_map]].transpose(2, 0, 1)
            s1 = (s1 + 1.5 * rng.standard_normal(s1.shape, dtype=np.float32)).astype(np.float32)
            nodata = _nodata_pixels(rng, size)
            s2[:, nodata] = IMAGE_NODATA
            mask = class_map.astype(np.uint8)
            mask[nodata] = MASK_NODATA
            geo = {
                "crs": CRS_EPSG,
                "transform": _transform((index % 16) * (size + 8), (index // 16) * (size + 8)),
            }
            write_geotiff(
                dirs["S2L2A"] / f"{stem}_S2L2A.tif", s2, nodata=IMAGE_NODATA, descriptions=S2L2A_BANDS, **geo
            )
            write_geotiff(dirs["S1GRD"] / f"{stem}_S1GRD.tif", s1, descriptions=S1GRD_BANDS, **geo)
            write_geotiff(root / "labels" / f"{stem}_mask.tif", mask, nodata=MASK_NODATA, **geo)
            if split == "train":
                sums["S2L2A"].append(s2[:, ~nodata].astype(np.float64))
                sums["S1GRD"].append(s1.reshape(2, -1).astype(np.float64))
            stems[split].append(stem)
            index += 1
    means = {m: [float(v) for v in np.concatenate(a, axis=1).mean(axis=1)] for m, a in sums.items()}
    stds = {m: [float(v) for v in np.concatenate(a, axis=1).std(axis=1)] for m, a in sums.items()}
    splits = {}
    for split, names in stems.items():
        splits[split] = root / "splits" / f"{split}.txt"
        splits[split].parent.mkdir(parents=True, exist_ok=True)
        splits[split].write_text("".join(f"{name}\n" for name in names))
    (root / "statistics.json").write_text(json.dumps({"means": means, "stds": stds}, indent=1))
    return MultimodalDemo(
        root=root,
        modalities=list(grep),
        data_roots=dirs,
        image_grep=grep,
        label_dir=root / "labels",
        label_grep="*_mask.tif",
        splits=splits,
        bands={"S2L2A": list(S2L2A_BANDS), "S1GRD": list(S1GRD_BANDS)},
        num_classes=num_classes,
        means=means,
        stds=stds,
        stems=stems,
    )


# ----------------------------------------------------------------------------- object detection

DETECTION_CLASS_NAMES = ("red_square", "cyan_square")  # COCO category ids 1 and 2 (0 is the background)
DETECTION_DATAMODULE = "terratorch.datamodules.GenericNonGeoObjectDetectionDataModule"
_DETECTION_BACKGROUND = 0.25  # reflectance of the background, every band
_DETECTION_BRIGHT = 0.85  # reflectance of an object in its bright bands
_DETECTION_NOISE = 0.04  # std of the per-pixel Gaussian noise


@dataclass
class DetectionDemo:
    """What :func:`make_detection_demo` wrote, plus ready-made datamodule arguments.

    Attributes:
        root: the dataset directory.
        image_dir: the GeoTIFFs (float32 reflectance, EPSG:32633, 30 m pixels, one place each).
        annotation_files: ``{"train": path, "val": path, "test": path}`` COCO files whose
            ``file_name`` entries are relative to ``image_dir``.
        ground_truth_file: JSON list of every object, in pixel and map coordinates (see
            :func:`make_detection_demo`).
        ground_truth_geojson: the same objects as GeoJSON polygons (map coordinates).
        band_names: bands of every image, in order.
        class_names: the classes, category id ``i + 1`` for ``class_names[i]``.
        num_classes: classes including the background (what detectors take).
        means, stds: per-band statistics of the train images.
        crs: the images' CRS (``"EPSG:32633"``).
        objects: the ground truth (the content of ``ground_truth_file``).
    """

    root: Path
    image_dir: Path
    annotation_files: dict[str, Path]
    ground_truth_file: Path
    ground_truth_geojson: Path
    band_names: list[str]
    class_names: list[str]
    num_classes: int
    means: list[float]
    stds: list[float]
    crs: str
    objects: list[dict[str, Any]] = field(default_factory=list)

    def datamodule_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """Constructor arguments of ``GenericNonGeoObjectDetectionDataModule`` (``overrides`` win)."""
        kwargs: dict[str, Any] = {
            "num_classes": self.num_classes,
            "means": list(self.means),
            "stds": list(self.stds),
            "dataset_bands": list(self.band_names),
            "output_bands": list(self.band_names),
            "class_names": ["background", *self.class_names],
            "img_grep": "*.tif",
        }
        for split in ("train", "val", "test"):
            kwargs[f"{split}_data_root"] = str(self.image_dir)
            kwargs[f"{split}_label_data_root"] = str(self.annotation_files[split])
        kwargs.update(overrides)
        return kwargs

    def make_datamodule(self, **overrides: Any) -> Any:
        """Build a ``GenericNonGeoObjectDetectionDataModule`` over this data (imports Lightning)."""
        from terratorch.datamodules.generic_nongeo_od_data_module import (
            GenericNonGeoObjectDetectionDataModule,
        )

        return GenericNonGeoObjectDetectionDataModule(**self.datamodule_kwargs(**overrides))


def make_detection_demo(
    root: str | Path,
    *,
    n_train: int = 16,
    n_val: int = 4,
    n_test: int = 4,
    size: int = 96,
    num_bands: int = 3,
    objects_per_image: tuple[int, int] = (2, 4),
    object_size: tuple[int, int] = (16, 24),
    seed: int = 0,
) -> DetectionDemo:
    """Write a two-class object-detection dataset of georeferenced GeoTIFFs with COCO annotations.

    Each image is noise around a grey background with ``objects_per_image`` (inclusive range)
    non-overlapping bright squares of ``object_size`` pixels (inclusive range). Class 1
    (``red_square``) is bright in band 0 only, class 2 (``cyan_square``) in every other band, so a
    small detector separates them from colour alone. Files under ``root``::

        images/det_0000.tif ...         float32 (num_bands, size, size), EPSG:32633, 30 m pixels;
                                        every image has its own place (its own transform)
        annotations/{train,val,test}.json
                                        COCO: bbox [x, y, w, h] pixels, category_id 1 or 2,
                                        square polygons as segmentation, file_name relative to images/
        ground_truth.json               {"crs", "objects": [{"split", "image", "image_id",
                                        "category_id", "class_name", "bbox_pixel" [x1, y1, x2, y2],
                                        "bbox_map" [minx, miny, maxx, maxy], "polygon_map"}]}
        ground_truth.geojson            the same objects as a GeoJSON FeatureCollection (map CRS)

    Args:
        root: output directory.
        n_train, n_val, n_test: images per split.
        size: image height and width in pixels.
        num_bands: bands per image (at least 2).
        objects_per_image: ``(min, max)`` squares per image.
        object_size: ``(min, max)`` side of a square, in pixels.
        seed: random seed; same arguments and seed, same bytes.

    Returns:
        A :class:`DetectionDemo` (``make_datamodule()`` gives a ready datamodule).

    Raises:
        ValueError: fewer than 2 bands, an empty train split, inverted ranges, or squares that
            cannot fit the image.
    """
    from terratorch.datasets.utils import write_geotiff

    low_n, high_n = objects_per_image
    low_s, high_s = object_size
    if num_bands < 2 or n_train < 1 or not 0 <= low_n <= high_n or not 1 <= low_s <= high_s:
        raise ValueError(
            f"make_detection_demo needs num_bands >= 2, n_train >= 1 and (min, max) ranges; got "
            f"num_bands={num_bands}, n_train={n_train}, objects_per_image={objects_per_image}, "
            f"object_size={object_size}"
        )
    if high_n * (high_s + 2) ** 2 > 0.7 * size * size:
        raise ValueError(
            f"{high_n} squares of {high_s} px do not fit a {size} px image with room to spare; "
            "use a larger size or fewer/smaller objects"
        )
    root = Path(root)
    rng = np.random.default_rng([seed, 4242])
    bands = band_names_for(num_bands)
    looks = np.full((2, num_bands), _DETECTION_BACKGROUND, dtype=np.float32)
    looks[0, 0] = _DETECTION_BRIGHT
    looks[1, 1:] = _DETECTION_BRIGHT
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(DETECTION_CLASS_NAMES)]
    objects: list[dict[str, Any]] = []
    train_pixels: list[np.ndarray] = []
    annotation_files: dict[str, Path] = {}
    index = annotation_id = 0
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        coco: dict[str, Any] = {"images": [], "annotations": [], "categories": categories}
        for _ in range(count):
            name = f"det_{index:04d}.tif"
            image = _DETECTION_BACKGROUND + _DETECTION_NOISE * rng.standard_normal(
                (num_bands, size, size), dtype=np.float32
            )
            transform = _transform((index % 16) * (size + 8), (index // 16) * (size + 8))
            coco["images"].append({"id": index, "file_name": name, "width": size, "height": size})
            for x1, y1, side in _place_squares(
                rng, size, int(rng.integers(low_n, high_n + 1)), low_s, high_s
            ):
                category = int(rng.integers(1, 3))
                image[:, y1 : y1 + side, x1 : x1 + side] += (
                    looks[category - 1, :, None, None] - _DETECTION_BACKGROUND
                )
                x2, y2 = x1 + side, y1 + side
                polygon = [x1, y1, x2, y1, x2, y2, x1, y2]
                coco["annotations"].append(
                    {
                        "id": annotation_id,
                        "image_id": index,
                        "category_id": category,
                        "bbox": [x1, y1, side, side],
                        "area": side * side,
                        "iscrowd": 0,
                        "segmentation": [polygon],
                    }
                )
                corners = [transform @ (x, y) for x, y in ((x1, y1), (x2, y1), (x2, y2), (x1, y2), (x1, y1))]
                objects.append(
                    {
                        "split": split,
                        "image": name,
                        "image_id": index,
                        "annotation_id": annotation_id,
                        "category_id": category,
                        "class_name": DETECTION_CLASS_NAMES[category - 1],
                        "bbox_pixel": [x1, y1, x2, y2],
                        "bbox_map": [corners[0][0], corners[2][1], corners[2][0], corners[0][1]],
                        "polygon_map": [list(c) for c in corners],
                    }
                )
                annotation_id += 1
            image = image.astype(np.float32)
            write_geotiff(
                root / "images" / name, image, crs=CRS_EPSG, transform=transform, descriptions=bands
            )
            if split == "train":
                train_pixels.append(image.reshape(num_bands, -1).astype(np.float64))
            index += 1
        annotation_files[split] = root / "annotations" / f"{split}.json"
        annotation_files[split].parent.mkdir(parents=True, exist_ok=True)
        annotation_files[split].write_text(json.dumps(coco, indent=1))
    pixels = np.concatenate(train_pixels, axis=1)
    crs = f"EPSG:{CRS_EPSG}"
    ground_truth = root / "ground_truth.json"
    ground_truth.write_text(json.dumps({"crs": crs, "objects": objects}, indent=1))
    geojson = root / "ground_truth.geojson"
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [o["polygon_map"]]},
            "properties": {k: o[k] for k in ("split", "image", "image_id", "category_id", "class_name")},
        }
        for o in objects
    ]
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{CRS_EPSG}"}},
                "features": features,
            },
            indent=1,
        )
    )
    return DetectionDemo(
        root=root,
        image_dir=root / "images",
        annotation_files=annotation_files,
        ground_truth_file=ground_truth,
        ground_truth_geojson=geojson,
        band_names=bands,
        class_names=list(DETECTION_CLASS_NAMES),
        num_classes=len(DETECTION_CLASS_NAMES) + 1,
        means=[float(v) for v in pixels.mean(axis=1)],
        stds=[float(v) for v in pixels.std(axis=1)],
        crs=crs,
        objects=objects,
    )


def _place_squares(
    rng: np.random.Generator, size: int, count: int, low: int, high: int
) -> list[tuple[int, int, int]]:
    """``count`` squares ``(x1, y1, side)`` inside the image, at least 2 px apart (rejection sampling)."""
    placed: list[tuple[int, int, int]] = []
    for _ in range(count * 200):
        if len(placed) == count:
            break
        side = int(rng.integers(low, high + 1))
        x1, y1 = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        if all(
            x1 >= px + ps + 2 or px >= x1 + side + 2 or y1 >= py + ps + 2 or py >= y1 + side + 2
            for px, py, ps in placed
        ):
            placed.append((x1, y1, side))
    return placed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="terratorch demo-data",
        description="Write small georeferenced multispectral GeoTIFF demo datasets (or one large scene).",
    )
    parser.add_argument("--task", choices=(*TASKS, "all"), default="segmentation", help="dataset kind")
    parser.add_argument(
        "--root", type=Path, help="output directory (with --task all: one sub-folder per task)"
    )
    parser.add_argument("--n-train", type=int, default=16, help="train chips (default 16)")
    parser.add_argument("--n-val", type=int, default=8, help="validation chips (default 8)")
    parser.add_argument("--n-test", type=int, default=8, help="test chips (default 8)")
    parser.add_argument("--size", type=int, default=64, help="chip size in pixels (default 64)")
    parser.add_argument("--num-bands", type=int, default=6, help="bands per image (default 6)")
    parser.add_argument("--num-classes", type=int, default=3, help="classes (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    parser.add_argument("--scene", type=Path, help="write one large scene GeoTIFF to this path instead")
    parser.add_argument("--height", type=int, default=4096, help="scene height (with --scene)")
    parser.add_argument("--width", type=int, default=4096, help="scene width (with --scene)")
    parser.add_argument("--scene-mask", type=Path, help="also write the scene's true class map here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``terratorch demo-data``: write a demo dataset (or scene) and print how to use it."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.scene is not None:
        path = make_demo_scene(
            args.scene,
            args.height,
            args.width,
            num_bands=args.num_bands,
            seed=args.seed,
            num_classes=args.num_classes,
            mask_path=args.scene_mask,
        )
        print(f"wrote scene {path} ({args.height}x{args.width}, {args.num_bands} bands)")
        return 0
    if args.root is None:
        parser.error("--root is required (or give --scene PATH)")
    tasks = TASKS if args.task == "all" else (args.task,)
    for task in tasks:
        root = args.root / task if args.task == "all" else args.root
        info = make_demo_dataset(
            root,
            task,
            n_train=args.n_train,
            n_val=args.n_val,
            n_test=args.n_test,
            size=args.size,
            num_bands=args.num_bands,
            num_classes=args.num_classes,
            seed=args.seed,
        )
        print(f"wrote {task} demo data to {info.root}")
        print(_config_snippet(info))
    return 0


def _config_snippet(info: DemoDataset) -> str:
    """A ``data:`` block for a config file that reads this dataset."""
    lines = ["data:", f"  class_path: {info.datamodule_class_path.rsplit('.', 1)[1]}", "  init_args:"]
    for key, value in info.datamodule_kwargs(batch_size=8, num_workers=0).items():
        lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
