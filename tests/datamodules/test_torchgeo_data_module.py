"""TorchNonGeoDataModule / TorchGeoDataModule wrapping torchgeo datamodules built offline in tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from terratorch.datamodules.torchgeo_data_module import (
    TorchGeoDataModule,
    TorchNonGeoDataModule,
    build_dict_transform,
    resolve_datamodule_class,
)

torchgeo_datasets = pytest.importorskip("torchgeo.datasets")
from torchgeo.datamodules import GeoDataModule, NonGeoDataModule  # noqa: E402


class TinySegmentation(torchgeo_datasets.NonGeoDataset):
    """Eight 4-band 16 px chips with ``(1, H, W)`` masks, split-dependent, transform applied per sample."""

    def __init__(self, split: str = "train", transforms: Any = None, size: int = 16) -> None:
        generator = torch.Generator().manual_seed({"train": 0, "val": 1, "test": 2}[split])
        self.images = torch.rand(8, 4, size, size, generator=generator) * 255
        self.masks = torch.randint(0, 3, (8, 1, size, size), generator=generator)
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = {"image": self.images[index], "mask": self.masks[index]}
        return self.transforms(sample) if self.transforms is not None else sample


class TinySegmentationDataModule(NonGeoDataModule):
    """A torchgeo NonGeoDataModule with its own normalisation (mean 100, std 50)."""

    mean = torch.tensor(100.0)
    std = torch.tensor(50.0)

    def __init__(self, batch_size: int = 1, num_workers: int = 0, **kwargs: Any) -> None:
        super().__init__(TinySegmentation, batch_size, num_workers, **kwargs)


def test_nongeo_wrapper_batches_transforms_and_normalisation() -> None:
    import albumentations as A

    datamodule = TorchNonGeoDataModule(
        TinySegmentationDataModule, batch_size=4, transforms=[A.HorizontalFlip(p=1.0)]
    )
    assert datamodule.batch_size == 4 and datamodule.dataset_class is TinySegmentation  # forwarded
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    plain = TinySegmentation("val")
    assert batch["image"].shape == (4, 4, 16, 16)
    torch.testing.assert_close(batch["image"][0], plain[0]["image"].flip(-1))
    torch.testing.assert_close(batch["mask"][0], plain[0]["mask"].flip(-1)[0])

    class Stage:  # the running-stage flags torchgeo's on_after_batch_transfer reads
        training, validating, sanity_checking, testing, predicting = False, True, False, False, False

    datamodule.trainer = Stage()
    out = datamodule.on_after_batch_transfer(dict(batch), 0)
    torch.testing.assert_close(out["image"], (batch["image"] - 100.0) / 50.0)
    assert out["mask"].shape == (4, 16, 16) and out["mask"].dtype == torch.long


def test_kornia_transforms_and_mixing_error() -> None:
    import albumentations as A
    import kornia.augmentation as K

    flip = build_dict_transform([K.RandomHorizontalFlip(p=1.0)])
    sample = TinySegmentation("test")[0]
    out = flip({"image": sample["image"].clone(), "mask": sample["mask"].float()})
    torch.testing.assert_close(out["image"], sample["image"].flip(-1))
    with pytest.raises(TypeError, match="mixes kornia and albumentations"):
        build_dict_transform([K.RandomHorizontalFlip(), A.HorizontalFlip()])


def test_resolution_by_name_and_close_matches() -> None:
    from torchgeo.datamodules import EuroSATDataModule

    assert resolve_datamodule_class("EuroSATDataModule") is EuroSATDataModule
    assert resolve_datamodule_class("torchgeo.datamodules.EuroSATDataModule") is EuroSATDataModule
    with pytest.raises(
        ValueError, match=r"no datamodule 'EuroSatDataModule'.*did you mean \['EuroSATDataModule'"
    ):
        TorchNonGeoDataModule("EuroSatDataModule")


def _write_raster(path: Path, origin_x: float) -> None:
    import rasterio
    from rasterio.transform import from_origin

    data = (np.arange(3 * 64 * 64, dtype=np.float32).reshape(3, 64, 64) % 251) + origin_x
    profile = {
        "driver": "GTiff",
        "height": 64,
        "width": 64,
        "count": 3,
        "dtype": "float32",
        "crs": "EPSG:32633",
        "transform": from_origin(500000 + origin_x, 4000000, 10, 10),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


class TinyRaster(torchgeo_datasets.RasterDataset):
    """GeoTIFF scenes under ``paths``; ``split`` is accepted because GeoDataModule.setup passes it."""

    filename_glob = "*.tif"

    def __init__(self, split: str = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)


class TinyRasterDataModule(GeoDataModule):
    def __init__(
        self, batch_size: int = 1, patch_size: int = 16, length: int | None = 6, **kwargs: Any
    ) -> None:
        super().__init__(TinyRaster, batch_size, patch_size, length, **kwargs)


def test_geo_wrapper_with_raster_dataset_and_sampler(tmp_path: Path) -> None:
    import albumentations as A

    for position, origin in enumerate((0.0, 640.0)):
        _write_raster(tmp_path / f"scene_{position}.tif", origin)
    datamodule = TorchGeoDataModule(
        TinyRasterDataModule,
        batch_size=3,
        patch_size=16,
        length=6,
        paths=str(tmp_path),
        transforms=[A.VerticalFlip(p=1.0)],
    )
    assert datamodule.patch_size == 16 and datamodule.length == 6
    datamodule.setup("fit")
    batches = list(datamodule.train_dataloader())
    assert len(batches) == 2
    assert batches[0]["image"].shape == (3, 3, 16, 16)
    assert batches[0]["image"].dtype == torch.float32
    datamodule.setup("test")
    grid = next(iter(datamodule.test_dataloader()))
    assert grid["image"].shape[1:] == (3, 16, 16)
