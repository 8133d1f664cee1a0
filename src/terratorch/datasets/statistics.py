"""Per-band mean/std and a label histogram of a training split, computed in one streaming pass.

Each image is read once (no augmentation), reduced to per-band (count, mean, M2) and merged into
running totals with Chan et al.'s parallel update, so memory stays at one image regardless of the
dataset size and the result is numerically stable in float64. Nodata pixels are excluded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np


class BandAccumulator:
    """Streaming per-band mean and variance (float64), merged image by image."""

    def __init__(self) -> None:
        self.count: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, image: np.ndarray, nodata: np.ndarray | None = None) -> None:
        """Merge one ``(C, H, W)`` image; pixels where ``nodata`` is True are skipped."""
        values = image.reshape(image.shape[0], -1).astype(np.float64)
        valid = ~nodata.reshape(values.shape) if nodata is not None else np.ones(values.shape, dtype=bool)
        count = valid.sum(axis=1).astype(np.float64)
        total = np.where(valid, values, 0.0).sum(axis=1)
        mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        m2 = np.where(valid, (values - mean[:, None]) ** 2, 0.0).sum(axis=1)
        if self.count is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        if count.shape != self.count.shape:
            raise ValueError(f"image has {count.shape[0]} bands but earlier images had {self.count.shape[0]}")
        merged = self.count + count
        delta = mean - self.mean
        ratio = np.divide(count, merged, out=np.zeros_like(merged), where=merged > 0)
        self.mean = self.mean + delta * ratio
        self.m2 = self.m2 + m2 + delta**2 * self.count * ratio
        self.count = merged

    def result(self) -> tuple[list[float], list[float]]:
        """(means, population stds) per band."""
        if self.count is None:
            raise ValueError("no images were accumulated")
        var = np.divide(self.m2, self.count, out=np.zeros_like(self.m2), where=self.count > 0)
        return [float(v) for v in self.mean], [float(math.sqrt(v)) for v in var]


def _train_dataset(source: Any) -> Any:
    """The dataset to summarise: ``source`` itself, or a datamodule's training dataset."""
    if hasattr(source, "setup") and hasattr(source, "train_dataloader"):
        if getattr(source, "train_dataset", None) is None:
            source.setup("fit")
        dataset = getattr(source, "train_dataset", None)
        if dataset is None:
            raise ValueError(f"{type(source).__name__} has no train_dataset after setup('fit')")
        return dataset
    return source


def compute_statistics(datamodule_or_dataset: Any, *, max_samples: int | None = None) -> dict[str, Any]:
    """Compute per-band mean/std of the training images and a histogram of their labels.

    Images are read without augmentation, after ``constant_scale`` (the units ``means``/``stds``
    are given in); nodata pixels are excluded.

    Args:
        datamodule_or_dataset: a generic GeoTIFF datamodule (its train split is used) or dataset.
        max_samples: summarise only the first ``max_samples`` images (None: all).

    Returns:
        ``{"means": [...], "stds": [...], "bands": output bands or None, "num_samples": n,
        "label_histogram": {...}}``. The histogram maps class index -> count (pixels for
        segmentation, images for classification, positive images for multi-label); for
        regression it holds ``bin_edges`` and ``counts`` (20 bins) plus ``min``/``max``/``mean``/``std``.

    Raises:
        TypeError: the dataset is not one of the generic GeoTIFF datasets.
    """
    dataset = _train_dataset(datamodule_or_dataset)
    if not hasattr(dataset, "load_image"):
        raise TypeError(
            f"compute_statistics needs a generic GeoTIFF dataset or datamodule, got {type(dataset).__name__}"
        )
    total = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    bands = BandAccumulator()
    labels = _LabelSummary(dataset)
    for index in range(total):
        image, nodata = dataset.load_image(_image_path(dataset, index), with_nodata=True)
        if dataset.expand_temporal_dimension:  # (T * C, H, W): statistics per band over all steps
            image, nodata = (
                _fold_time(image, len(dataset.output_bands)),
                _fold_time(nodata, len(dataset.output_bands)),
            )
        bands.add(image, nodata)
        labels.add(index)
    means, stds = bands.result()
    return {
        "means": means,
        "stds": stds,
        "bands": list(dataset.output_bands) if dataset.output_bands is not None else None,
        "num_samples": total,
        "label_histogram": labels.result(),
    }


def _fold_time(array: np.ndarray | None, channels: int) -> np.ndarray | None:
    """``(T * C, H, W)`` time-major bands -> ``(C, T * H * W)``."""
    if array is None:
        return None
    steps = array.shape[0] // channels
    return array.reshape(steps, channels, -1).transpose(1, 0, 2).reshape(channels, -1)


def _image_path(dataset: Any, index: int) -> Path:
    samples = getattr(dataset, "samples", None)
    return samples[index][0] if samples is not None else dataset.files[index]


class _LabelSummary:
    """Accumulates the label histogram of a dataset (class counts or regression values)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.counts: np.ndarray = np.zeros(0, dtype=np.int64)
        self.values: list[np.ndarray] = []
        self.kind = _label_kind(dataset)

    def add(self, index: int) -> None:
        if self.kind == "segmentation":
            mask = self.dataset.load_mask(index)
            self._count(mask[mask >= 0])
        elif self.kind == "classification":
            self._count(np.asarray([self.dataset.targets[index]]))
        elif self.kind == "multilabel":
            hot = np.asarray(self.dataset.targets[index]) > 0.5
            self._grow(hot.size)
            self.counts[: hot.size] += hot
        elif self.kind == "pixel_regression":
            mask = self.dataset.load_mask(index)
            ignore = self.dataset.no_label_replace
            keep = np.isfinite(mask) & (mask != ignore if ignore is not None else True)
            self.values.append(mask[keep].astype(np.float32))
        elif self.kind == "scalar_regression":
            self.values.append(np.asarray([self.dataset.targets[index]], dtype=np.float32))

    def _grow(self, size: int) -> None:
        if size > self.counts.size:
            self.counts = np.pad(self.counts, (0, size - self.counts.size))

    def _count(self, values: np.ndarray) -> None:
        found = np.bincount(values.astype(np.int64).ravel())
        self._grow(found.size)
        self.counts[: found.size] += found

    def result(self) -> dict[str, Any]:
        if self.kind in ("pixel_regression", "scalar_regression"):
            if not self.values:
                return {}
            values = np.concatenate(self.values)
            counts, edges = np.histogram(values, bins=20)
            return {
                "bin_edges": [float(e) for e in edges],
                "counts": [int(c) for c in counts],
                "min": float(values.min()),
                "max": float(values.max()),
                "mean": float(values.mean()),
                "std": float(values.std()),
            }
        if self.kind is None:
            return {}
        return {index: int(count) for index, count in enumerate(self.counts)}


def _label_kind(dataset: Any) -> str | None:
    from terratorch.datasets.generic_pixel_wise_dataset import (
        GenericNonGeoPixelwiseRegressionDataset,
        GenericNonGeoSegmentationDataset,
    )
    from terratorch.datasets.generic_scalar_label_dataset import (
        GenericNonGeoClassificationDataset,
        GenericNonGeoMultiLabelClassificationDataset,
        GenericNonGeoScalarRegressionDataset,
    )

    if isinstance(dataset, GenericNonGeoSegmentationDataset):
        return "segmentation" if dataset.has_labels else None
    if isinstance(dataset, GenericNonGeoPixelwiseRegressionDataset):
        return "pixel_regression" if dataset.has_labels else None
    if isinstance(dataset, GenericNonGeoClassificationDataset):
        return "classification"
    if isinstance(dataset, GenericNonGeoMultiLabelClassificationDataset):
        return "multilabel"
    if isinstance(dataset, GenericNonGeoScalarRegressionDataset):
        return "scalar_regression"
    return None


def format_statistics(stats: dict[str, Any]) -> str:
    """YAML text with ``means``/``stds`` ready to paste into a datamodule config."""
    import yaml

    return yaml.safe_dump(stats, sort_keys=False)
