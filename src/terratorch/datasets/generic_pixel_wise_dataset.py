"""GeoTIFF datasets with a label raster per image: semantic segmentation and pixel-wise regression.

Samples are dicts: ``image`` float32 ``(C, H, W)`` (or ``(C, T, H, W)``), ``mask`` ``(H, W)``
(int64 class ids for segmentation, float32 values for regression), ``filename`` (the image path).
Without a label root the labels are looked for beside the images; :class:`GenericImageDataset` is the
prediction dataset (``image`` and ``filename`` only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from terratorch.datasets.generic_base import GenericGeoTIFFDataset
from terratorch.datasets.utils import (
    BandSpec,
    filter_split,
    find_files,
    pair_images_labels,
    read_raster,
    read_split_file,
)


class GenericPixelWiseDataset(GenericGeoTIFFDataset):
    """Images under ``data_root`` paired with label rasters under ``label_data_root``.

    Args:
        data_root: directory holding the images.
        label_data_root: directory holding the labels; None means the labels sit beside the images
            in ``data_root`` (``label_grep`` tells them apart).
        image_grep: glob selecting images in ``data_root``, e.g. ``"*_merged.tif"``; ``img_grep``
            (the datamodules' name) is accepted too.
        label_grep: glob selecting labels; an image pairs with the label whose ``*`` part matches.
        split: optional file listing the samples to use (one per line).
        ignore_split_file_extensions: compare split entries and file names without their last
            extension (``a.jpg`` selects ``a.tif``).
        allow_substring_split_file: a split entry selects every file whose name contains it
            (False: names must equal an entry).
        rgb_indices: positions of red, green, blue among the output bands (plots).
        no_label_replace: value written over label pixels equal to the label file's nodata/NaN
            (None: -1, see :attr:`label_fill_value`).
        embedding_input, pca_step: the images are embeddings (plots project them with PCA fitted
            on every ``pca_step``-th pixel); kept for plotting, reading is unchanged.
        Other arguments: see :class:`GenericGeoTIFFDataset`.
    """

    mask_dtype: type = np.float32
    # False for the prediction dataset: no labels are looked for.
    reads_labels: bool = True

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        image_grep: str = "*",
        label_grep: str = "*",
        split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        rgb_indices: list[int] | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        constant_scale: float = 1,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: float | None = None,
        embedding_input: bool = False,
        pca_step: int = 4,
        expand_temporal_dimension: bool = False,
        *,
        img_grep: str | None = None,
    ) -> None:
        img_grep = img_grep if img_grep is not None else image_grep
        self.img_grep = img_grep
        self.rgb_indices = [0, 1, 2] if rgb_indices is None else list(rgb_indices)
        self.embedding_input = embedding_input
        self.pca_step = pca_step
        super().__init__(
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.no_label_replace = no_label_replace
        split_stems = read_split_file(split) if split is not None else None
        images = filter_split(
            find_files(data_root, img_grep),
            img_grep,
            split_stems,
            ignore_extensions=ignore_split_file_extensions,
            allow_substring=allow_substring_split_file,
        )
        if not images:
            raise FileNotFoundError(
                f"split: none of the files matching {img_grep!r} in {str(data_root)!r} is in {split}"
            )
        if label_data_root is None and self.reads_labels:
            label_data_root = data_root  # labels beside the images
        if label_data_root is None:
            self.samples: list[tuple[Path, Path | None]] = [(image, None) for image in images]
        else:
            labels = find_files(label_data_root, label_grep, key="label_data_root", grep_key="label_grep")
            self.samples = list(pair_images_labels(images, labels, img_grep=img_grep, label_grep=label_grep))

    @property
    def label_fill_value(self) -> float:
        """Value of label nodata/NaN pixels: ``no_label_replace``, or -1 when it is None.

        The reference leaves them as NaN when ``no_label_replace`` is None, which turns into an
        arbitrary class id once cast; -1 is the usual ``ignore_index`` instead.
        """
        return self.no_label_replace if self.no_label_replace is not None else -1

    @property
    def has_labels(self) -> bool:
        """False for a prediction dataset (no label root)."""
        return bool(self.samples) and self.samples[0][1] is not None

    def __len__(self) -> int:
        return len(self.samples)

    def load_mask(self, index: int) -> np.ndarray:
        """Read the label raster of sample ``index`` as an ``(H, W)`` array (nodata replaced)."""
        path = self.samples[index][1]
        read = read_raster(path, lambda count: [1])
        mask = read.data[0].astype(self.mask_dtype)
        nodata = read.nodata
        if nodata is not None:
            mask[nodata[0]] = self.label_fill_value
        return self.check_mask(mask, path)

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """Validate/adjust a label array; subclasses override (the base returns it unchanged)."""
        return mask

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, label_path = self.samples[index]
        image, _ = self.load_image(image_path)
        mask = None
        if label_path is not None:
            mask = self.load_mask(index)
            if mask.shape != image.shape[-2:]:
                raise ValueError(
                    f"size mismatch: image {image_path} is {tuple(image.shape[-2:])} (H, W) but label "
                    f"{label_path} is {tuple(mask.shape)}"
                )
        image_t, mask_t = self.apply_transform(image, mask)
        sample: dict[str, Any] = {"image": image_t, "filename": str(image_path)}
        if mask_t is not None:
            sample["mask"] = self.finish_mask(mask_t)
        return sample

    def finish_mask(self, mask: Any) -> Any:
        """Final dtype of the mask tensor (float32 here)."""
        return mask.float()


class GenericNonGeoSegmentationDataset(GenericPixelWiseDataset):
    """Semantic segmentation chips: ``mask`` is ``(H, W)`` int64 class ids.

    Args:
        num_classes: when given, every label value (other than ``no_label_replace``) must be in
            ``[0, num_classes)``; a violation is an error naming the file and the value, raised at
            read time instead of a device-side assert deep in the loss.
        reduce_zero_label: treat label 0 as "unlabelled" (mapped to ``no_label_replace``, -1 by
            default, as the reference's subtraction of 1 gives) and shift the other labels down by one.
        class_names: names of the classes (plots).
        tortilla_df, tortilla_indices, return_georeference: the reference's TACO input and
            georeference output; not supported (setting them raises NotImplementedError).
        Other arguments: see :class:`GenericPixelWiseDataset`.
    """

    mask_dtype = np.int64

    def __init__(
        self,
        data_root: str | Path,
        num_classes: int | None = None,
        label_data_root: str | Path | None = None,
        image_grep: str = "*",
        label_grep: str = "*",
        split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        rgb_indices: list[int] | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        class_names: list[str] | None = None,
        constant_scale: float = 1,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: int | None = None,
        embedding_input: bool = False,
        pca_step: int = 4,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        tortilla_df: Any = None,
        tortilla_indices: list[Any] | None = None,
        return_georeference: bool = False,
        *,
        img_grep: str | None = None,
    ) -> None:
        if tortilla_df is not None or tortilla_indices is not None or return_georeference:
            raise NotImplementedError(
                "tortilla_df/tortilla_indices/return_georeference are not supported: give data_root with "
                "GeoTIFFs, and read georeferences from each sample's 'filename'"
            )
        super().__init__(
            data_root,
            label_data_root,
            image_grep=image_grep,
            img_grep=img_grep,
            label_grep=label_grep,
            split=split,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            rgb_indices=rgb_indices,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            no_label_replace=no_label_replace,
            embedding_input=embedding_input,
            pca_step=pca_step,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.num_classes = num_classes
        self.reduce_zero_label = reduce_zero_label
        self.class_names = class_names

    @property
    def ignore_value(self) -> int:
        """The label value that marks unlabelled pixels (``no_label_replace``, default -1)."""
        return int(self.no_label_replace) if self.no_label_replace is not None else -1

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """Apply ``reduce_zero_label`` and check that labels fit ``num_classes``.

        Raises:
            ValueError: a label value outside ``[0, num_classes)`` (names the file and the value).
        """
        ignore = self.ignore_value
        if self.reduce_zero_label:
            zero = mask == 0
            mask = np.where(mask == ignore, ignore, mask - 1)
            mask[zero] = ignore
        if self.num_classes is not None and not self._labels_in_range(mask, ignore):
            valid = mask != ignore
            bad = valid & ((mask < 0) | (mask >= self.num_classes))
            if bad.any():
                values = sorted({int(v) for v in np.unique(mask[bad])})
                raise ValueError(
                    f"label file {path} contains value(s) {values[:10]} outside [0, {self.num_classes}) "
                    f"(num_classes={self.num_classes}); fix num_classes, set the file's nodata value, or use "
                    f"reduce_zero_label / no_label_replace={ignore} for unlabelled pixels"
                )
        return mask

    def _labels_in_range(self, mask: np.ndarray, ignore: int) -> bool:
        """Cheap check (min/max only) that holds for nearly every valid mask."""
        low, high = int(mask.min()), int(mask.max())
        return high < self.num_classes and (low >= 0 or (low == ignore == -1))

    def apply_transform(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[Any, Any]:
        """As the base, but masks travel through albumentations as int32 (OpenCV has no int64)."""
        if mask is not None and self.transform is not None:
            mask = mask.astype(np.int32)
        return super().apply_transform(image, mask)

    def finish_mask(self, mask: Any) -> Any:
        """Segmentation masks are int64 class ids."""
        return mask.long()


class GenericNonGeoPixelwiseRegressionDataset(GenericPixelWiseDataset):
    """Pixel-wise regression chips: ``mask`` is ``(H, W)`` float32 target values.

    Label pixels equal to the label file's nodata (or NaN) become ``no_label_replace``; set the
    task's ``ignore_index`` to the same value so they do not count in the loss.

    Args:
        reduce_zero_label: subtract 1 from every target value (as the reference does).
        Other arguments: see :class:`GenericPixelWiseDataset`.
    """

    mask_dtype = np.float32

    def __init__(
        self,
        data_root: str | Path,
        label_data_root: str | Path | None = None,
        image_grep: str = "*",
        label_grep: str = "*",
        split: str | Path | None = None,
        ignore_split_file_extensions: bool = True,
        allow_substring_split_file: bool = True,
        rgb_indices: list[int] | None = None,
        dataset_bands: BandSpec | None = None,
        output_bands: BandSpec | None = None,
        constant_scale: float = 1,
        transform: Any = None,
        no_data_replace: float | None = None,
        no_label_replace: float | None = None,
        embedding_input: bool = False,
        pca_step: int = 4,
        expand_temporal_dimension: bool = False,
        reduce_zero_label: bool = False,
        *,
        img_grep: str | None = None,
    ) -> None:
        super().__init__(
            data_root,
            label_data_root,
            image_grep=image_grep,
            img_grep=img_grep,
            label_grep=label_grep,
            split=split,
            ignore_split_file_extensions=ignore_split_file_extensions,
            allow_substring_split_file=allow_substring_split_file,
            rgb_indices=rgb_indices,
            dataset_bands=dataset_bands,
            output_bands=output_bands,
            constant_scale=constant_scale,
            transform=transform,
            no_data_replace=no_data_replace,
            no_label_replace=no_label_replace,
            embedding_input=embedding_input,
            pca_step=pca_step,
            expand_temporal_dimension=expand_temporal_dimension,
        )
        self.reduce_zero_label = reduce_zero_label

    def check_mask(self, mask: np.ndarray, path: Path) -> np.ndarray:
        """Apply ``reduce_zero_label`` (targets shift down by one)."""
        return mask - 1 if self.reduce_zero_label else mask


class GenericImageDataset(GenericPixelWiseDataset):
    """Images only (``image`` + ``filename``): the prediction dataset of every generic datamodule."""

    reads_labels = False

    def __init__(self, data_root: str | Path, **kwargs: Any) -> None:
        kwargs.pop("label_data_root", None)
        for key in ("label_grep", "no_label_replace", "num_classes", "reduce_zero_label", "class_names"):
            kwargs.pop(key, None)
        super().__init__(data_root, None, **kwargs)
