"""Datamodules with one target per image: classification, multi-label, scalar regression.

Classification reads ``<split>_data_root/<class_name>/<files>``; multi-label and scalar regression
read images from ``<split>_data_root`` and targets from a CSV ``label_file`` (first column the
image file name or stem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from terratorch.datamodules.base import GeoTIFFDataModule
from terratorch.datamodules.generic_pixel_wise_data_module import Bands, TransformList
from terratorch.datasets.generic_pixel_wise_dataset import GenericImageDataset
from terratorch.datasets.generic_scalar_label_dataset import (
    GenericNonGeoClassificationDataset,
    GenericNonGeoMultiLabelClassificationDataset,
    GenericNonGeoScalarRegressionDataset,
    class_directories,
)


class _ScalarLabelDataModule(GeoTIFFDataModule):
    """Shared storage and dataset arguments of the image-level datamodules."""

    def _store(self, values: dict[str, Any]) -> None:
        for split in ("train", "val", "test", "predict"):
            setattr(self, f"{split}_data_root", values[f"{split}_data_root"])
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_split", values[f"{split}_split"])
            setattr(self, f"{split}_transform", values[f"{split}_transform"])
        for key in ("img_grep", "constant_scale", "no_data_replace"):
            setattr(self, key, values[key])

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments shared by the datasets of every split."""
        return {
            "img_grep": self.img_grep,
            **self.common_dataset_kwargs(split),
            "constant_scale": self.constant_scale,
            "no_data_replace": self.no_data_replace,
            "transform": self.test_transform if split == "predict" else getattr(self, f"{split}_transform"),
        }

    def build_dataset(self, split: str) -> Any:
        """Dataset of ``split``; ``predict`` lists ``img_grep`` directly under ``predict_data_root``."""
        kwargs = self.dataset_kwargs(split)
        if split == "predict":
            return GenericImageDataset(self.predict_data_root, **kwargs)
        return self.labelled_dataset(split, kwargs)

    def labelled_dataset(self, split: str, kwargs: dict[str, Any]) -> Any:
        """The dataset with targets of ``split``; subclasses implement it."""
        raise NotImplementedError


class GenericNonGeoClassificationDataModule(_ScalarLabelDataModule):
    """Scene classification from ``<split>_data_root/<class_name>/<files>``.

    Batches: ``image`` float32 ``(B, C, H, W)``, ``label`` int64 ``(B,)``, ``filename``.
    Class indices follow the sorted class folder names of ``train_data_root`` (or
    ``class_names``) in every split, so a class missing from val/test cannot shift them.

    Args:
        batch_size, num_workers: DataLoader settings.
        train_data_root, val_data_root, test_data_root: directories with one folder per class.
        img_grep: glob for images inside the class folders.
        means, stds: per-band statistics (list or file), aligned with ``output_bands``.
        num_classes: when given, must equal the number of class folders.
        predict_data_root: directory of images to classify (``img_grep`` applied directly).
        train_split, val_split, test_split: files with one sample per line.
        ignore_split_file_extensions, allow_substring_split_file: how split entries select files.
        predict_dataset_bands: bands of the predict files (default: ``dataset_bands``).
        no_data_replace: value for nodata/NaN pixels (default 0, as in the reference).
        class_names: class names in index order (default: sorted folder names).
        dataset_bands, output_bands, constant_scale, *_transform, expand_temporal_dimension,
        drop_last, pin_memory, check_stackability, rgb_indices: as in
            :class:`~terratorch.datamodules.GenericNonGeoSegmentationDataModule`.
    """

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        num_classes: int | None = None,
        predict_data_root: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        dataset_bands: Bands = None,
        predict_dataset_bands: Bands = None,
        output_bands: Bands = None,
        constant_scale: float = 1,
        rgb_indices: list[int] | None = None,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        expand_temporal_dimension: bool = False,
        no_data_replace: float | None = 0,
        drop_last: bool = True,
        check_stackability: bool = True,
        img_grep: str = "*",
        class_names: list[str] | None = None,
        pin_memory: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            means=means,
            stds=stds,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            expand_temporal_dimension=expand_temporal_dimension,
            drop_last=drop_last,
            pin_memory=pin_memory,
            check_stackability=check_stackability,
            rgb_indices=rgb_indices,
            predict_dataset_bands=predict_dataset_bands,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            **kwargs,
        )
        self._store(locals())
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None

    def resolve_class_names(self, split: str) -> list[str]:
        """Class names in index order: given ones, else the train root's folders, else ``split``'s."""
        if self.class_names is None:
            root = (
                self.train_data_root
                if self.train_data_root is not None
                else getattr(self, f"{split}_data_root")
            )
            self.class_names = class_directories(Path(root))
        return self.class_names

    def labelled_dataset(self, split: str, kwargs: dict[str, Any]) -> GenericNonGeoClassificationDataset:
        """Folder-per-class dataset of ``split`` with the shared class order."""
        return GenericNonGeoClassificationDataset(
            getattr(self, f"{split}_data_root"),
            split=getattr(self, f"{split}_split"),
            class_names=self.resolve_class_names(split),
            num_classes=self.num_classes,
            **kwargs,
        )


class _CSVLabelDataModule(_ScalarLabelDataModule):
    """Images plus a CSV of targets; ``<split>_label_file`` falls back to ``label_file``."""

    def label_file_for(self, split: str) -> str | Path:
        """The CSV holding the targets of ``split``.

        Raises:
            ValueError: neither ``<split>_label_file`` nor ``label_file`` is set.
        """
        path = getattr(self, f"{split}_label_file") or self.label_file
        if path is None:
            raise ValueError(f"{split}_label_file (or label_file) is required: a CSV 'filename,<targets...>'")
        return path

    def _store_label_files(self, values: dict[str, Any]) -> None:
        self.label_file = values["label_file"]
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_label_file", values[f"{split}_label_file"])


class GenericNonGeoMultiLabelClassificationDataModule(_CSVLabelDataModule):
    """Multi-label classification: CSV ``filename,<class_0>,<class_1>,...`` with 0/1 per class.

    Batches: ``image`` float32 ``(B, C, H, W)``, ``label`` float32 ``(B, num_classes)``,
    ``filename``. Arguments as :class:`GenericNonGeoClassificationDataModule`, plus
    ``label_file`` (one CSV for all splits) or ``train/val/test_label_file``.
    """

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        img_grep: str = "*",
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        num_classes: int | None = None,
        label_file: str | Path | None = None,
        predict_data_root: str | Path | None = None,
        train_label_file: str | Path | None = None,
        val_label_file: str | Path | None = None,
        test_label_file: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        dataset_bands: Bands = None,
        output_bands: Bands = None,
        constant_scale: float = 1.0,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        expand_temporal_dimension: bool = False,
        no_data_replace: float | None = None,
        drop_last: bool = True,
        pin_memory: bool = False,
        check_stackability: bool = True,
        rgb_indices: list[int] | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            means=means,
            stds=stds,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            expand_temporal_dimension=expand_temporal_dimension,
            drop_last=drop_last,
            pin_memory=pin_memory,
            check_stackability=check_stackability,
            rgb_indices=rgb_indices,
        )
        self._store(locals())
        self._store_label_files(locals())
        self.num_classes = num_classes

    def labelled_dataset(
        self, split: str, kwargs: dict[str, Any]
    ) -> GenericNonGeoMultiLabelClassificationDataset:
        """Images of ``split`` with multi-hot targets from the CSV."""
        return GenericNonGeoMultiLabelClassificationDataset(
            getattr(self, f"{split}_data_root"),
            self.label_file_for(split),
            split=getattr(self, f"{split}_split"),
            num_classes=self.num_classes,
            **kwargs,
        )


class GenericNonGeoScalarRegressionDataModule(_CSVLabelDataModule):
    """Scalar regression (one value per image): CSV ``filename,<target>``.

    Batches: ``image`` float32 ``(B, C, H, W)``, ``label`` float32 ``(B,)``, ``filename``.
    ``target_column`` picks the CSV column (default: the first value column).
    """

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        img_grep: str = "*",
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        label_file: str | Path | None = None,
        target_column: str | None = None,
        predict_data_root: str | Path | None = None,
        train_label_file: str | Path | None = None,
        val_label_file: str | Path | None = None,
        test_label_file: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        dataset_bands: Bands = None,
        output_bands: Bands = None,
        constant_scale: float = 1.0,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        expand_temporal_dimension: bool = False,
        no_data_replace: float | None = None,
        drop_last: bool = True,
        pin_memory: bool = False,
        check_stackability: bool = True,
        rgb_indices: list[int] | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            means=means,
            stds=stds,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            expand_temporal_dimension=expand_temporal_dimension,
            drop_last=drop_last,
            pin_memory=pin_memory,
            check_stackability=check_stackability,
            rgb_indices=rgb_indices,
        )
        self._store(locals())
        self._store_label_files(locals())
        self.target_column = target_column

    def labelled_dataset(self, split: str, kwargs: dict[str, Any]) -> GenericNonGeoScalarRegressionDataset:
        """Images of ``split`` with scalar targets from the CSV."""
        return GenericNonGeoScalarRegressionDataset(
            getattr(self, f"{split}_data_root"),
            self.label_file_for(split),
            split=getattr(self, f"{split}_split"),
            target_column=self.target_column,
            **kwargs,
        )
