"""Base of the datamodules of named benchmark datasets (one ``data_root``, fixed splits and statistics).

Subclasses say which dataset class serves them, which dataset split each stage reads and which
arguments the dataset gets; loaders, batching and normalisation (once, on the device, after the
batch is transferred, as the reference's ``aug``) live here.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from terratorch.datamodules.base import collate_samples
from terratorch.datasets.named_base import compose_named_transforms

TransformList = list[Callable] | Callable | None
"""Type of the ``*_transform`` arguments: albumentations objects (jsonargparse instantiates them)."""

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def band_statistics(table: dict[str, Any], bands: Sequence[str], dataset: str, what: str) -> list[Any]:
    """The statistics of ``bands`` from ``table`` (band -> value); a missing band raises ValueError."""
    names = [str(getattr(b, "value", b)) for b in bands]
    missing = [b for b in names if b not in table]
    if missing:
        raise ValueError(f"{dataset}: no {what} for band(s) {missing}; the dataset's bands are {list(table)}")
    return [table[b] for b in names]


class ChannelNormalize:
    """``(x - mean) / std`` with statistics per channel ``(C,)`` or per channel and time step ``(C, T)``.

    The channel axis is axis 1 of a batch (``(B, C, ...)``); ``(C, T)`` statistics broadcast over
    ``(B, C, T, H, W)``.
    """

    def __init__(self, means: Sequence[Any], stds: Sequence[Any]) -> None:
        self.means = torch.as_tensor(means, dtype=torch.float32)
        self.stds = torch.as_tensor(stds, dtype=torch.float32)
        if self.means.shape != self.stds.shape:
            raise ValueError(
                f"means {tuple(self.means.shape)} and stds {tuple(self.stds.shape)} differ in shape"
            )
        if (self.stds <= 0).any():
            raise ValueError(f"stds must be > 0, got {self.stds.tolist()}")

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Normalise a batch ``(B, C, ...)``; returns a new float tensor."""
        stat_dims = self.means.ndim
        if image.ndim < 2 + stat_dims - 1 or image.shape[1 : 1 + stat_dims] != self.means.shape:
            raise ValueError(
                f"image of shape {tuple(image.shape)} does not match statistics of shape "
                f"{tuple(self.means.shape)} (expected (B, {', '.join(map(str, self.means.shape))}, ...))"
            )
        shape = [1, *self.means.shape] + [1] * (image.ndim - 1 - stat_dims)
        dtype = image.dtype if image.is_floating_point() else torch.float32
        mean = self.means.to(device=image.device, dtype=dtype).view(shape)
        std = self.stds.to(device=image.device, dtype=dtype).view(shape)
        return (image.to(dtype) - mean) / std


class NamedNonGeoDataModule(LightningDataModule):
    """Shared loaders and normalisation of the named datamodules.

    Args:
        batch_size: samples per batch (all splits).
        num_workers: DataLoader worker processes.
        drop_last: drop the last incomplete training batch.
        normalizers: batch key -> :class:`ChannelNormalize` (usually just ``image``).
        aug: a callable taking and returning the whole batch dict, used instead of ``normalizers``
            (the reference's ``aug``, e.g. a kornia ``AugmentationSequential(..., data_keys=None)``).
        kwargs: accepted like the reference's ``**kwargs`` and ignored with a warning.
    """

    dataset_class: type[Dataset]
    #: dataset split read by each datamodule split (the reference tests on ``val`` where no test exists).
    dataset_splits: dict[str, str] = {"train": "train", "val": "val", "test": "test", "predict": "test"}

    def __init__(
        self,
        *,
        batch_size: int = 4,
        num_workers: int = 0,
        drop_last: bool = True,
        normalizers: dict[str, ChannelNormalize] | None = None,
        aug: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            warnings.warn(
                f"{type(self).__name__}: ignoring unknown argument(s) {sorted(kwargs)}",
                UserWarning,
                stacklevel=3,
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.kwargs = kwargs
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.drop_last = drop_last
        self.normalizers = dict(normalizers or {})
        self._custom_aug = aug
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    def dataset_kwargs(self, split: str) -> dict[str, Any]:
        """Constructor arguments of the dataset of datamodule split ``split`` besides ``split``."""
        raise NotImplementedError

    def transform_for(self, split: str) -> Any:
        """The transforms configured for ``split`` (``<split>_transform``)."""
        return getattr(self, f"{split}_transform", None)

    def set_transforms(self, **transforms: Any) -> None:
        """Store ``<split>_transform`` attributes as callables (a list becomes one ``Compose``, as there)."""
        for name, value in transforms.items():
            setattr(self, name, compose_named_transforms(value))

    @property
    def aug(self) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """The batch normaliser ``batch -> batch`` (the reference's attribute; a given ``aug`` replaces it).

        An unbatched image ``(C, H, W)`` comes back as ``(1, C, H, W)``, as from the reference's kornia
        normaliser, so scripts that normalise transformed windows one at a time keep working.
        """
        return self._custom_aug if self._custom_aug is not None else self._normalize_batch

    def _normalize_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        batch = dict(batch)
        for key, normalizer in self.normalizers.items():
            value = batch.get(key)
            if isinstance(value, torch.Tensor):
                if value.ndim == 2 + normalizer.means.ndim:  # unbatched (C, H, W) / (C, T, H, W) stats
                    value = value.unsqueeze(0)
                batch[key] = normalizer(value)
        return batch

    def setup(self, stage: str | None = None) -> None:
        """Create the datasets of ``stage`` (all stages when None)."""
        splits = _STAGE_SPLITS.get(stage, ()) if stage else ("train", "val", "test", "predict")
        for split in splits:
            dataset = self.dataset_class(split=self.dataset_splits[split], **self.dataset_kwargs(split))
            setattr(self, f"{split}_dataset", dataset)

    def _loader(self, split: str) -> DataLoader:
        dataset = getattr(self, f"{split}_dataset")
        if dataset is None:
            raise RuntimeError(f"no {split} dataset: call setup() with the stage that uses it first")
        train = split == "train"
        if train and self.drop_last and len(dataset) < self.batch_size:
            raise ValueError(
                f"the train split has {len(dataset)} samples but batch_size={self.batch_size} and "
                "drop_last=True, so no batch would be produced; lower batch_size or set drop_last: false"
            )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train,
            num_workers=self.num_workers,
            drop_last=train and self.drop_last,
            collate_fn=partial(collate_samples, check_stackability=True),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        """Validation batches in file order."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches in file order."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Prediction batches in file order."""
        return self._loader("predict")

    def normalize(self, image: torch.Tensor, key: str = "image") -> torch.Tensor:
        """Normalise a batch of ``key`` (identity when the datamodule has no statistics for it)."""
        normalizer = self.normalizers.get(key)
        return normalizer(image) if normalizer is not None else image

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise the batch's images on the device (the only place normalisation happens)."""
        return self.aug(dict(batch)) if isinstance(batch, dict) else batch
