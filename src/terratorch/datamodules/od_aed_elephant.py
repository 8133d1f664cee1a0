"""Datamodule of the AED elephants: large aerial images tiled for detection.

The training images are tiled (tiles without elephants are left out) and split into train/val
with a seeded generator; the validation images of ``ann_file_val`` become the test set (all
tiles, empty ones too), as in the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, random_split

from terratorch.datasets.object_detection import collate_detection
from terratorch.datasets.od_aed_elephant import ElephantCocoDataset
from terratorch.datasets.od_tiled_dataset_wrapper import TiledDataset


class ElephantDataModule(LightningDataModule):
    """AED elephants for ``ObjectDetectionTask``.

    Args:
        img_folder_train, ann_file_train: training images and their COCO file.
        img_folder_val, ann_file_val: held-out images and their COCO file (the test set).
        min_size: ``(min_height, min_width)``: smaller images are skipped (the reference reads the
            pair in this order; a warning counts the skipped images).
        tile_size: ``(height, width)`` of the tiles.
        overlap: pixels shared by neighbouring tiles.
        batch_size, num_workers: DataLoader settings.
        train_test_split: fraction of the training tiles used for training (the rest: validation).
        tile_cache_test, tile_cache_train: tile cache folders, or None to cut tiles on the fly.
        seed: seed of the train/val split (the reference's split is unseeded, so it changed from
            run to run).
        invalid_boxes: ``"error"`` or ``"clip"`` for boxes outside their image.

    Raises:
        ValueError: ``train_test_split`` outside [0, 1].
    """

    def __init__(
        self,
        img_folder_train: str | Path,
        ann_file_train: str | Path,
        img_folder_val: str | Path,
        ann_file_val: str | Path,
        min_size: tuple[int, int] = (5472, 3648),
        tile_size: tuple[int, int] = (512, 512),
        overlap: int = 128,
        batch_size: int = 8,
        num_workers: int = 8,
        train_test_split: float = 0.8,
        tile_cache_test: str | Path | None = "tile_cache_test",
        tile_cache_train: str | Path | None = "tile_cache_train",
        seed: int = 0,
        invalid_boxes: str = "error",
    ) -> None:
        if not 0.0 <= train_test_split <= 1.0:
            raise ValueError(f"train_test_split must be between 0 and 1, got {train_test_split}")
        super().__init__()
        self.img_folder_train, self.ann_file_train = img_folder_train, ann_file_train
        self.img_folder_val, self.ann_file_val = img_folder_val, ann_file_val
        self.min_size = tuple(min_size)
        self.tile_size = tuple(tile_size)
        self.overlap = overlap
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_test_split = train_test_split
        self.tile_cache_test = tile_cache_test
        self.tile_cache_train = tile_cache_train
        self.seed = seed
        self.invalid_boxes = invalid_boxes
        self.dataset_train: Dataset | None = None
        self.dataset_val: Dataset | None = None
        self.dataset_test: Dataset | None = None

    def _tiles(self, folder: str | Path, ann_file: str | Path, cache: Any, skip_empty: bool) -> TiledDataset:
        return TiledDataset(
            ElephantCocoDataset(folder, ann_file, invalid_boxes=self.invalid_boxes),
            cache_dir=cache,
            tile_size=self.tile_size,
            overlap=self.overlap,
            min_size=self.min_size,
            skip_empty_boxes=skip_empty,
        )

    def setup(self, stage: str | None = None) -> None:
        """Tile the images (once; later calls reuse the datasets)."""
        if stage in ("fit", "validate", None) and self.dataset_train is None:
            tiles = self._tiles(self.img_folder_train, self.ann_file_train, self.tile_cache_train, True)
            train_size = int(self.train_test_split * len(tiles))
            generator = torch.Generator().manual_seed(self.seed)
            self.dataset_train, self.dataset_val = random_split(
                tiles, [train_size, len(tiles) - train_size], generator=generator
            )
        if stage in ("test", None) and self.dataset_test is None:
            self.dataset_test = self._tiles(
                self.img_folder_val, self.ann_file_val, self.tile_cache_test, False
            )

    def detection_collate_fn(self, batch: list[dict[str, Any]]) -> dict[str, Any]:
        """Images stacked ``(B, C, H, W)``, boxes and labels as per-tile lists."""
        return collate_detection(batch)

    def _loader(self, dataset: Dataset | None, name: str, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"no {name} dataset: call setup() first")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=collate_detection,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training tiles."""
        return self._loader(self.dataset_train, "train", True)

    def val_dataloader(self) -> DataLoader:
        """Validation tiles."""
        return self._loader(self.dataset_val, "val", False)

    def test_dataloader(self) -> DataLoader:
        """Test tiles (the ``ann_file_val`` images)."""
        return self._loader(self.dataset_test, "test", False)
