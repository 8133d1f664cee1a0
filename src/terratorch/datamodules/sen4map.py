"""Datamodule of the Sen4Map LUCAS monthly composites (HDF5 files, optional pickled key lists)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning import LightningDataModule
from torch.utils.data import DataLoader

from terratorch.datasets.sen4map import Sen4MapDatasetMonthlyComposites, load_keys

logger = logging.getLogger("terratorch")

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "nearest_exact")


class Sen4MapLucasDataModule(LightningDataModule):
    """Land-cover / crop classification on Sen4Map: train/val/test HDF5 files, each with an optional key list.

    Batches are ``image`` ``(B, C, 12, H, W)`` in [0, 1] (the dataset rescales, nothing is
    normalised here) and ``label`` ``(B,)``.

    Args:
        batch_size, num_workers: loader settings.
        prefetch_factor: batches prefetched per worker (used only with workers; the reference
            passes 0, which torch rejects).
        train_hdf5_path, val_hdf5_path, test_hdf5_path: the HDF5 file of each split.
        train_hdf5_keys_path, val_hdf5_keys_path, test_hdf5_keys_path: pickled (or text) key lists;
            without one every group of the file is used (listing them can take minutes).
        train_hdf5_keys_save_path, val_hdf5_keys_save_path, test_hdf5_keys_save_path: where to
            save the key lists generated without a keys file.
        shuffle: shuffle the training batches (``train_shuffle`` overrides it); ``val_shuffle``,
            ``test_shuffle`` for the other splits.
        train_data_fraction, val_data_fraction, test_data_fraction: use the first fraction of the
            key lists (needs the keys file).
        all_hdf5_data_path: one file for all splits; the train keys minus the val and test keys
            make the training set.
        resize, resize_to, resize_interpolation, resize_antialiasing: resize the composites.
        crop_size, dataset_bands, input_bands, reverse_tile, reverse_tile_size,
            classification_map: passed to :class:`Sen4MapDatasetMonthlyComposites`.
        kwargs: further dataset arguments (the reference forwards them the same way).
    """

    def __init__(
        self,
        batch_size: int,
        num_workers: int,
        prefetch_factor: int = 0,
        train_hdf5_path: str | None = None,
        train_hdf5_keys_path: str | None = None,
        test_hdf5_path: str | None = None,
        test_hdf5_keys_path: str | None = None,
        val_hdf5_path: str | None = None,
        val_hdf5_keys_path: str | None = None,
        train_hdf5_keys_save_path: str | None = None,
        test_hdf5_keys_save_path: str | None = None,
        val_hdf5_keys_save_path: str | None = None,
        shuffle: bool | None = None,
        train_shuffle: bool | None = None,
        val_shuffle: bool | None = None,
        test_shuffle: bool | None = None,
        train_data_fraction: float = 1.0,
        val_data_fraction: float = 1.0,
        test_data_fraction: float = 1.0,
        all_hdf5_data_path: str | None = None,
        resize: bool = False,
        resize_to: list[int] | None = None,
        resize_interpolation: str | None = None,
        resize_antialiasing: bool = True,
        crop_size: int | None = None,
        dataset_bands: list[Any] | None = None,
        input_bands: list[Any] | None = None,
        reverse_tile: bool = False,
        reverse_tile_size: int = 3,
        classification_map: str = "land-cover",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.train_hdf5_keys_path = train_hdf5_keys_path
        self.val_hdf5_keys_path = val_hdf5_keys_path
        self.test_hdf5_keys_path = test_hdf5_keys_path
        self.train_hdf5_keys_save_path = train_hdf5_keys_save_path
        self.val_hdf5_keys_save_path = val_hdf5_keys_save_path
        self.test_hdf5_keys_save_path = test_hdf5_keys_save_path
        self.shuffle = shuffle
        self.train_shuffle = train_shuffle if train_shuffle is not None else bool(shuffle)
        self.val_shuffle = bool(val_shuffle)
        self.test_shuffle = bool(test_shuffle)
        self.fractions = {"train": train_data_fraction, "val": val_data_fraction, "test": test_data_fraction}
        for split, fraction in self.fractions.items():
            if fraction != 1.0 and not getattr(self, f"{split}_hdf5_keys_path"):
                raise ValueError(
                    f"{split}_data_fraction={fraction} needs {split}_hdf5_keys_path (the fraction is taken "
                    "from the key list)"
                )
        self.reduce_train_keys = all_hdf5_data_path is not None
        if self.reduce_train_keys:
            given = [
                k
                for k, v in (("train", train_hdf5_path), ("val", val_hdf5_path), ("test", test_hdf5_path))
                if v
            ]
            if given:
                raise ValueError(
                    f"all_hdf5_data_path is given, so remove {', '.join(f'{k}_hdf5_path' for k in given)} "
                    "(one file serves every split)"
                )
            train_hdf5_path = val_hdf5_path = test_hdf5_path = all_hdf5_data_path
        self.train_hdf5_path, self.val_hdf5_path, self.test_hdf5_path = (
            train_hdf5_path,
            val_hdf5_path,
            test_hdf5_path,
        )
        if resize and resize_to is None:
            raise ValueError("resize: true needs resize_to (e.g. [224, 224])")
        if resize_interpolation is not None and resize_interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"resize_interpolation {resize_interpolation!r} must be one of {list(_INTERPOLATIONS)}"
            )
        self.resize = resize
        self.resize_to = resize_to
        self.resize_interpolation = resize_interpolation or "bilinear"
        self.resize_antialiasing = resize_antialiasing
        self.dataset_options = {
            "crop_size": crop_size,
            "dataset_bands": dataset_bands,
            "input_bands": input_bands,
            "reverse_tile": reverse_tile,
            "reverse_tile_size": reverse_tile_size,
            "classification_map": classification_map,
            **kwargs,
        }
        self.kwargs = kwargs
        self.lucasS2_train: Sen4MapDatasetMonthlyComposites | None = None
        self.lucasS2_val: Sen4MapDatasetMonthlyComposites | None = None
        self.lucasS2_test: Sen4MapDatasetMonthlyComposites | None = None

    # The generic names, for code that looks for ``<split>_dataset``.
    train_dataset = property(lambda self: self.lucasS2_train)
    val_dataset = property(lambda self: self.lucasS2_val)
    test_dataset = property(lambda self: self.lucasS2_test)

    def _keys(self, split: str) -> list[str] | None:
        path = getattr(self, f"{split}_hdf5_keys_path")
        return load_keys(path, self.fractions[split]) if path else None

    def _dataset(self, split: str, keys: list[str] | None) -> Sen4MapDatasetMonthlyComposites:
        path = getattr(self, f"{split}_hdf5_path")
        if path is None:
            raise ValueError(f"{split}_hdf5_path (or all_hdf5_data_path) is required for the {split} split")
        if not Path(path).is_file():
            raise FileNotFoundError(f"{split}_hdf5_path: HDF5 file {str(path)!r} does not exist")
        if keys is None:
            logger.info(
                "listing the groups of %s (no %s_hdf5_keys_path given); this can take minutes", path, split
            )
        return Sen4MapDatasetMonthlyComposites(
            path,
            h5data_keys=keys,
            resize=self.resize,
            resize_to=self.resize_to if self.resize_to is not None else (224, 224),
            resize_interpolation=self.resize_interpolation,
            resize_antialiasing=self.resize_antialiasing,
            save_keys_path=getattr(self, f"{split}_hdf5_keys_save_path"),
            **self.dataset_options,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the train and val files for ``fit``, the test file for ``test`` (``validate``: val only)."""
        if stage in ("fit", "validate", None):
            val_keys = self._keys("val")
            if stage != "validate":
                train_keys = self._keys("train")
                if self.reduce_train_keys:
                    if train_keys is None:
                        raise ValueError(
                            "all_hdf5_data_path needs train_hdf5_keys_path (all keys of the file)"
                        )
                    held_out = set(val_keys or []) | set(self._keys("test") or [])
                    train_keys = [k for k in train_keys if k not in held_out]
                self.lucasS2_train = self._dataset("train", train_keys)
            self.lucasS2_val = self._dataset("val", val_keys)
        if stage in ("test", None):
            self.lucasS2_test = self._dataset("test", self._keys("test"))

    def _loader(self, dataset: Any, split: str, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"no {split} dataset: call setup() with the stage that uses it first")
        extra = (
            {"prefetch_factor": self.prefetch_factor} if self.num_workers > 0 and self.prefetch_factor else {}
        )
        return DataLoader(
            dataset, batch_size=self.batch_size, num_workers=self.num_workers, shuffle=shuffle, **extra
        )

    def train_dataloader(self) -> DataLoader:
        """Training batches (shuffled with ``shuffle``/``train_shuffle``)."""
        return self._loader(self.lucasS2_train, "train", self.train_shuffle)

    def val_dataloader(self) -> DataLoader:
        """Validation batches."""
        return self._loader(self.lucasS2_val, "val", self.val_shuffle)

    def test_dataloader(self) -> DataLoader:
        """Test batches."""
        return self._loader(self.lucasS2_test, "test", self.test_shuffle)
