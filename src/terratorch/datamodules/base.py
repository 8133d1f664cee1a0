"""Shared Lightning logic of the GeoTIFF datamodules: bands, statistics, dataloaders, normalisation.

Subclasses only say how to build the dataset of each split (:meth:`GeoTIFFDataModule.build_dataset`).
Datasets return un-normalised float32 images; normalisation runs once, on the device, in
``on_after_batch_transfer`` and is exposed as :meth:`GeoTIFFDataModule.normalize` for tiled
prediction on whole scenes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from terratorch.datamodules.normalize import Normalize, align_band_statistics
from terratorch.datasets.sanity import check_dataset
from terratorch.datasets.utils import BandSpec, expand_bands, raster_shape, select_band_indices

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def check_same_shapes(samples: list[dict[str, Any]]) -> None:
    """Check that images/masks have one shape per batch.

    Raises:
        ValueError: samples of different sizes; lists the files and shapes and how to fix it,
            instead of torch's "stack expects each tensor to be equal size".
    """
    for key in ("image", "mask"):
        shapes = {tuple(s[key].shape) for s in samples if key in s}
        if len(shapes) > 1:
            detail = ", ".join(
                f"{Path(s.get('filename', '?')).name}: {tuple(s[key].shape)}" for s in samples[:6]
            )
            raise ValueError(
                f"cannot batch {key}s of different sizes ({detail}); use batch_size: 1, or add a crop/resize "
                "transform (e.g. albumentations.RandomCrop) so every sample has the same size"
            )


def collate_samples(samples: list[dict[str, Any]], check_stackability: bool = True) -> dict[str, Any]:
    """Batch sample dicts: tensors are stacked along a new first axis, strings become lists.

    In DataLoader workers this is ``default_collate`` (which stacks into shared memory). In the
    main process (``num_workers=0``) tensors are stacked with NumPy: a single-threaded copy,
    because torch's multi-threaded ``stack`` of small tensors spins OpenMP threads and costs up
    to ~2x the CPU time of the whole read on a busy machine.

    Raises:
        ValueError: with ``check_stackability``, samples of different sizes (see
            :func:`check_same_shapes`).
    """
    if check_stackability:
        check_same_shapes(samples)
    if get_worker_info() is not None:
        return default_collate(samples)
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in values):
            batch[key] = torch.from_numpy(np.stack([v.numpy() for v in values]))
        else:
            batch[key] = default_collate(values)
    return batch


class GeoTIFFDataModule(LightningDataModule):
    """Base datamodule: holds bands, means/stds, loader settings; subclasses build the datasets.

    Args:
        batch_size: samples per batch (all splits).
        num_workers: DataLoader worker processes.
        means, stds: per-band statistics aligned with ``output_bands`` (list or file path: one
            value per line, or a YAML/JSON list). None disables normalisation.
        dataset_bands: bands stored in the files, in order (names, ints, ``[a, b]`` ranges).
        output_bands: bands given to the model, a subset of ``dataset_bands`` in model order.
        expand_temporal_dimension: images are ``(C, T, H, W)``.
        drop_last: drop the last incomplete training batch.
        pin_memory: DataLoader ``pin_memory``.
        check_stackability: check sample sizes before batching (clear error instead of torch's).
        rgb_indices: positions of red, green, blue in ``output_bands`` for plots (default: found
            by band name).
        predict_dataset_bands, predict_output_bands: the same for the files of
            ``predict_data_root`` (default: ``dataset_bands`` / ``output_bands``), for scenes stored
            with other bands than the training chips.
        ignore_split_file_extensions, allow_substring_split_file: how split-file entries select
            files (see :func:`terratorch.datasets.utils.filter_split`).
        embedding_input, pca_step: the inputs are embeddings (plots only).
        kwargs: accepted for the reference's signature and ignored with a warning (kept in
            ``self.kwargs``).
    """

    def __init__(
        self,
        *,
        batch_size: int = 4,
        num_workers: int = 0,
        means: Sequence[float] | str | None = None,
        stds: Sequence[float] | str | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        expand_temporal_dimension: bool = False,
        drop_last: bool = True,
        pin_memory: bool = False,
        check_stackability: bool = True,
        rgb_indices: list[int] | None = None,
        predict_dataset_bands: BandSpec | None = None,
        predict_output_bands: BandSpec | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        embedding_input: bool = False,
        pca_step: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            warnings.warn(
                f"{type(self).__name__}: ignoring unknown argument(s) {sorted(kwargs)} (the reference "
                "accepts and ignores extra keyword arguments too)",
                UserWarning,
                stacklevel=3,
            )
        self.kwargs = kwargs
        self.rgb_indices = rgb_indices
        self.ignore_split_file_extensions = ignore_split_file_extensions
        self.allow_substring_split_file = allow_substring_split_file
        self.embedding_input = embedding_input
        self.pca_step = pca_step
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.pin_memory = pin_memory
        self.check_stackability = check_stackability
        self.expand_temporal_dimension = expand_temporal_dimension
        self.dataset_bands = expand_bands(dataset_bands, key="dataset_bands")
        output = expand_bands(output_bands, key="output_bands")
        self.output_bands = output if output is not None else self.dataset_bands
        if self.dataset_bands is not None:
            select_band_indices(self.dataset_bands, self.output_bands)
        elif output is not None:
            raise ValueError(
                f"output_bands={output} needs dataset_bands (the bands stored in the files, in order)"
            )
        predict_dataset = expand_bands(predict_dataset_bands, key="predict_dataset_bands")
        predict_output = expand_bands(predict_output_bands, key="predict_output_bands")
        self.predict_dataset_bands = predict_dataset if predict_dataset is not None else self.dataset_bands
        self.predict_output_bands = predict_output if predict_output is not None else self.output_bands
        if predict_dataset is not None and predict_output is None and output is None:
            self.predict_output_bands = self.predict_dataset_bands
        if self.predict_dataset_bands is not None and self.predict_output_bands is not None:
            select_band_indices(self.predict_dataset_bands, self.predict_output_bands)
        self.means = align_band_statistics(
            means, key="means", dataset_bands=self.dataset_bands, output_bands=self.output_bands
        )
        self.stds = align_band_statistics(
            stds, key="stds", dataset_bands=self.dataset_bands, output_bands=self.output_bands
        )
        if (self.means is None) != (self.stds is None):
            raise ValueError("give both means and stds (or neither, to skip normalisation)")
        self._normalize = (
            Normalize(self.means, self.stds, temporal=expand_temporal_dimension)
            if self.means is not None
            else None
        )
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    # ------------------------------------------------------------------ datasets

    def build_dataset(self, split: str) -> Dataset:
        """Build the dataset of ``split`` (train, val, test, predict); subclasses implement it."""
        raise NotImplementedError

    def common_dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Band and split-file arguments of the dataset of ``split`` (predict has its own bands)."""
        predict = split == "predict"
        kwargs: dict[str, Any] = {
            "dataset_bands": self.predict_dataset_bands if predict else self.dataset_bands,
            "output_bands": self.predict_output_bands if predict else self.output_bands,
            "expand_temporal_dimension": self.expand_temporal_dimension,
        }
        if not predict:
            kwargs["ignore_split_file_extensions"] = self.ignore_split_file_extensions
            kwargs["allow_substring_split_file"] = self.allow_substring_split_file
        return kwargs

    def root_for(self, split: str) -> Any:
        """The data root configured for ``split`` (``<split>_data_root``)."""
        return getattr(self, f"{split}_data_root", None)

    def setup(self, stage: str | None = None) -> None:
        """Create the datasets of ``stage`` (file lists only) and check a bounded sample of files.

        The first file's bands are checked, then :func:`terratorch.datasets.sanity.check_dataset`
        compares image/label grids and looks for images that hold no data (a few headers and
        decimated reads, whatever the dataset size).

        Raises:
            ValueError: a required ``<split>_data_root`` is missing, a file has fewer bands than
                ``dataset_bands`` (names the file), an image and its label are on different grids,
                or every sampled image holds no data.
            FileNotFoundError: a data root is empty; the message names the config key.
        """
        splits = _STAGE_SPLITS.get(stage, ()) if stage else ("train", "val", "test", "predict")
        for split in splits:
            if getattr(self, f"{split}_dataset") is not None:
                continue
            if self.root_for(split) is None:
                if stage is None or (stage == "fit" and split == "val"):
                    continue  # validation during fit is optional
                raise ValueError(f"{split}_data_root is required for stage {stage!r} but was not given")
            try:
                dataset = self.build_dataset(split)
            except FileNotFoundError as error:
                raise FileNotFoundError(_with_split_key(str(error), split)) from error
            self._check_first_file(dataset)
            check_dataset(dataset, where=f"{split} split", strict=split != "predict")
            setattr(self, f"{split}_dataset", dataset)

    def _check_first_file(self, dataset: Dataset) -> None:
        first = first_file(dataset)
        if first is not None and self.dataset_bands is not None:
            dataset.band_indexes(first, raster_shape(first)[0])

    # ------------------------------------------------------------------ loaders

    def _loader(self, dataset: Dataset | None, split: str, *, shuffle: bool = False, drop_last: bool = False):
        if dataset is None:
            raise RuntimeError(
                f"no {split} dataset: call setup() for its stage first (and give {split}_data_root)"
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            drop_last=drop_last,
            pin_memory=self.pin_memory,
            collate_fn=partial(collate_samples, check_stackability=self.check_stackability),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches (``drop_last`` applies here).

        Raises:
            ValueError: ``drop_last`` with fewer samples than ``batch_size`` (no batch at all).
        """
        dataset = self.train_dataset
        if dataset is not None and self.drop_last and len(dataset) < self.batch_size:
            raise ValueError(
                f"the train split has {len(dataset)} samples but batch_size={self.batch_size} and "
                "drop_last=True, so no batch would be produced; lower batch_size or set drop_last: false"
            )
        return self._loader(dataset, "train", shuffle=True, drop_last=self.drop_last)

    def val_dataloader(self) -> DataLoader | list:
        """Validation batches in file order (an empty list, i.e. no validation, without val_data_root)."""
        if self.val_dataset is None and self.val_data_root is None and self.train_dataset is not None:
            return []
        return self._loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order."""
        return self._loader(self.test_dataset, "test")

    def predict_dataloader(self) -> DataLoader:
        """Prediction batches (``image`` + ``filename``) in file order."""
        return self._loader(self.predict_dataset, "predict")

    # ------------------------------------------------------------------ normalisation

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """``(image - mean) / std`` per band; identity when no means/stds were given.

        Args:
            image: ``(B, C, H, W)`` or ``(C, H, W)`` (multi-temporal: ``(B, C, T, H, W)`` or
                ``(C, T, H, W)``), on any device.
        """
        if self._normalize is None:
            return image if image.is_floating_point() else image.float()
        return self._normalize(image)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise ``batch["image"]`` on the device (the only place normalisation happens)."""
        if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor):
            batch = dict(batch)
            batch["image"] = self.normalize(batch["image"])
        return batch


def _with_split_key(message: str, split: str) -> str:
    """Turn a dataset's ``data_root: ...`` message into ``train_data_root: ...`` (the config key)."""
    for key in ("data_root:", "label_data_root:", "split:"):
        if message.startswith(key):
            return f"{split}_{message}"
    return f"{split}: {message}"


def first_file(dataset: Dataset) -> Path | None:
    """The first image file of a generic dataset (None for other datasets)."""
    samples = getattr(dataset, "samples", None)
    if samples:
        return Path(samples[0][0])
    files = getattr(dataset, "files", None)
    return Path(files[0]) if files else None
