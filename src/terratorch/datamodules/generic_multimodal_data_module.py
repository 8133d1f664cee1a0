"""Datamodule for multimodal chips: one folder per modality, one label folder, optional split files.

Config example (LightningCLI)::

    data:
      class_path: terratorch.datamodules.GenericMultiModalDataModule
      init_args:
        task: segmentation
        batch_size: 8
        modalities: [S2L2A, S1GRD]
        train_data_root: {S2L2A: data/train/S2L2A, S1GRD: data/train/S1GRD}
        val_data_root: {S2L2A: data/val/S2L2A, S1GRD: data/val/S1GRD}
        train_label_data_root: data/train/labels
        val_label_data_root: data/val/labels
        image_grep: {S2L2A: "*_S2L2A.tif", S1GRD: "*_S1GRD.tif"}
        label_grep: "*_mask.tif"
        means: {S2L2A: [...12 values], S1GRD: [-12.5, -20.1]}
        stds: {S2L2A: [...], S1GRD: [...]}
        num_classes: 3
        train_transform:
          - class_path: albumentations.D4
          - class_path: albumentations.pytorch.ToTensorV2

Batches: ``image`` is ``{modality: (B, C, H, W)}`` (one tensor with ``concat_bands``), ``mask``
``(B, H, W)`` (or ``label`` ``(B,)``), ``filename`` ``{modality: [paths]}``. Datasets return
un-normalised values; each modality is standardised with its own ``means``/``stds`` on the device
(``on_after_batch_transfer``), once.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import (
    BatchSampler,
    DataLoader,
    Dataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    default_collate,
)

from terratorch.datamodules.normalize import align_band_statistics
from terratorch.datasets.generic_multimodal_dataset import (
    GenericMultimodalDataset,
    GenericMultimodalPixelwiseRegressionDataset,
    GenericMultimodalScalarDataset,
    GenericMultimodalSegmentationDataset,
)
from terratorch.datasets.multimodal_transforms import compose_multimodal
from terratorch.datasets.utils import expand_bands

__all__ = [
    "GenericMultiModalDataModule",
    "MultiModalBatchSampler",
    "MultimodalNormalize",
    "collate_chunk_dicts",
    "collate_samples",
    "wrap_in_compose_is_list",
]

_TASK_DATASETS: dict[str | None, type] = {
    "segmentation": GenericMultimodalSegmentationDataset,
    "regression": GenericMultimodalPixelwiseRegressionDataset,
    "classification": GenericMultimodalScalarDataset,
    "multilabel_classification": GenericMultimodalScalarDataset,
    "scalar_regression": GenericMultimodalScalarDataset,
    "scalar": GenericMultimodalScalarDataset,
    None: GenericMultimodalDataset,
}
_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


# ----------------------------------------------------------------------------- collation


def _check_stackable(samples: Sequence[Mapping[str, Any]], path: str = "") -> None:
    """Raise a clear error when tensors under one key (or modality) differ in shape across samples."""
    for key, value in samples[0].items():
        values = [s.get(key) for s in samples]
        if isinstance(value, Mapping):
            if all(isinstance(v, Mapping) for v in values):
                _check_stackable(values, f"{path}{key}.")
            continue
        if isinstance(value, torch.Tensor):
            shapes = [tuple(v.shape) if isinstance(v, torch.Tensor) else None for v in values]
            if len(set(shapes)) > 1:
                names = [_sample_name(s) for s in samples]
                detail = ", ".join(f"{n}: {s}" for n, s in list(zip(names, shapes))[:6])
                raise ValueError(
                    f"cannot batch {path}{key} tensors of different shapes ({detail}); use batch_size: 1, or "
                    "add a crop or resize transform (e.g. albumentations.RandomCrop) for one size"
                )


def _sample_name(sample: Mapping[str, Any]) -> str:
    names = sample.get("filename")
    if isinstance(names, Mapping) and names:
        names = next(iter(names.values()))
    return Path(str(names)).name if names is not None else "?"


def collate_samples(
    batch_list: Sequence[Mapping[str, Any]], check_stackability: bool = True
) -> dict[str, Any]:
    """Batch multimodal samples: tensors are stacked per key and per modality, strings become lists.

    Values ``default_collate`` cannot batch (e.g. ``np.datetime64``) are stacked with NumPy or kept
    as a list.

    Raises:
        ValueError: tensors of one key differ in shape across samples (names the files).
    """
    if check_stackability:
        _check_stackable(batch_list)
    batch: dict[str, Any] = {}
    for key, value in batch_list[0].items():
        values = [sample[key] for sample in batch_list]
        if isinstance(value, Mapping):
            batch[key] = collate_samples(values, check_stackability=False)
            continue
        try:
            batch[key] = default_collate(values)
        except TypeError:
            batch[key] = np.stack(values) if isinstance(value, np.ndarray) else values
    return batch


def collate_chunk_dicts(batch_list: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> dict[str, Any]:
    """Batch samples that already hold a sample axis by concatenating along it (``data_with_sample_dim``)."""
    if isinstance(batch_list, Mapping):
        return dict(batch_list)
    batch: dict[str, Any] = {}
    for key, value in batch_list[0].items():
        values = [chunk[key] for chunk in batch_list]
        if isinstance(value, torch.Tensor):
            batch[key] = torch.cat(values)
        elif isinstance(value, np.ndarray):
            batch[key] = np.concatenate(values)
        elif isinstance(value, Mapping):
            batch[key] = collate_chunk_dicts(values)
        else:
            batch[key] = values
    return batch


def wrap_in_compose_is_list(
    transform_list: Any,
    image_modalities: Sequence[str] | None = None,
    non_image_modalities: Sequence[str] | None = None,
) -> Any:
    """Compose a transform list with every image modality as an extra ``image`` target (shared draws).

    Raises:
        ValueError: an item is not an albumentations transform.
    """
    return compose_multimodal(transform_list, image_modalities, non_image_modalities)


# ----------------------------------------------------------------------------- normalisation


class MultimodalNormalize:
    """Standardise each modality of a batch with its own statistics: ``(x - mean) / std`` per band.

    Works on ``batch[modality]`` or ``batch["image"][modality]`` of shape ``(B, C, H, W)``,
    ``(B, C, T, H, W)``, an unbatched ``(C, H, W)``, per-sample values ``(B, N)``, or single-band
    values; modalities without statistics are left as they are.

    Args:
        means, stds: ``{modality: [one value per band]}``.
    """

    def __init__(self, means: Mapping[str, Sequence[float]], stds: Mapping[str, Sequence[float]]) -> None:
        missing = sorted(set(means) ^ set(stds))
        if missing:
            raise ValueError(f"means and stds must name the same modalities; only one names {missing}")
        for m in means:
            if len(means[m]) != len(stds[m]):
                raise ValueError(
                    f"means[{m!r}] has {len(means[m])} values but stds[{m!r}] has {len(stds[m])}"
                )
            zero = [i for i, s in enumerate(stds[m]) if s <= 0]
            if zero:
                raise ValueError(f"stds[{m!r}] must be > 0; band position(s) {zero} are not")
        self.means = {m: list(v) for m, v in means.items()}
        self.stds = {m: list(v) for m, v in stds.items()}

    def normalize_tensor(self, modality: str, image: torch.Tensor, denormalize: bool = False) -> torch.Tensor:
        """Standardise one modality's tensor (see the class docstring for the shapes).

        Raises:
            ValueError: the band count differs from the statistics (names the modality and shapes).
        """
        means, stds = self.means[modality], self.stds[modality]
        if image.ndim in (4, 5):
            axis = 1
        elif len(means) == 1:
            axis = None
        elif image.ndim == 3:
            axis = 0
        elif image.ndim in (1, 2):  # per-sample values (B, N) or (N,): one statistic per value
            axis = image.ndim - 1
        else:
            raise ValueError(
                f"{modality}: expected (B, C, H, W), (B, C, T, H, W) or (C, H, W), got {tuple(image.shape)}"
            )
        dtype = image.dtype if image.is_floating_point() else torch.float32
        mean = torch.tensor(means, dtype=dtype, device=image.device)
        std = torch.tensor(stds, dtype=dtype, device=image.device)
        if axis is not None:
            if image.shape[axis] != len(means):
                raise ValueError(
                    f"{modality} has {image.shape[axis]} bands (shape {tuple(image.shape)}) but "
                    f"means/stds have {len(means)} values; give one per output band of {modality}"
                )
            shape = [1] * image.ndim
            shape[axis] = len(means)
            mean, std = mean.view(shape), std.view(shape)
        image = image.to(dtype)
        return image * std + mean if denormalize else (image - mean) / std

    def __call__(self, batch: dict[str, Any], denormalize: bool = False) -> dict[str, Any]:
        """Normalise (or undo it with ``denormalize``) every modality present; returns the batch."""
        images = batch.get("image")
        for m in self.means:
            if m in batch and isinstance(batch[m], torch.Tensor):
                batch[m] = self.normalize_tensor(m, batch[m], denormalize)
            elif isinstance(images, dict) and isinstance(images.get(m), torch.Tensor):
                images[m] = self.normalize_tensor(m, images[m], denormalize)
        return batch


class _ConcatNormalize:
    """Normalise the ``image`` tensor of ``concat_bands`` batches (statistics joined in modality order)."""

    def __init__(self, means: Sequence[float], stds: Sequence[float], temporal: bool) -> None:
        from terratorch.datamodules.normalize import Normalize

        self.means, self.stds = list(means), list(stds)
        self._normalize = Normalize(self.means, self.stds, temporal=temporal)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        if isinstance(batch.get("image"), torch.Tensor):
            batch["image"] = self._normalize(batch["image"])
        return batch


# ----------------------------------------------------------------------------- batch sampler


class MultiModalBatchSampler(BatchSampler):
    """Batches of ``(index, modalities)``: each batch loads ``sample_num_modalities`` random modalities.

    Args:
        modalities: the modalities to draw from.
        sample_num_modalities: how many modalities each batch holds.
        sample_replace: draw with replacement.
        sampler, batch_size, drop_last: as for ``torch.utils.data.BatchSampler``.

    Raises:
        ValueError: more modalities asked for than there are (without replacement).
    """

    def __init__(
        self,
        modalities: Sequence[str],
        sample_num_modalities: int,
        sample_replace: bool,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
    ) -> None:
        super().__init__(sampler, batch_size=batch_size, drop_last=drop_last)
        if not sample_replace and sample_num_modalities > len(modalities):
            raise ValueError(
                f"sample_num_modalities={sample_num_modalities} exceeds the {len(modalities)} modalities "
                f"{list(modalities)}; lower it or set sample_replace: true"
            )
        self.modalities = list(modalities)
        self.sample_num_modalities = sample_num_modalities
        self.sample_replace = sample_replace

    def _draw(self) -> list[str]:
        chosen = np.random.choice(self.modalities, self.sample_num_modalities, replace=self.sample_replace)
        return [str(m) for m in chosen]

    def __iter__(self) -> Iterator[list[tuple[int, list[str]]]]:
        batch: list[int] = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                chosen = self._draw()
                yield [(i, chosen) for i in batch]
                batch = []
        if batch and not self.drop_last:
            chosen = self._draw()
            yield [(i, chosen) for i in batch]


# ----------------------------------------------------------------------------- datamodule


def _roots_for(
    value: Mapping[str, Any] | str | Path | None, modalities: Sequence[str], key: str, allow_missing: bool
) -> dict[str, Any] | None:
    """A split's ``{modality: root}``: a shared str is used for every modality; unused keys are dropped.

    Raises:
        ValueError: a modality has no root (without ``allow_missing_modalities``), or a bad type.
    """
    if value is None:
        return None
    if isinstance(value, str | Path):
        return dict.fromkeys(modalities, str(value))
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{key} must be a {{modality: path}} mapping or one path, got {type(value).__name__}"
        )
    roots = {m: value[m] for m in modalities if m in value}
    missing = [m for m in modalities if m not in value]
    if missing and not allow_missing:
        raise ValueError(
            f"{key} has no path for modalities {missing} (it names {sorted(value)}; modalities: "
            f"{list(modalities)}); add them or set allow_missing_modalities: true"
        )
    return roots


def _check_grep(grep: str, key: str, substrings: bool) -> str:
    if "*" not in grep and substrings:
        warnings.warn(f"{key}={grep!r} has no wildcard; using '*{grep}'", UserWarning, stacklevel=4)
        grep = "*" + grep
    if "*" in grep.strip("*/\\"):
        raise ValueError(
            f"{key}={grep!r}: only a leading wildcard is supported (a suffix such as '*_S2L2A.tif'), "
            "because the rest of the name is the sample id"
        )
    return grep


class GenericMultiModalDataModule(LightningDataModule):
    """Multimodal datamodule over :class:`~terratorch.datasets.GenericMultimodalDataset` splits.

    Args:
        batch_size: samples per batch (1 with ``allow_missing_modalities``).
        modalities: the modalities, in order (``data_root`` keys).
        means, stds: ``{modality: values}`` (list or file per modality), one value per output band.
        task: ``segmentation``, ``regression`` (pixel-wise), ``classification``,
            ``multilabel_classification``, ``scalar_regression``, ``scalar`` (per-image ``label``),
            or None (images only).
        num_classes: number of classes (segmentation, classification).
        train_data_root, val_data_root, test_data_root, predict_data_root: ``{modality: directory}``
            per split, or one directory shared by every modality.
        data_root: fallback for splits without their own root (give split files then).
        train_label_data_root, val_label_data_root, test_label_data_root: label directories (or
            tables for per-image labels); ``label_data_root`` is their fallback.
        image_grep: glob per modality (``{S2L2A: "*_S2L2A.tif"}``) or one for all (leading ``*``
            only); ``img_grep`` is accepted as an alias.
        label_grep: glob of the label files.
        prefix: prefix/glob before the sample id (sub-folders such as ``part-*/``).
        train_split, val_split, test_split: files listing the sample ids of each split.
        dataset_bands, output_bands: ``{modality: bands}`` in the files / given to the model.
        predict_dataset_bands, predict_output_bands: the same for predict (default: the above).
        image_modalities: raster modalities (default: all); others are non-image modalities.
        rgb_modality: deprecated: the modality of ``rgb_indices`` given as a list.
        rgb_indices: ``{modality: [r, g, b]}`` for plots (a list means the first image modality).
        allow_substring_file_names: match files by ``id + image_grep`` glob (False: exact names).
        skip_file_checks: with exact names, do not check that files exist.
        class_names: names of the classes.
        constant_scale: ``{modality: factor}`` applied after reading.
        train_transform, val_transform, test_transform: albumentations lists shared by all image
            modalities (one random draw per sample), or ``{modality: list}`` applied separately.
            Predict uses ``test_transform``.
        shared_transforms: False applies the list to each modality separately.
        expand_temporal_dimension: files hold time steps x bands; images become ``(C, T, H, W)``.
        no_data_replace: value for image nodata/NaN pixels.
        no_label_replace: value for label nodata pixels (use it as the task's ``ignore_index``).
        reduce_zero_label: subtract 1 from the labels.
        drop_last: drop the last incomplete training batch.
        num_workers, pin_memory: DataLoader settings.
        data_with_sample_dim: files hold a sample axis; samples are concatenated, not stacked.
        allow_missing_modalities: keep samples that lack modalities (batch size 1).
        sample_num_modalities: load this many random modalities per batch
            (:class:`MultiModalBatchSampler`); ``sample_replace`` draws with replacement.
        channel_position: channel axis of ``.npy`` arrays.
        concat_bands: concatenate the image modalities into one ``image`` tensor (single-modal models).
        check_stackability: check shapes before batching (clear error instead of torch's).
        kwargs: unknown arguments are ignored with a warning.

    Raises:
        ValueError: unknown task, inconsistent roots/greps/statistics (checked here, before any
            file is read).
    """

    def __init__(
        self,
        batch_size: int,
        modalities: list[str],
        means: dict[str, Any],
        stds: dict[str, Any],
        task: str | None = None,
        num_classes: int | None = None,
        train_data_root: dict[str, Path] | str | None = None,
        val_data_root: dict[str, Path] | str | None = None,
        test_data_root: dict[str, Path] | str | None = None,
        predict_data_root: dict[str, Path] | str | None = None,
        data_root: dict[str, Path] | str | None = None,
        train_label_data_root: Path | str | None = None,
        val_label_data_root: Path | str | None = None,
        test_label_data_root: Path | str | None = None,
        label_data_root: Path | str | None = None,
        image_grep: str | dict[str, str] | None = None,
        label_grep: str | None = None,
        prefix: str | None = None,
        train_split: Path | str | None = None,
        val_split: Path | str | None = None,
        test_split: Path | str | None = None,
        dataset_bands: dict[str, list] | None = None,
        output_bands: dict[str, list] | None = None,
        predict_dataset_bands: dict[str, list] | None = None,
        predict_output_bands: dict[str, list] | None = None,
        image_modalities: list[str] | None = None,
        rgb_modality: str | None = None,
        rgb_indices: list[int] | dict[str, list[int]] | None = None,
        allow_substring_file_names: bool = True,
        skip_file_checks: bool = False,
        class_names: list[str] | None = None,
        constant_scale: dict[str, float] | None = None,
        train_transform: list[Callable] | dict[str, list[Callable]] | None = None,
        val_transform: list[Callable] | dict[str, list[Callable]] | None = None,
        test_transform: list[Callable] | dict[str, list[Callable]] | None = None,
        shared_transforms: list | bool = True,
        expand_temporal_dimension: bool = False,
        no_data_replace: float | None = None,
        no_label_replace: float | None = -1,
        reduce_zero_label: bool = False,
        drop_last: bool = True,
        num_workers: int = 0,
        pin_memory: bool = False,
        data_with_sample_dim: bool = False,
        allow_missing_modalities: bool = False,
        sample_num_modalities: int | None = None,
        sample_replace: bool = False,
        channel_position: int = -3,
        concat_bands: bool = False,
        check_stackability: bool = True,
        img_grep: str | dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            warnings.warn(
                f"GenericMultiModalDataModule: ignoring unknown argument(s) {sorted(kwargs)}",
                UserWarning,
                stacklevel=2,
            )
        if task not in _TASK_DATASETS:
            from terratorch.choices import unknown_choice

            raise ValueError(
                unknown_choice(
                    "task",
                    str(task),
                    [str(t) for t in _TASK_DATASETS if t],
                    where="GenericMultiModalDataModule",
                )
            )
        if not modalities:
            raise ValueError("modalities must list at least one modality, e.g. [S2L2A, S1GRD]")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.task = task
        self.dataset_class = _TASK_DATASETS[task]
        self.num_classes = num_classes
        self.class_names = class_names
        self.modalities = list(modalities)
        self.image_modalities = list(image_modalities) if image_modalities else list(modalities)
        stray = [m for m in self.image_modalities if m not in self.modalities]
        if stray:
            raise ValueError(f"image_modalities {stray} are not in modalities {self.modalities}")
        self.non_image_modalities = [m for m in self.modalities if m not in self.image_modalities]
        scalar = self.dataset_class is GenericMultimodalScalarDataset
        self._transform_non_image = self.non_image_modalities + (["label"] if scalar else [])
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.kwargs = kwargs

        grep = img_grep if img_grep is not None else image_grep
        if isinstance(grep, Mapping):
            self.image_grep = {
                m: _check_grep(grep[m], f"image_grep[{m}]", allow_substring_file_names) if m in grep else "*"
                for m in self.modalities
            }
        else:
            shared = _check_grep(grep or "*", "image_grep", allow_substring_file_names)
            self.image_grep = dict.fromkeys(self.modalities, shared)
        self.label_grep = _check_grep(label_grep or "*", "label_grep", True)
        self.img_grep = self.image_grep
        self.prefix = prefix

        self.allow_missing_modalities = allow_missing_modalities
        shared_root = _roots_for(data_root, self.modalities, "data_root", allow_missing_modalities)
        if (data_root is not None or label_data_root is not None) and None in (
            train_split,
            val_split,
            test_split,
        ):
            warnings.warn(
                "a shared data_root/label_data_root is used: give train_split, val_split and test_split "
                "so that the splits do not overlap",
                UserWarning,
                stacklevel=2,
            )
        for split, value in (
            ("train", train_data_root),
            ("val", val_data_root),
            ("test", test_data_root),
            ("predict", predict_data_root),
        ):
            roots = _roots_for(value, self.modalities, f"{split}_data_root", allow_missing_modalities)
            setattr(self, f"{split}_root", roots if roots is not None else shared_root)
        self.train_data_root, self.val_data_root = train_data_root, val_data_root
        self.test_data_root, self.predict_data_root = test_data_root, predict_data_root
        self.train_label_data_root = train_label_data_root or label_data_root
        self.val_label_data_root = val_label_data_root or label_data_root
        self.test_label_data_root = test_label_data_root or label_data_root
        if task is not None:
            for split in ("train", "val"):
                if (
                    getattr(self, f"{split}_root") is not None
                    and getattr(self, f"{split}_label_data_root") is None
                ):
                    raise ValueError(
                        f"task {task!r} needs labels: give {split}_label_data_root (or label_data_root)"
                    )
        self.train_split, self.val_split, self.test_split = train_split, val_split, test_split
        self.allow_substring_file_names = allow_substring_file_names
        if skip_file_checks and (allow_missing_modalities or allow_substring_file_names):
            raise ValueError(
                "skip_file_checks needs allow_missing_modalities: false and "
                "allow_substring_file_names: false (files are then named <sample id><image_grep suffix> "
                "exactly, e.g. sample1_S2L2A.tif)"
            )
        self.skip_file_checks = skip_file_checks
        self.constant_scale = constant_scale
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.reduce_zero_label = reduce_zero_label
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.sample_num_modalities = sample_num_modalities
        self.sample_replace = sample_replace
        if allow_missing_modalities and batch_size > 1:
            warnings.warn(
                "allow_missing_modalities: samples may hold different modalities and cannot be stacked; "
                "using batch_size 1",
                UserWarning,
                stacklevel=2,
            )
            self.batch_size = 1
        self.dataset_bands = _expand_band_dict(dataset_bands, "dataset_bands")
        self.output_bands = _expand_band_dict(output_bands, "output_bands")
        self.predict_dataset_bands = _expand_band_dict(predict_dataset_bands, "predict_dataset_bands") or (
            self.dataset_bands
        )
        self.predict_output_bands = _expand_band_dict(predict_output_bands, "predict_output_bands") or (
            self.output_bands
        )
        self.rgb_modality = rgb_modality
        self.rgb_indices = self._resolve_rgb_indices(rgb_modality, rgb_indices)
        self.expand_temporal_dimension = expand_temporal_dimension
        self.channel_position = channel_position
        self.concat_bands = concat_bands
        self.check_stackability = check_stackability
        self.data_with_sample_dim = data_with_sample_dim
        self.shared_transforms = shared_transforms
        for split, transform in (
            ("train", train_transform),
            ("val", val_transform),
            ("test", test_transform),
        ):
            setattr(self, f"{split}_transform", self._wrap_transform(transform))
        self.means, self.stds = self._load_statistics(means, stds)
        if concat_bands:
            missing = [m for m in self.image_modalities if m not in self.means]
            if missing:
                raise ValueError(f"concat_bands needs means/stds for every image modality; missing {missing}")
            self.aug: Callable[[dict], dict] = _ConcatNormalize(
                [v for m in self.image_modalities for v in self.means[m]],
                [v for m in self.image_modalities for v in self.stds[m]],
                temporal=expand_temporal_dimension,
            )
        else:
            self.aug = MultimodalNormalize(self.means, self.stds)
        self.collate_fn = collate_chunk_dicts if data_with_sample_dim else collate_samples
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    # ------------------------------------------------------------------ configuration helpers

    def _resolve_rgb_indices(self, rgb_modality: str | None, rgb_indices: Any) -> dict[str, list[int]]:
        if rgb_modality is not None:
            warnings.warn(
                "rgb_modality is deprecated: give rgb_indices as {modality: [band indices]}",
                DeprecationWarning,
                stacklevel=3,
            )
        if isinstance(rgb_indices, Sequence) and not isinstance(rgb_indices, str):
            rgb_indices = {rgb_modality or self.image_modalities[0]: list(rgb_indices)}
        resolved = dict(rgb_indices) if rgb_indices else {self.image_modalities[0]: [0, 1, 2]}
        for modality, indices in resolved.items():
            if len(indices) not in (1, 3):
                raise ValueError(f"rgb_indices[{modality!r}] must hold 1 or 3 band positions, got {indices}")
        return resolved

    def _wrap_transform(self, transform: Any) -> Any:
        if isinstance(transform, Mapping):
            return {m: compose_multimodal(transform[m]) if m in transform else None for m in self.modalities}
        if self.shared_transforms or transform is None:
            return compose_multimodal(transform, self.image_modalities, self._transform_non_image)
        return {m: compose_multimodal(transform) for m in self.modalities}

    def _load_statistics(
        self, means: Any, stds: Any
    ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        if not isinstance(means, Mapping) or not isinstance(stds, Mapping):
            raise ValueError(
                "means and stds must map each modality to its per-band values, e.g. "
                "{S2L2A: [...], S1GRD: [...]}"
            )
        loaded_means, loaded_stds = {}, {}
        for m in means:
            if m not in stds:
                raise ValueError(f"means names modality {m!r} but stds does not; give both")
            bands = (self.output_bands or {}).get(m)
            data_bands = (self.dataset_bands or {}).get(m)
            loaded_means[m] = align_band_statistics(
                means[m], key=f"means[{m}]", dataset_bands=data_bands, output_bands=bands or data_bands
            )
            loaded_stds[m] = align_band_statistics(
                stds[m], key=f"stds[{m}]", dataset_bands=data_bands, output_bands=bands or data_bands
            )
        return loaded_means, loaded_stds

    # ------------------------------------------------------------------ datasets

    def build_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``predict``: no labels, ``test_transform``, predict bands)."""
        predict = split == "predict"
        kwargs: dict[str, Any] = {
            "data_root": getattr(self, f"{split}_root"),
            "label_data_root": None if predict else getattr(self, f"{split}_label_data_root"),
            "image_grep": self.image_grep,
            "label_grep": self.label_grep,
            "prefix": self.prefix,
            "allow_missing_modalities": self.allow_missing_modalities,
            "allow_substring_file_names": self.allow_substring_file_names,
            "skip_file_checks": self.skip_file_checks,
            "dataset_bands": self.predict_dataset_bands if predict else self.dataset_bands,
            "output_bands": self.predict_output_bands if predict else self.output_bands,
            "constant_scale": self.constant_scale,
            "image_modalities": self.image_modalities,
            "rgb_indices": self.rgb_indices,
            "transform": self.test_transform if predict else getattr(self, f"{split}_transform"),
            "no_data_replace": self.no_data_replace,
            "no_label_replace": self.no_label_replace,
            "expand_temporal_dimension": self.expand_temporal_dimension,
            "reduce_zero_label": self.reduce_zero_label,
            "channel_position": self.channel_position,
            "data_with_sample_dim": self.data_with_sample_dim,
            "concat_bands": self.concat_bands,
        }
        if not predict:
            kwargs["split"] = getattr(self, f"{split}_split")
        if self.dataset_class is not GenericMultimodalDataset and self.dataset_class is not (
            GenericMultimodalPixelwiseRegressionDataset
        ):
            kwargs["num_classes"] = self.num_classes
            kwargs["class_names"] = self.class_names
        return self.dataset_class(**kwargs)

    def setup(self, stage: str | None = None) -> None:
        """Create the datasets of ``stage`` (file lists only) and check that each sample's modalities align.

        Raises:
            ValueError: a required data root is missing, or modalities of one sample are on different
                grids (names the files and modalities).
            FileNotFoundError: a root or split file does not exist (names the config key).
        """
        splits = _STAGE_SPLITS.get(stage, ()) if stage else ("train", "val", "test", "predict")
        for split in splits:
            if getattr(self, f"{split}_dataset") is not None:
                continue
            if getattr(self, f"{split}_root") is None:
                if stage is None:
                    continue
                raise ValueError(
                    f"{split}_data_root (or data_root) is required for stage {stage!r}: give "
                    f"{{modality: directory}} for {self.modalities}"
                )
            try:
                dataset = self.build_dataset(split)
            except FileNotFoundError as error:
                text = str(error)
                for key in ("data_root:", "label_data_root:", "split:"):
                    if text.startswith(key):
                        text = f"{split}_{text}"
                        break
                raise FileNotFoundError(text) from error
            check_sample_grids(dataset, where=f"{split} split")
            setattr(self, f"{split}_dataset", dataset)

    # ------------------------------------------------------------------ loaders

    def _dataloader_factory(self, split: str) -> DataLoader:
        dataset = getattr(self, f"{split}_dataset")
        if dataset is None:
            raise RuntimeError(
                f"no {split} dataset: call setup() for its stage first (and give {split}_data_root)"
            )
        train = split == "train"
        drop_last = train and self.drop_last
        if drop_last and len(dataset) < self.batch_size:
            raise ValueError(
                f"the train split has {len(dataset)} samples but batch_size={self.batch_size} and "
                "drop_last=True, so no batch would be produced; lower batch_size or set drop_last: false"
            )
        sampler = RandomSampler(dataset) if train else SequentialSampler(dataset)
        if self.sample_num_modalities:
            batch_sampler: BatchSampler = MultiModalBatchSampler(
                self.modalities,
                self.sample_num_modalities,
                self.sample_replace,
                sampler,
                batch_size=self.batch_size,
                drop_last=drop_last,
            )
        else:
            batch_sampler = BatchSampler(sampler, batch_size=self.batch_size, drop_last=drop_last)
        collate = self.collate_fn
        if collate is collate_samples and not self.check_stackability:
            collate = partial(collate_samples, check_stackability=False)
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._dataloader_factory("train")

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in file order (no validation without a val root)."""
        if self.val_dataset is None and self.val_root is None:
            return []
        return self._dataloader_factory("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order."""
        return self._dataloader_factory("test")

    def predict_dataloader(self) -> DataLoader:
        """Prediction batches (``image`` + ``filename``) in file order."""
        return self._dataloader_factory("predict")

    # ------------------------------------------------------------------ normalisation

    def normalize(self, image: torch.Tensor | dict[str, torch.Tensor]) -> Any:
        """Normalise an image dict ``{modality: (B, C, H, W)}`` (or the ``concat_bands`` tensor)."""
        return self.aug({"image": dict(image) if isinstance(image, Mapping) else image})["image"]

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise each modality of the batch on the device (the only place normalisation happens)."""
        if isinstance(batch, dict) and "image" in batch:
            batch = dict(batch)
            if isinstance(batch["image"], Mapping):
                batch["image"] = dict(batch["image"])
            batch = self.aug(batch)
        return batch


def _expand_band_dict(bands: Mapping[str, Any] | None, key: str) -> dict[str, list[Any]] | None:
    if bands is None:
        return None
    if not isinstance(bands, Mapping):
        raise ValueError(f"{key} must map each modality to its bands, e.g. {{S1GRD: [VV, VH]}}")
    return {m: expand_bands(v, key=f"{key}[{m}]") for m, v in bands.items()}


def check_sample_grids(dataset: Any, *, where: str = "", count: int | None = None) -> None:
    """Check, on a spread of samples, that every GeoTIFF modality and the label share one grid.

    Headers only are read (size, CRS, transform). Labels without a CRS are compared by size.

    Raises:
        ValueError: names the sample, both files, their modalities and the differing values.
    """
    from terratorch.datasets import sanity
    from terratorch.io.geotiff import read_header

    if not sanity.checks_enabled():
        return
    prefix = f"{where}: " if where else ""
    for sample in sanity.spread(getattr(dataset, "samples", []), count or sanity.HEADER_SAMPLE):
        files = [
            (k, v)
            for k, v in sample.items()
            if isinstance(v, str) and v.lower().endswith((".tif", ".tiff")) and os.path.exists(v)
        ]
        if len(files) < 2:
            continue
        (ref_key, ref_path), others = files[0], files[1:]
        ref = read_header(ref_path)
        for key, path in others:
            other = read_header(path)
            if (ref.height, ref.width) != (other.height, other.width):
                raise ValueError(
                    f"{prefix}size mismatch: {ref_key} file {ref_path} is {ref.height}x{ref.width} (H x W) "
                    f"but {key} file {path} is {other.height}x{other.width}; every modality of a sample "
                    "(and its label) must be on the same grid"
                )
            if ref.crs is None or other.crs is None:
                continue
            if ref.crs != other.crs or not sanity._transforms_close(ref.transform, other.transform):
                raise ValueError(
                    f"{prefix}grid mismatch: {ref_key} file {ref_path} "
                    f"({ref.crs}, {sanity._transform_text(ref.transform)}) "
                    f"and {key} file {path} ({other.crs}, {sanity._transform_text(other.transform)}) cover "
                    "different ground; reproject the modalities onto one grid (e.g. gdalwarp)"
                )
