"""Datamodules for folders of GeoTIFF chips with label rasters: segmentation, pixel-wise regression.

Config example (LightningCLI)::

    data:
      class_path: GenericNonGeoSegmentationDataModule
      init_args:
        batch_size: 8
        train_data_root: data/images
        train_label_data_root: data/labels
        train_split: data/splits/train.txt
        img_grep: "*_img.tif"
        label_grep: "*_mask.tif"
        dataset_bands: [BLUE, GREEN, RED, NIR_NARROW, SWIR_1, SWIR_2]
        output_bands: [BLUE, GREEN, RED]
        means: data/means.txt
        stds: data/stds.txt
        num_classes: 3
        train_transform:
          - class_path: albumentations.HorizontalFlip
          - class_path: albumentations.pytorch.ToTensorV2
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from terratorch.datamodules.base import GeoTIFFDataModule
from terratorch.datasets.generic_pixel_wise_dataset import (
    GenericImageDataset,
    GenericNonGeoPixelwiseRegressionDataset,
    GenericNonGeoSegmentationDataset,
)

Bands = list[int | str | list[int]] | None
# albumentations transforms (configs: ``class_path`` items) or an ``A.Compose``. Typed as callables
# so that importing this module (e.g. for ``terratorch fit --help``) does not import albumentations.
TransformList = list[Callable] | Callable | None


class _PixelWiseDataModule(GeoTIFFDataModule):
    """Shared constructor storage and dataset building of the pixel-wise datamodules."""

    dataset_class: type = GenericNonGeoSegmentationDataset

    def _store(self, values: dict[str, Any]) -> None:
        for split in ("train", "val", "test", "predict"):
            setattr(self, f"{split}_data_root", values[f"{split}_data_root"])
        for split in ("train", "val", "test"):
            setattr(self, f"{split}_label_data_root", values[f"{split}_label_data_root"])
            setattr(self, f"{split}_split", values[f"{split}_split"])
            setattr(self, f"{split}_transform", values[f"{split}_transform"])
        for key in ("img_grep", "label_grep", "constant_scale", "no_data_replace", "no_label_replace"):
            setattr(self, key, values[key])

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Keyword arguments shared by the datasets of every split."""
        return {
            "img_grep": self.img_grep,
            **self.common_dataset_kwargs(split),
            "constant_scale": self.constant_scale,
            "no_data_replace": self.no_data_replace,
            "transform": self.test_transform if split == "predict" else getattr(self, f"{split}_transform"),
        }

    def build_dataset(self, split: str) -> Any:
        """Dataset of ``split``; ``predict`` gives images only (``test_transform`` applies)."""
        kwargs = self.dataset_kwargs(split)
        if split == "predict":
            return GenericImageDataset(self.predict_data_root, **kwargs)
        # None: the labels sit beside the images (told apart by label_grep), as in the reference.
        label_root = getattr(self, f"{split}_label_data_root")
        try:
            return self.dataset_class(
                getattr(self, f"{split}_data_root"),
                label_data_root=label_root,
                label_grep=self.label_grep,
                split=getattr(self, f"{split}_split"),
                no_label_replace=self.no_label_replace,
                **kwargs,
                **self.extra_dataset_kwargs(),
            )
        except FileNotFoundError as error:
            if label_root is not None or not str(error).startswith("label_data_root"):
                raise
            raise FileNotFoundError(
                f"{error} ({split}_label_data_root is not set, so the labels are looked for beside the "
                f"images; give {split}_label_data_root if they are elsewhere)"
            ) from error

    def extra_dataset_kwargs(self) -> dict[str, Any]:
        """Task-specific dataset arguments."""
        return {}


class GenericNonGeoSegmentationDataModule(_PixelWiseDataModule):
    """Semantic segmentation on GeoTIFF chips with label rasters.

    Batches: ``image`` float32 ``(B, C, H, W)`` (normalised on the device), ``mask`` int64
    ``(B, H, W)``, ``filename`` list of str.

    Args:
        batch_size, num_workers: DataLoader settings.
        train_data_root, val_data_root, test_data_root: image directories per split.
        img_grep, label_grep: globs for images and labels; an image pairs with the label whose
            ``*`` part matches (``a_img.tif`` <-> ``a_mask.tif``).
        means, stds: per-band statistics (list or file), aligned with ``output_bands``.
        num_classes: number of classes; label values outside ``[0, num_classes)`` (other than
            ``no_label_replace``) are reported with the file name.
        predict_data_root: images to predict (no labels).
        train_label_data_root, val_label_data_root, test_label_data_root: label directories;
            None (the default) means the labels sit beside the images of that split.
        train_split, val_split, test_split: files with one sample (name, stem or substring) per line.
        ignore_split_file_extensions, allow_substring_split_file: how split entries select files.
        predict_dataset_bands, predict_output_bands: bands of the predict files (default:
            ``dataset_bands`` / ``output_bands``).
        embedding_input, pca_step: the inputs are embeddings (plots only).
        tortilla_file, return_georeference: the reference's TACO input and georeference output;
            not supported here (setting them raises NotImplementedError with an alternative).
        dataset_bands: bands in the files (names, ints, ``[a, b]`` inclusive ranges, mixable).
        output_bands: bands for the model, subset of ``dataset_bands``.
        constant_scale: multiply pixel values by this after reading.
        train_transform, val_transform, test_transform: albumentations lists (``ToTensorV2`` is
            appended when missing); predict uses ``test_transform``.
        expand_temporal_dimension: files hold ``T * len(dataset_bands)`` bands; images become
            ``(C, T, H, W)``.
        reduce_zero_label: label 0 means "unlabelled" (-1, or ``no_label_replace``); other labels
            shift down by one.
        no_data_replace: value for image nodata/NaN pixels (NaNs without it are an error).
        no_label_replace: value for label nodata pixels (None: -1); use it as the task's
            ``ignore_index``.
        drop_last, pin_memory, check_stackability, rgb_indices: see ``GeoTIFFDataModule``.
    """

    dataset_class = GenericNonGeoSegmentationDataset

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        num_classes: int | None = None,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        img_grep: str = "*",
        label_grep: str = "*",
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        predict_data_root: str | Path | None = None,
        train_label_data_root: str | Path | None = None,
        val_label_data_root: str | Path | None = None,
        test_label_data_root: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        dataset_bands: Bands = None,
        output_bands: Bands = None,
        predict_dataset_bands: Bands = None,
        predict_output_bands: Bands = None,
        constant_scale: float = 1,
        rgb_indices: list[int] | None = None,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        no_data_replace: float | None = None,
        no_label_replace: int | None = None,
        embedding_input: bool = False,
        pca_step: int = 4,
        drop_last: bool = True,
        pin_memory: bool = False,
        check_stackability: bool = True,
        tortilla_file: str | Path | None = None,
        return_georeference: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_unsupported(tortilla_file=tortilla_file, return_georeference=return_georeference)
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
            predict_output_bands=predict_output_bands,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            embedding_input=embedding_input,
            pca_step=pca_step,
            **kwargs,
        )
        self._store(locals())
        self.reduce_zero_label = reduce_zero_label
        self.num_classes = num_classes
        self.reduce_zero_label = reduce_zero_label
        self.tortilla_file = tortilla_file
        self.return_georeference = return_georeference

    def extra_dataset_kwargs(self) -> dict[str, Any]:
        """``num_classes`` and ``reduce_zero_label`` for the segmentation dataset."""
        return {"num_classes": self.num_classes, "reduce_zero_label": self.reduce_zero_label}


class GenericNonGeoPixelwiseRegressionDataModule(_PixelWiseDataModule):
    """Pixel-wise regression on GeoTIFF chips with target rasters.

    Batches: ``image`` float32 ``(B, C, H, W)``, ``mask`` float32 ``(B, H, W)``, ``filename``.
    Arguments as :class:`GenericNonGeoSegmentationDataModule` without the class-specific ones;
    target nodata pixels become ``no_label_replace`` (set the task's ``ignore_index`` to it) and
    ``reduce_zero_label`` subtracts 1 from every target, as in the reference.
    """

    dataset_class = GenericNonGeoPixelwiseRegressionDataset

    def __init__(
        self,
        batch_size: int = 4,
        num_workers: int = 0,
        train_data_root: str | Path | None = None,
        val_data_root: str | Path | None = None,
        test_data_root: str | Path | None = None,
        means: list[float] | str | None = None,
        stds: list[float] | str | None = None,
        predict_data_root: str | Path | None = None,
        img_grep: str = "*",
        label_grep: str = "*",
        train_label_data_root: str | Path | None = None,
        val_label_data_root: str | Path | None = None,
        test_label_data_root: str | Path | None = None,
        train_split: str | Path | None = None,
        val_split: str | Path | None = None,
        test_split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        dataset_bands: Bands = None,
        output_bands: Bands = None,
        predict_dataset_bands: Bands = None,
        predict_output_bands: Bands = None,
        constant_scale: float = 1,
        rgb_indices: list[int] | None = None,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        no_data_replace: float | None = None,
        no_label_replace: float | None = None,
        embedding_input: bool = False,
        pca_step: int = 4,
        drop_last: bool = True,
        pin_memory: bool = False,
        check_stackability: bool = True,
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
            predict_output_bands=predict_output_bands,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            embedding_input=embedding_input,
            pca_step=pca_step,
            **kwargs,
        )
        self._store(locals())
        self.reduce_zero_label = reduce_zero_label

    def extra_dataset_kwargs(self) -> dict[str, Any]:
        """``reduce_zero_label`` (targets shift down by one) for the regression dataset."""
        return {"reduce_zero_label": self.reduce_zero_label}


def _check_unsupported(*, tortilla_file: Any, return_georeference: bool) -> None:
    """Refuse the reference's TACO/tortilla input and georeference output (not implemented here).

    Raises:
        NotImplementedError: either option is set, with what to use instead.
    """
    if tortilla_file is not None:
        raise NotImplementedError(
            "tortilla_file: reading TACO/tortilla archives is not supported; extract the GeoTIFFs and "
            "give train/val/test_data_root instead"
        )
    if return_georeference:
        raise NotImplementedError(
            "return_georeference: samples carry 'filename'; read the georeference from that file "
            "(rasterio.open(filename).transform/.crs) instead"
        )
