"""Multimodal datasets: one file per modality per sample (e.g. S2L2A and S1GRD chips on one grid).

A sample is found by its id (the file name without the modality's ``image_grep`` suffix), looked up
in every modality's root, plus a label file in ``label_data_root``. ``__getitem__`` returns::

    {"image": {modality: tensor (C, H, W) or (C, T, H, W), ...},  # or one tensor with concat_bands
     "mask": (H, W) tensor (pixel-wise tasks) | "label": tensor (per-image tasks),
     "filename": {modality: path, ..., "mask": path}}

Images are read with the selected bands only, scaled by the modality's ``constant_scale`` and left
un-normalised (float32); :class:`~terratorch.datamodules.GenericMultiModalDataModule` normalises
each modality on the device. One albumentations pipeline transforms every image modality and the
mask with the same random parameters (see :mod:`terratorch.datasets.multimodal_transforms`).
Non-image modalities are per-sample values from a CSV/Parquet table (sample ids in its first
column) or ``.npy`` files; they are converted to tensors, never augmented.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.generic_base import GenericGeoTIFFDataset
from terratorch.datasets.multimodal_transforms import (
    MultimodalToTensor,
    MultimodalTransforms,
    compose_multimodal,
)
from terratorch.datasets.utils import BandSpec, Modalities, read_raster

__all__ = [
    "GenericMultimodalDataset",
    "GenericMultimodalPixelwiseRegressionDataset",
    "GenericMultimodalScalarDataset",
    "GenericMultimodalSegmentationDataset",
    "Modalities",
]

_TABLE_SUFFIXES = (".csv", ".parquet")


def load_table_data(path: str | Path) -> Any:
    """Read a CSV (first column is the index) or Parquet table of per-sample values.

    Raises:
        ValueError: another file type (names the file and the supported suffixes).
    """
    import pandas as pd

    text = str(path)
    if text.endswith(".parquet"):
        return pd.read_parquet(text)
    if text.endswith(".csv"):
        return pd.read_csv(text, index_col=0)
    raise ValueError(f"unsupported table {text!r}: give a .csv or .parquet file (or a directory of rasters)")


def _is_table(path: Any) -> bool:
    return isinstance(path, str | Path) and str(path).endswith(_TABLE_SUFFIXES) and os.path.isfile(path)


def _suffix(grep: str) -> str:
    return grep.strip("*")


def _read_split(path: str | Path) -> list[str]:
    """Sample ids listed in a split file: a ``.txt`` (one per line) or a CSV/Parquet table's index.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: it lists no sample.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"split: split file {str(path)!r} does not exist")
    if str(path).endswith(_TABLE_SUFFIXES):
        ids = [str(v) for v in load_table_data(path).index]
    else:
        ids = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"split: split file {str(path)!r} lists no sample ids (one file prefix per line)")
    return ids


class _ModalityReader(GenericGeoTIFFDataset):
    """Reads one modality's raster: band selection, ``constant_scale``, nodata (the base's logic)."""

    def __init__(self, *, temporal_channel_major: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.temporal_channel_major = temporal_channel_major

    def band_indexes(self, path: Path, count: int) -> list[int] | None:
        """As the base; with ``temporal_channel_major`` files, reorder the bands time-major."""
        indexes = super().band_indexes(path, count)
        if not (self.temporal_channel_major and self.expand_temporal_dimension) or indexes is None:
            return indexes
        steps = count // len(self.dataset_bands)
        return [pos * steps + step + 1 for step in range(steps) for pos in self.band_positions]

    def read(self, path: str) -> np.ndarray:
        """``(C, H, W)`` float32 (``(T*C, H, W)`` time-major for multi-temporal files)."""
        if str(path).endswith(".npy"):
            data = np.load(path).astype(np.float32)
            if self.band_positions is not None and data.ndim >= 3:
                data = data[self.band_positions]
            return data * np.float32(self.constant_scale) if self.constant_scale != 1 else data
        image, _ = self.load_image(Path(path))
        return image


class GenericMultimodalDataset(Dataset):
    """Samples made of one file per modality (and a label), matched by sample id.

    Args:
        data_root: ``{modality: directory}`` of each modality's files (or, for a non-image
            modality, a CSV/Parquet table indexed by sample id).
        label_data_root: directory of the label files (or a table of per-image labels); None for
            prediction (no labels).
        image_grep: glob per modality (``{"S2L2A": "*_S2L2A.tif"}``) or one for all; only a leading
            ``*`` is supported, the rest is the suffix removed to get the sample id.
        label_grep: glob of the label files (``"*_mask.tif"``).
        prefix: glob/prefix put before the id (``"part-*/"`` for data in sub-folders).
        split: file listing the sample ids to use (``.txt``, one per line, or a table's index).
        image_modalities: the raster modalities (default: every key of ``data_root``); the others
            are non-image modalities.
        rgb_indices: ``{modality: [r, g, b]}`` for plots (default: first image modality, 0-2).
        allow_missing_modalities: keep samples that lack some modalities (they are simply absent
            from ``image``).
        allow_substring_file_names: ids may match files by glob (``id + image_grep``); False
            requires the exact name ``id + suffix``.
        skip_file_checks: with exact names, do not check that the files exist (fast for huge splits).
        dataset_bands, output_bands: ``{modality: bands}`` stored in / returned from the files; a
            modality without entry returns all its bands.
        constant_scale: ``{modality: factor}`` applied after reading.
        transform: a list of albumentations transforms or a ``Compose`` shared by all image
            modalities, or ``{modality: transform}`` applied separately; None only converts to tensors.
        no_data_replace: value for image nodata/NaN pixels (None: nodata kept, NaN is an error).
        no_label_replace: value for label nodata pixels (default -1, the usual ``ignore_index``).
        expand_temporal_dimension: files hold ``T * len(dataset_bands)`` bands, time-major (or
            channel-major with ``temporal_channel_major``); images become ``(C, T, H, W)``. Applies to
            modalities with ``dataset_bands``.
        reduce_zero_label: subtract 1 from the labels (label nodata stays ``no_label_replace``).
        channel_position: position of the channel axis in ``.npy`` arrays (GeoTIFFs are channel-first).
        scalar_label: the label is one value (or vector) per image, returned under ``label``.
        data_with_sample_dim: images already hold a sample axis (``concat_bands`` joins on dim 1).
        concat_bands: concatenate the image modalities (in order) into one ``image`` tensor, for
            single-modality models.
        img_grep: alias of ``image_grep`` (the name of the single-modality datamodules).

    Raises:
        ValueError: inconsistent options, no samples found (shows roots, greps and candidates).
        FileNotFoundError: a modality root or split file does not exist.
    """

    def __init__(
        self,
        data_root: Mapping[str, str | Path],
        label_data_root: str | Path | None = None,
        image_grep: str | Mapping[str, str] | None = "*",
        label_grep: str | None = "*",
        prefix: str | None = "*",
        split: str | Path | None = None,
        image_modalities: Sequence[str] | None = None,
        rgb_indices: Mapping[str, list[int]] | None = None,
        allow_missing_modalities: bool = False,
        allow_substring_file_names: bool = True,
        skip_file_checks: bool = False,
        dataset_bands: Mapping[str, BandSpec] | None = None,
        output_bands: Mapping[str, BandSpec] | None = None,
        constant_scale: Mapping[str, float] | None = None,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: float | None = -1,
        expand_temporal_dimension: bool = False,
        temporal_channel_major: bool = False,
        reduce_zero_label: bool = False,
        channel_position: int = -3,
        scalar_label: bool = False,
        data_with_sample_dim: bool = False,
        concat_bands: bool = False,
        *args: Any,
        img_grep: str | Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        _warn_ignored(self, args, kwargs)
        if not isinstance(data_root, Mapping) or not data_root:
            raise ValueError(
                f"data_root must map each modality to its directory, e.g. {{S2L2A: s2, S1GRD: s1}}; "
                f"got {data_root!r}"
            )
        for reserved in ("mask", "image", "label", "filename"):
            if reserved in data_root:
                raise ValueError(f"a modality cannot be called {reserved!r} (a reserved sample key)")
        image_grep = img_grep if img_grep is not None else image_grep
        self.kwargs = kwargs
        modalities = list(data_root)
        self.image_modalities = list(image_modalities) if image_modalities else modalities
        unknown = [m for m in self.image_modalities if m not in data_root]
        if unknown:
            raise ValueError(
                f"image_modalities {unknown} have no entry in data_root (modalities: {modalities})"
            )
        self.non_image_modalities = [m for m in modalities if m not in self.image_modalities]
        self.modalities = self.image_modalities + self.non_image_modalities
        if concat_bands and self.non_image_modalities:
            raise ValueError(
                f"concat_bands joins image modalities only, but non-image modalities are given: "
                f"{self.non_image_modalities}"
            )
        if concat_bands and allow_missing_modalities:
            raise ValueError(
                "concat_bands cannot be used with allow_missing_modalities (band counts would vary)"
            )
        if expand_temporal_dimension and not dataset_bands:
            raise ValueError("expand_temporal_dimension needs dataset_bands (the bands of one time step)")
        self.split_file = split
        self.prefix = prefix if prefix is not None else "*"
        self.allow_missing_modalities = allow_missing_modalities
        self.allow_substring_file_names = allow_substring_file_names
        self.constant_scale = dict(constant_scale or {})
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.reduce_zero_label = reduce_zero_label
        self.expand_temporal_dimension = expand_temporal_dimension
        self.temporal_channel_major = temporal_channel_major
        self.channel_position = channel_position
        self.scalar_label = scalar_label
        self.data_with_sample_dim = data_with_sample_dim
        self.concat_bands = concat_bands
        greps = (
            dict(image_grep)
            if isinstance(image_grep, Mapping)
            else dict.fromkeys(modalities, image_grep or "*")
        )
        self.image_grep = {m: greps.get(m) or "*" for m in modalities}
        self.label_grep = label_grep or "*"
        roots = {m: data_root[m] for m in self.modalities}
        self._readers = self._build_readers(dataset_bands, output_bands)
        self.dataset_bands = {m: r.dataset_bands for m, r in self._readers.items() if r.dataset_bands} or None
        self.output_bands = {
            m: r.output_bands for m, r in self._readers.items() if output_bands and m in output_bands
        }
        self.filter_indices = {
            m: r.filter_indices for m, r in self._readers.items() if r.filter_indices is not None
        }
        self.samples = self._find_samples(roots, label_data_root, skip_file_checks)
        first = self.image_modalities[0]
        self.rgb_indices = dict(rgb_indices) if rgb_indices else {first: [0, 1, 2]}
        self.transform = self._build_transform(transform)

    # ------------------------------------------------------------------ construction

    def _build_readers(
        self, dataset_bands: Mapping[str, BandSpec] | None, output_bands: Mapping[str, BandSpec] | None
    ) -> dict[str, _ModalityReader]:
        dataset_bands, output_bands = dict(dataset_bands or {}), dict(output_bands or {})
        for key, table in (("dataset_bands", dataset_bands), ("output_bands", output_bands)):
            stray = [m for m in table if m not in self.modalities]
            if stray:
                raise ValueError(
                    f"{key} names modalities {stray} that are not in data_root ({self.modalities})"
                )
        readers = {}
        for m in self.image_modalities:
            if m in output_bands and m not in dataset_bands:
                raise ValueError(
                    f"output_bands[{m!r}] needs dataset_bands[{m!r}] (the bands stored in the {m} files)"
                )
            try:
                readers[m] = _ModalityReader(
                    dataset_bands=dataset_bands.get(m),
                    output_bands=output_bands.get(m),
                    constant_scale=self.constant_scale.get(m, 1.0),
                    no_data_replace=self.no_data_replace,
                    expand_temporal_dimension=self.expand_temporal_dimension and m in dataset_bands,
                    temporal_channel_major=self.temporal_channel_major,
                )
            except ValueError as error:
                raise ValueError(f"modality {m}: {error}") from error
        return readers

    def _build_transform(self, transform: Any) -> Any:
        if transform is None:
            return MultimodalToTensor(self.modalities)
        non_image = self.non_image_modalities + (["label"] if self.scalar_label else [])
        if isinstance(transform, Mapping):
            per_modality = {m: compose_multimodal(transform[m]) for m in self.modalities if m in transform}
            stray = sorted(set(transform) - set(self.modalities))
            if stray:
                raise ValueError(
                    f"transform names modalities {stray} that are not in data_root ({self.modalities})"
                )
            return MultimodalTransforms(per_modality, shared=False, non_image_modalities=non_image)
        composed = compose_multimodal(transform, self.image_modalities, non_image)
        if not callable(composed):
            raise ValueError(
                f"transform must be a list of albumentations transforms, a Compose or a dict per modality; "
                f"got {type(transform).__name__}"
            )
        return MultimodalTransforms(composed, non_image_modalities=non_image)

    def _candidate_ids(self, roots: Mapping[str, Any]) -> list[str]:
        if self.split_file is not None:
            ids = _read_split(self.split_file)
            if self.prefix != "*":
                ids = [v if os.path.isabs(v) else os.path.join(self.prefix, v.lstrip("/\\")) for v in ids]
            return ids
        file_roots = {m: r for m, r in roots.items() if not _is_table(r)}
        if not file_roots:
            raise ValueError("give a split file: every modality is a table, so there are no files to list")
        found: dict[str, list[str]] = {}
        for m, root in file_roots.items():
            pattern = os.path.join(str(root), self.prefix + self.image_grep[m])
            found[m] = sorted(glob.glob(pattern))
        order = [m for m in self.modalities if m in file_roots]
        if self.allow_missing_modalities:
            ids = sorted({self._file_id(f, m) for m in order for f in found[m]})
        else:
            ids = [self._file_id(f, order[0]) for f in found[order[0]]]
        if not ids:
            examples = {
                m: [os.path.basename(f) for f in sorted(os.listdir(r))[:3]] for m, r in file_roots.items()
            }
            raise ValueError(
                f"no files match the image_grep of {order[0]}: data_root={dict(roots)}, image_grep="
                f"{self.image_grep}, prefix={self.prefix!r}; files there: {examples}"
            )
        return ids

    def _file_id(self, path: str, modality: str) -> str:
        """Sample id of ``path``: its name without the grep suffix (parent folder kept for prefixes)."""
        grep = self.image_grep[modality]
        name = os.path.basename(path)
        match = re.match("^(.*?)" + re.escape(_suffix(grep)) + "$", name)
        stem = match.group(1) if match else name
        if "." not in grep and self.allow_substring_file_names:
            stem = os.path.splitext(stem)[0]
        if "/" in self.prefix:
            return f"{os.path.basename(os.path.dirname(path))}/{stem}"
        return stem

    def _locate(self, root: str, sample_id: str, grep: str, skip_checks: bool) -> str | None:
        exact = os.path.join(root, sample_id + _suffix(grep))
        if not self.allow_substring_file_names:
            return exact if skip_checks or os.path.exists(exact) else None
        if os.path.exists(exact):
            return exact
        matches = sorted(glob.glob(os.path.join(root, sample_id + grep)))
        if len(matches) > 1:
            warnings.warn(
                f"sample {sample_id!r}: several files match {grep!r} in {root}: {matches[:3]}; using "
                "the last",
                UserWarning,
                stacklevel=4,
            )
        return matches[-1] if matches else None

    def _find_samples(
        self, roots: Mapping[str, Any], label_root: Any, skip_checks: bool
    ) -> list[dict[str, Any]]:
        for m, root in roots.items():
            if not (_is_table(root) or os.path.isdir(root)):
                raise FileNotFoundError(f"data_root: the {m} directory {str(root)!r} does not exist")
        if label_root is not None and not (_is_table(label_root) or os.path.isdir(label_root)):
            raise FileNotFoundError(f"label_data_root: directory {str(label_root)!r} does not exist")
        ids = self._candidate_ids(roots)
        tables = {m: load_table_data(r) for m, r in roots.items() if _is_table(r)}
        label_table = (
            load_table_data(label_root) if label_root is not None and _is_table(label_root) else None
        )
        wanted = len(self.modalities) + int(label_root is not None)
        samples, failed = [], []
        self.sample_ids: list[str] = []
        for sample_id in ids:
            sample: dict[str, Any] = {}
            for m, root in roots.items():
                if m in tables:
                    if sample_id in tables[m].index:
                        sample[m] = tables[m].loc[sample_id].to_numpy().copy()
                    continue
                path = self._locate(str(root), sample_id, self.image_grep[m], skip_checks)
                if path is not None:
                    sample[m] = path
            if label_root is not None:
                if label_table is not None:
                    if sample_id in label_table.index:
                        sample["mask"] = label_table.loc[sample_id].to_numpy().copy()
                else:
                    path = self._locate(str(label_root), sample_id, self.label_grep, skip_checks)
                    if path is not None:
                        sample["mask"] = path
                if "mask" not in sample:
                    failed.append((sample_id, sample))
                    continue
            if len(sample) == wanted or (self.allow_missing_modalities and set(sample) - {"mask"}):
                samples.append(sample)
                self.sample_ids.append(sample_id)
            else:
                failed.append((sample_id, sample))
        if not samples:
            shown = "; ".join(f"{i}: found {sorted(s)}" for i, s in failed[:5])
            raise ValueError(
                f"no complete multimodal samples: every candidate lacks a modality or its label. "
                f"data_root={dict(roots)}, label_data_root={label_root}, image_grep={self.image_grep}, "
                f"label_grep={self.label_grep!r}, "
                f"allow_substring_file_names={self.allow_substring_file_names}, "
                f"allow_missing_modalities={self.allow_missing_modalities}. Candidates: {shown}"
            )
        return samples

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self.samples)

    def load_modality(self, modality: str, source: Any) -> np.ndarray:
        """Load one modality: rasters as channels-last ``(H, W, C)`` float32, other values as arrays."""
        if modality in self._readers:
            data = self._readers[modality].read(source)
            if data.ndim >= 3:
                position = self.channel_position if str(source).endswith(".npy") else -3
                data = np.moveaxis(data, position, -1)
            return data
        if isinstance(source, np.ndarray):
            data = source
        elif str(source).endswith(".npy"):
            data = np.load(source)
        else:
            data = read_raster(source).data
        if data.dtype == np.float64:
            data = data.astype(np.float32)
        scale = self.constant_scale.get(modality)
        return data * np.float32(scale) if scale is not None else data

    def load_label(self, source: Any) -> np.ndarray:
        """The label: an ``(H, W)`` raster (nodata -> ``no_label_replace``) or the per-image values."""
        fill = self.no_label_replace if self.no_label_replace is not None else -1
        if isinstance(source, np.ndarray):
            label = source.astype(np.float32) if source.dtype == np.float64 else source
            return label - 1 if self.reduce_zero_label else label
        if str(source).endswith(".npy"):
            label = np.load(source).astype(np.float32)
            invalid = np.isnan(label)
        else:
            read = read_raster(source)
            label = read.data.astype(np.float32)
            invalid = read.nodata if read.nodata is not None else np.zeros(label.shape, dtype=bool)
        if not self.scalar_label and label.ndim == 3:
            label, invalid = label[0], invalid[0]
        if self.reduce_zero_label:
            label = label - 1
        label[invalid] = fill
        return label

    def check_grids(self, index: int, arrays: Mapping[str, np.ndarray]) -> None:
        """Every image modality and the mask of one sample must share ``(H, W)``.

        Raises:
            ValueError: names the sample's files, the modalities and their sizes.
        """
        sizes = {}
        for key, value in arrays.items():
            if key in self.image_modalities and value.ndim >= 3:
                sizes[key] = tuple(value.shape[-3:-1])  # channels last
            elif key == "mask" and not self.scalar_label:
                sizes[key] = tuple(value.shape[-2:])
        if len(set(sizes.values())) > 1:
            files = {k: v for k, v in self.samples[index].items() if isinstance(v, str)}
            raise ValueError(
                f"sample {self.sample_ids[index]!r}: modalities have different sizes (H, W) {sizes}; files "
                f"{files}. Every modality of a sample (and its label) must be on the same grid: resample "
                "them to one grid, or crop them to the same size"
            )

    def __getitem__(self, index: int | tuple[int, Sequence[str]]) -> dict[str, Any]:
        """Load sample ``index``; ``(index, modalities)`` loads only those modalities (batch sampler)."""
        sample = self.samples[index] if not isinstance(index, tuple) else None
        if sample is None:
            index, chosen = index
            keep = {*chosen, "mask"}
            sample = {k: v for k, v in self.samples[index].items() if k in keep}
        arrays: dict[str, Any] = {}
        for key, source in sample.items():
            arrays[key] = self.load_label(source) if key == "mask" else self.load_modality(key, source)
        self.check_grids(index, arrays)
        if "mask" in arrays and self.scalar_label:
            arrays["label"] = arrays.pop("mask")
        output = self.transform(arrays) if self.transform is not None else arrays
        output = self._finish_tensors(output)
        if self.expand_temporal_dimension:
            for m, reader in self._readers.items():
                if m in output and reader.expand_temporal_dimension:
                    output[m] = _unflatten_time(
                        output[m], len(reader.output_bands), self.data_with_sample_dim
                    )
        if self.concat_bands:
            dim = 1 if self.data_with_sample_dim else 0
            output["image"] = torch.cat(
                [output.pop(m) for m in self.image_modalities if m in output], dim=dim
            )
        else:
            output["image"] = {m: output.pop(m) for m in self.modalities if m in output}
        output["filename"] = {k: v for k, v in self.samples[index].items() if isinstance(v, str)}
        return self.finish_sample(output)

    def _finish_tensors(self, output: dict[str, Any]) -> dict[str, Any]:
        """Arrays a transform left behind become tensors (channels first for rasters); images float32."""
        for key, value in list(output.items()):
            if isinstance(value, np.ndarray):
                if key in self.image_modalities and value.ndim >= 3:
                    value = np.moveaxis(value, -1, 0) if value.ndim <= 4 else np.moveaxis(value, -1, 1)
                value = torch.from_numpy(np.ascontiguousarray(value))
            if (
                key in self.image_modalities
                and isinstance(value, torch.Tensor)
                and not value.is_floating_point()
            ):
                value = value.float()
            output[key] = value
        return output

    def finish_sample(self, output: dict[str, Any]) -> dict[str, Any]:
        """Final dtypes of the targets; subclasses override (the base leaves them as read)."""
        return output

    def plot(self, sample: Mapping[str, Any], suptitle: str | None = None) -> Any:
        """A figure of a sample: each ``rgb_indices`` modality, then the mask and the prediction.

        Args:
            sample: a sample of this dataset (``image`` dict or modality keys), optionally with
                ``prediction``.
            suptitle: figure title (default: the first file's stem).

        Returns:
            A ``matplotlib.figure.Figure``.

        Raises:
            ValueError: none of the ``rgb_indices`` modalities is in the sample.
        """
        from matplotlib.figure import Figure

        images = sample.get("image") if isinstance(sample.get("image"), Mapping) else sample
        panels = []
        for modality, indices in self.rgb_indices.items():
            value = images.get(modality) if isinstance(images, Mapping) else None
            if value is None:
                continue
            array = np.asarray(value.numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float32)
            if array.ndim == 4:  # (C, T, H, W): the first time step
                array = array[:, 0]
            panels.append((modality, _stretch(np.stack([array[i] for i in indices], axis=-1)), None))
        if not panels:
            raise ValueError(
                f"no modality of rgb_indices {list(self.rgb_indices)} in the sample (keys {list(images)})"
            )
        classes = getattr(self, "num_classes", None)
        for key, title in (("mask", "Ground truth"), ("prediction", "Prediction")):
            value = sample.get(key)
            if isinstance(value, torch.Tensor) and value.dim() >= 2:
                panels.append((title, value.detach().cpu().numpy(), classes))
        figure = Figure(figsize=(4 * len(panels), 4))
        for axis, (title, data, n) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
            if data.ndim == 2:
                axis.imshow(data, cmap="tab20" if n else "viridis", vmin=0, vmax=max((n or 1) - 1, 1))
            else:
                axis.imshow(data.squeeze(-1) if data.shape[-1] == 1 else data, cmap="gray")
            axis.set_title(title)
            axis.axis("off")
        names = sample.get("filename")
        if suptitle is None and isinstance(names, Mapping) and names:
            suptitle = Path(str(next(iter(names.values())))).stem
        if suptitle:
            figure.suptitle(suptitle)
        return figure


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """2-98 percentile stretch per band into ``[0, 1]`` (raw or normalised values look alike)."""
    low = np.nanpercentile(rgb, 2, axis=(0, 1))
    high = np.nanpercentile(rgb, 98, axis=(0, 1))
    return np.clip(np.nan_to_num((rgb - low) / np.maximum(high - low, 1e-6)), 0.0, 1.0)


def _warn_ignored(dataset: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Warn about extra arguments (the reference's signature accepts and ignores them)."""
    if args or kwargs:
        extra = [repr(a) for a in args] + sorted(kwargs)
        warnings.warn(
            f"{type(dataset).__name__}: ignoring extra arguments {extra}", UserWarning, stacklevel=3
        )


def _unflatten_time(image: torch.Tensor, channels: int, with_sample_dim: bool) -> torch.Tensor:
    """``(T*C, H, W)`` time-major -> ``(C, T, H, W)`` (with a leading sample axis if present)."""
    lead = image.shape[:1] if with_sample_dim else ()
    flat = image.shape[len(lead)]
    steps = flat // channels
    out = image.reshape(*lead, steps, channels, *image.shape[-2:])
    return out.transpose(len(lead), len(lead) + 1).contiguous()


class GenericMultimodalSegmentationDataset(GenericMultimodalDataset):
    """Multimodal semantic segmentation: ``mask`` is ``(H, W)`` int64 class ids.

    Args:
        num_classes: number of classes.
        class_names: names of the classes (plots).
        Other arguments: see :class:`GenericMultimodalDataset` (``allow_substring_file_names``
            defaults to False here, as in the reference).
    """

    def __init__(
        self,
        data_root: Mapping[str, str | Path],
        num_classes: int,
        label_data_root: str | Path | None = None,
        image_grep: str | Mapping[str, str] | None = "*",
        label_grep: str | None = "*",
        split: str | Path | None = None,
        image_modalities: Sequence[str] | None = None,
        rgb_indices: Mapping[str, list[int]] | None = None,
        allow_missing_modalities: bool = False,
        allow_substring_file_names: bool = False,
        skip_file_checks: bool = False,
        dataset_bands: Mapping[str, BandSpec] | None = None,
        output_bands: Mapping[str, BandSpec] | None = None,
        class_names: list[str] | None = None,
        constant_scale: Mapping[str, float] | None = None,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: int | None = -1,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        channel_position: int = -3,
        concat_bands: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        _warn_ignored(self, args, {})
        super().__init__(
            data_root,
            label_data_root=label_data_root,
            image_grep=image_grep,
            label_grep=label_grep,
            split=split,
            image_modalities=image_modalities,
            rgb_indices=rgb_indices,
            allow_missing_modalities=allow_missing_modalities,
            allow_substring_file_names=allow_substring_file_names,
            skip_file_checks=skip_file_checks,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            no_label_replace=no_label_replace,
            expand_temporal_dimension=expand_temporal_dimension,
            reduce_zero_label=reduce_zero_label,
            channel_position=channel_position,
            concat_bands=concat_bands,
            **kwargs,
        )
        self.num_classes = num_classes
        self.class_names = class_names

    def finish_sample(self, output: dict[str, Any]) -> dict[str, Any]:
        """Masks are int64 class ids."""
        if isinstance(output.get("mask"), torch.Tensor):
            output["mask"] = output["mask"].long()
        return output


class GenericMultimodalPixelwiseRegressionDataset(GenericMultimodalDataset):
    """Multimodal pixel-wise regression: ``mask`` is ``(H, W)`` float32 targets.

    Label nodata pixels become ``no_label_replace`` (default None here: -1 is written; set the
    task's ``ignore_index`` to the same value). Other arguments: see :class:`GenericMultimodalDataset`.
    """

    def __init__(
        self,
        data_root: Mapping[str, str | Path],
        label_data_root: str | Path | None = None,
        image_grep: str | Mapping[str, str] | None = "*",
        label_grep: str | None = "*",
        split: str | Path | None = None,
        image_modalities: Sequence[str] | None = None,
        rgb_indices: Mapping[str, list[int]] | None = None,
        allow_missing_modalities: bool = False,
        allow_substring_file_names: bool = False,
        skip_file_checks: bool = False,
        dataset_bands: Mapping[str, BandSpec] | None = None,
        output_bands: Mapping[str, BandSpec] | None = None,
        constant_scale: Mapping[str, float] | None = None,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: float | None = None,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        channel_position: int = -3,
        concat_bands: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        _warn_ignored(self, args, {})
        super().__init__(
            data_root,
            label_data_root=label_data_root,
            image_grep=image_grep,
            label_grep=label_grep,
            split=split,
            image_modalities=image_modalities,
            rgb_indices=rgb_indices,
            allow_missing_modalities=allow_missing_modalities,
            allow_substring_file_names=allow_substring_file_names,
            skip_file_checks=skip_file_checks,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            no_label_replace=no_label_replace,
            expand_temporal_dimension=expand_temporal_dimension,
            reduce_zero_label=reduce_zero_label,
            channel_position=channel_position,
            concat_bands=concat_bands,
            **kwargs,
        )

    def finish_sample(self, output: dict[str, Any]) -> dict[str, Any]:
        """Targets are float32."""
        if isinstance(output.get("mask"), torch.Tensor):
            output["mask"] = output["mask"].float()
        return output


class GenericMultimodalScalarDataset(GenericMultimodalDataset):
    """Multimodal per-image targets (classification, scalar regression): returned under ``label``.

    Labels usually come from a CSV/Parquet table (``label_data_root``) indexed by sample id.

    Args:
        num_classes: number of classes (classification).
        class_names: names of the classes.
        Other arguments: see :class:`GenericMultimodalDataset`.
    """

    def __init__(
        self,
        data_root: Mapping[str, str | Path],
        num_classes: int | None = None,
        label_data_root: str | Path | None = None,
        image_grep: str | Mapping[str, str] | None = "*",
        label_grep: str | None = "*",
        split: str | Path | None = None,
        image_modalities: Sequence[str] | None = None,
        rgb_indices: Mapping[str, list[int]] | None = None,
        allow_missing_modalities: bool = False,
        allow_substring_file_names: bool = False,
        skip_file_checks: bool = False,
        dataset_bands: Mapping[str, BandSpec] | None = None,
        output_bands: Mapping[str, BandSpec] | None = None,
        class_names: list[str] | None = None,
        constant_scale: Mapping[str, float] | None = None,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: int | None = None,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        channel_position: int = -3,
        concat_bands: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        _warn_ignored(self, args, {})
        super().__init__(
            data_root,
            label_data_root=label_data_root,
            image_grep=image_grep,
            label_grep=label_grep,
            split=split,
            image_modalities=image_modalities,
            rgb_indices=rgb_indices,
            allow_missing_modalities=allow_missing_modalities,
            allow_substring_file_names=allow_substring_file_names,
            skip_file_checks=skip_file_checks,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            no_label_replace=no_label_replace,
            expand_temporal_dimension=expand_temporal_dimension,
            reduce_zero_label=reduce_zero_label,
            channel_position=channel_position,
            scalar_label=True,
            concat_bands=concat_bands,
            **kwargs,
        )
        self.num_classes = num_classes
        self.class_names = class_names

    def finish_sample(self, output: dict[str, Any]) -> dict[str, Any]:
        """A single label value becomes a 0-d tensor (class ids int64), so batches are ``(B,)``."""
        label = output.get("label")
        if isinstance(label, torch.Tensor) and label.numel() == 1:
            label = label.reshape(())
            output["label"] = label.long() if self.num_classes and not label.is_floating_point() else label
        return output
