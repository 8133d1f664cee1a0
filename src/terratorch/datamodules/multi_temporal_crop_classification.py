"""Datamodule of the HLS multi-temporal crop classification chips."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terratorch.datamodules.named_base import (
    ChannelNormalize,
    NamedNonGeoDataModule,
    TransformList,
    band_statistics,
)
from terratorch.datasets.multi_temporal_crop_classification import MultiTemporalCropClassification

# Statistics of the stored values (HLS reflectance x 10000), per band, shared by the 3 time steps.
MEANS = {
    "BLUE": 494.905781,
    "GREEN": 815.239594,
    "RED": 924.335066,
    "NIR_NARROW": 2968.881459,
    "SWIR_1": 2634.621962,
    "SWIR_2": 1739.579917,
}
STDS = {
    "BLUE": 284.925432,
    "GREEN": 357.84876,
    "RED": 575.566823,
    "NIR_NARROW": 896.601013,
    "SWIR_1": 951.900334,
    "SWIR_2": 921.407808,
}


class MultiTemporalCropClassificationDataModule(NamedNonGeoDataModule):
    """Crop segmentation over 3 time steps: train and val splits; test and predict read val.

    Images are ``(B, C, 3, H, W)`` with ``expand_temporal_dimension`` (the default) and
    ``(B, 3*C, H, W)`` without; either way each band is normalised with its statistics.

    Args:
        data_root: the dataset root.
        batch_size, num_workers, drop_last: loader settings.
        bands: bands to use per time step, a subset of :attr:`MultiTemporalCropClassification.all_band_names`.
        train_transform, val_transform, test_transform, predict_transform: albumentations transforms
            (for ``(T, H, W, C)`` images use ``FlattenTemporalIntoChannels`` ... ``ToTensorV2``,
            ``UnflattenTemporalFromChannels``).
        no_data_replace, no_label_replace, expand_temporal_dimension, reduce_zero_label,
            use_metadata, metadata_file_name: see the dataset.
        kwargs: ignored with a warning.
    """

    dataset_class = MultiTemporalCropClassification
    dataset_splits = {"train": "train", "val": "val", "test": "val", "predict": "val"}

    def __init__(
        self,
        data_root: str,
        batch_size: int = 4,
        num_workers: int = 0,
        bands: Sequence[str] = MultiTemporalCropClassification.all_band_names,
        train_transform: TransformList = None,
        val_transform: TransformList = None,
        test_transform: TransformList = None,
        predict_transform: TransformList = None,
        drop_last: bool = True,
        no_data_replace: float | None = 0,
        no_label_replace: int | None = -1,
        expand_temporal_dimension: bool = True,
        reduce_zero_label: bool = True,
        use_metadata: bool = False,
        metadata_file_name: str = "chips_df.csv",
        **kwargs: Any,
    ) -> None:
        self.bands = list(bands)
        means = band_statistics(MEANS, self.bands, "MultiTemporalCropClassificationDataModule", "mean")
        stds = band_statistics(STDS, self.bands, "MultiTemporalCropClassificationDataModule", "std")
        if not expand_temporal_dimension:  # (B, T*C, H, W), time-major
            steps = MultiTemporalCropClassification.time_steps
            means, stds = means * steps, stds * steps
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            drop_last=drop_last,
            normalizers={"image": ChannelNormalize(means, stds)},
            **kwargs,
        )
        self.data_root = data_root
        self.means, self.stds = means, stds
        self.set_transforms(
            train_transform=train_transform,
            val_transform=val_transform,
            test_transform=test_transform,
            predict_transform=predict_transform,
        )
        self.no_data_replace = no_data_replace
        self.no_label_replace = no_label_replace
        self.expand_temporal_dimension = expand_temporal_dimension
        self.reduce_zero_label = reduce_zero_label
        self.use_metadata = use_metadata
        self.metadata_file_name = metadata_file_name

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Arguments of the dataset of ``split``."""
        return {
            "data_root": self.data_root,
            "bands": self.bands,
            "transform": self.transform_for(split),
            "no_data_replace": self.no_data_replace,
            "no_label_replace": self.no_label_replace,
            "expand_temporal_dimension": self.expand_temporal_dimension,
            "reduce_zero_label": self.reduce_zero_label,
            "use_metadata": self.use_metadata,
            "metadata_file_name": self.metadata_file_name,
        }
