"""Datamodule of the Substation dataset (segmentation or object detection on Sentinel-2 stacks).

Detection batches hold ``image`` ``(B, C, H, W)`` (one or aggregated time steps) or
``(B, C, T, H, W)`` (``timepoint_aggregation: identity``), and per-image lists ``boxes``,
``labels``, ``masks``. Images are normalised on the device with the per-band statistics of
the selected ``bands``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, default_collate

from terratorch.datasets.object_detection import DetectionSampleTransform, collate_detection
from terratorch.datasets.substation import Substation

#: Per-band means / stds of the 13 Sentinel-2 bands of the Substation stacks (the reference's values).
means = [
    1423.3745710003543,
    1219.2943391189588,
    1182.4678074598091,
    1158.0459084351446,
    1401.8725467408829,
    2198.8962678953585,
    2582.976482945787,
    2505.9577635634005,
    2812.9741141745803,
    808.0196180351925,
    15.818041869437652,
    2185.9854710710974,
    1469.6518299083612,
]
stds = [
    285.46691956407517,
    394.44991388670013,
    450.0629924473796,
    671.2598383733988,
    594.6671241798275,
    618.4261097309303,
    787.2213184558726,
    795.4738600694346,
    862.1076233925734,
    331.81864168987255,
    14.444442475684806,
    840.1079725056068,
    818.1891190853091,
]
_NATIVE_SIZE = 228


def substation_detection_transforms(image_size: int = 224) -> list[Any]:
    """The detection transforms: a resize when ``image_size`` differs from the native 228 px."""
    import albumentations as A

    return [A.Resize(height=image_size, width=image_size)] if image_size != _NATIVE_SIZE else []


class SubstationDataModule(LightningDataModule):
    """Substation for segmentation (``mode: segmentation``) or detection (``mode: object_detection``).

    Args:
        root: the dataset folder (see :class:`~terratorch.datasets.substation.Substation`).
        bands: Sentinel-2 band positions (0-12) to use; ``means``/``stds`` are indexed with them.
        mask_2d: two-channel segmentation masks.
        batch_size, num_workers: DataLoader settings.
        means, stds: statistics of all 13 bands.
        timepoint_aggregation, num_of_timepoints, use_timepoints: see the dataset.
        download, checksum: accepted for the reference's signature (no download).
        mode: ``"segmentation"`` or ``"object_detection"``.
        collate_fn: replaces the default collate.
        dataset_version: ``"full"`` or ``"geobench"``.
        image_size: detection images are resized to this (unless it is the native 228).
        train_transform, val_transform, test_transform: callables on the sample dict; default
            for detection: the resize above (boxes and masks follow it), none for segmentation.
        plot_indexes: RGB band positions for plots.
        invalid_boxes: ``"error"`` or ``"clip"`` for boxes outside their image.
    """

    def __init__(
        self,
        root: str | Path = "/opt/app-root/src/use-cases/substation-dataset-conversion/Substation",
        bands: Sequence[int] = (3, 2, 1),
        mask_2d: bool = False,
        batch_size: int = 8,
        num_workers: int = 4,
        means: Sequence[float] = means,
        stds: Sequence[float] = stds,
        timepoint_aggregation: str = "concat",
        download: bool = False,
        checksum: bool = False,
        num_of_timepoints: int = 4,
        use_timepoints: bool = True,
        mode: str = "segmentation",
        collate_fn: Callable | None = None,
        dataset_version: str = "full",
        image_size: int = 224,
        train_transform: Callable | None = None,
        val_transform: Callable | None = None,
        test_transform: Callable | None = None,
        plot_indexes: Sequence[int] = (2, 1, 0),
        invalid_boxes: str = "error",
        *args: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.root = root
        self.bands = list(bands)
        self.mask_2d = mask_2d
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.timepoint_aggregation = timepoint_aggregation
        self.download = download
        self.checksum = checksum
        self.num_of_timepoints = num_of_timepoints
        self.use_timepoints = use_timepoints
        self.mode = mode
        self.dataset_version = dataset_version
        self.image_size = image_size
        self.plot_indexes = list(plot_indexes)
        self.invalid_boxes = invalid_boxes
        if mode == "object_detection":
            default = DetectionSampleTransform(substation_detection_transforms(image_size))
            train_transform = train_transform if train_transform is not None else default
            val_transform = val_transform if val_transform is not None else default
            test_transform = test_transform if test_transform is not None else default
        self.train_transform, self.val_transform, self.test_transform = (
            train_transform,
            val_transform,
            test_transform,
        )
        self.means = torch.tensor(list(means), dtype=torch.float32)[self.bands]
        self.stds = torch.tensor(list(stds), dtype=torch.float32)[self.bands]
        default_collate_fn = collate_detection if mode == "object_detection" else default_collate
        self.collate_fn = collate_fn if collate_fn is not None else default_collate_fn
        self.train_dataset = self.val_dataset = self.test_dataset = None

    def _dataset(self, split: str, transform: Callable | None) -> Substation:
        return Substation(
            root=self.root,
            bands=self.bands,
            mask_2d=self.mask_2d,
            timepoint_aggregation=self.timepoint_aggregation,
            download=self.download,
            checksum=self.checksum,
            transforms=transform,
            num_of_timepoints=self.num_of_timepoints,
            use_timepoints=self.use_timepoints,
            mode=self.mode,
            split=split,
            dataset_version=self.dataset_version,
            plot_indexes=self.plot_indexes,
            invalid_boxes=self.invalid_boxes,
        )

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (each split with its own transform)."""
        if stage in ("fit", None):
            self.train_dataset = self._dataset("train", self.train_transform)
        if stage in ("fit", "validate", None):
            self.val_dataset = self._dataset("val", self.val_transform)
        if stage in ("test", None):
            self.test_dataset = self._dataset("test", self.test_transform)

    def _loader(self, dataset: Substation | None, split: str) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"no {split} dataset: call setup() for its stage first")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=split == "train",
            num_workers=self.num_workers,
            collate_fn=self.collate_fn,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader(self.train_dataset, "train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader(self.val_dataset, "val")

    def test_dataloader(self) -> DataLoader:
        """Test batches."""
        return self._loader(self.test_dataset, "test")

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise per band: ``(B, C, H, W)``, ``(B, C, T, H, W)`` or time-major ``(B, T*C, H, W)``.

        Raises:
            ValueError: a channel count that is not a multiple of ``len(bands)``.
        """
        bands = len(self.bands)
        channels = image.shape[1]
        if channels % bands:
            raise ValueError(
                f"image has {channels} channels (shape {tuple(image.shape)}), not a multiple of the "
                f"{bands} bands {self.bands}"
            )
        repeat = 1 if image.ndim == 5 else channels // bands
        shape = [1, -1] + [1] * (image.ndim - 2)
        mean = self.means.repeat(repeat).to(image.device).view(shape)
        std = self.stds.repeat(repeat).to(image.device).view(shape)
        return (image.float() - mean) / std

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Stack (when given a list) and normalise the images on the device."""
        if isinstance(batch, dict) and "image" in batch:
            batch = dict(batch)
            image = batch["image"]
            image = torch.stack(list(image)) if isinstance(image, list | tuple) else image
            batch["image"] = self.normalize(image)
        return batch
