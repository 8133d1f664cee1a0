"""GEO-Bench-2 wrappers plugged onto stand-ins that behave like its datamodules (no geobench_v2)."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from terratorch.datamodules.geobench_v2_data_module import (
    GeoBenchV2ClassificationDataModule,
    GeoBenchV2ObjectDetectionDataModule,
    GeoBenchV2SegmentationDataModule,
    geobench_v2_attribute,
)


class StandInDataModule:
    """Records its arguments; loaders yield one batch; the device-side step applies train augmentations."""

    dataset_class = object

    def __init__(self, num_workers: int = 0, batch_size: int = 2, **kwargs: Any) -> None:
        self.num_workers = num_workers
        self.batch_size = batch_size
        self.kwargs = kwargs
        self.collate_fn = "stand-in collate"
        self.trainer = None
        self.setup_stages: list[str] = []

    def setup(self, stage: str) -> None:
        self.setup_stages.append(stage)

    def _loader(self, split: str) -> DataLoader:
        images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
        data = [{"image": images[i], "mask": torch.ones(1, 4, 4), "split": split} for i in range(2)]
        return DataLoader(data, batch_size=self.batch_size)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        augment = self.kwargs["train_augmentations"]
        return augment(batch) if callable(augment) and self.trainer is not None else batch

    def _valid_attribute(self, *args: str) -> str:
        return args[0]

    def visualize_batch(self, batch: Any = None, split: str = "train") -> str:
        return f"figure of {split}"


class StandInSegmentationAugmentation:
    def __init__(self, transforms: Any) -> None:
        self.transforms = transforms

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        return self.transforms(batch)


@pytest.fixture
def fake_geobench_v2(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    package = types.ModuleType("geobench_v2")
    module = types.ModuleType("geobench_v2.datamodules")
    module.GeoBenchEuroSATDataModule = StandInDataModule
    module.MultiModalSegmentationAugmentation = StandInSegmentationAugmentation
    module.MultiTemporalSegmentationAugmentation = StandInSegmentationAugmentation
    package.datamodules = module
    monkeypatch.setitem(sys.modules, "geobench_v2", package)
    monkeypatch.setitem(sys.modules, "geobench_v2.datamodules", module)
    return module


def test_classification_plug_in_by_name(fake_geobench_v2: types.ModuleType) -> None:
    import kornia.augmentation as K

    datamodule = GeoBenchV2ClassificationDataModule(
        "GeoBenchEuroSATDataModule",
        img_size=4,
        band_order=[{"s2": ["B04", "B03"]}, {"s1": ["VV"]}],
        batch_size=2,
        train_augmentations=[K.RandomHorizontalFlip(p=1.0)],
        predict_loader="val",
        root="/data",
    )
    proxy = datamodule._proxy
    assert isinstance(proxy, StandInDataModule)
    assert proxy.kwargs["band_order"] == {"s2": ["B04", "B03"], "s1": ["VV"]}
    assert proxy.kwargs["img_size"] == 4 and proxy.kwargs["root"] == "/data"
    assert proxy.kwargs["eval_augmentations"] == "default"
    assert datamodule.collate_fn == "stand-in collate" and datamodule.dataset_class is object
    datamodule.setup("fit")
    assert proxy.setup_stages == ["fit"]
    assert next(iter(datamodule.predict_dataloader()))["split"] == ["val"] * 2
    batch = next(iter(datamodule.train_dataloader()))
    datamodule.trainer = object()
    out = datamodule.on_after_batch_transfer(dict(batch), 0)
    torch.testing.assert_close(out["image"], batch["image"].flip(-1))
    assert out["mask"].shape == (2, 4, 4) and out["mask"].dtype == torch.long
    assert datamodule.plot(split="val") == "figure of val"
    assert datamodule._valid_attribute("train_aug", "aug") == "train_aug"


def test_segmentation_and_detection_wrappers(fake_geobench_v2: types.ModuleType) -> None:
    import kornia.augmentation as K

    segmentation = GeoBenchV2SegmentationDataModule(
        StandInDataModule,
        img_size=4,
        band_order=["B02"],
        train_augmentations=[K.VideoSequential(), K.RandomVerticalFlip(p=1.0)],
        rename_modalities={"s2": "image"},
    )
    train = segmentation._proxy.kwargs["train_augmentations"]
    assert isinstance(train, StandInSegmentationAugmentation)
    temporal = GeoBenchV2SegmentationDataModule(
        StandInDataModule, img_size=4, band_order=["B02"], train_augmentations=[K.VideoSequential()]
    )
    assert isinstance(temporal._proxy.kwargs["train_augmentations"], StandInSegmentationAugmentation)
    detection = GeoBenchV2ObjectDetectionDataModule(
        "GeoBenchEuroSATDataModule",
        root="/data",
        img_size=8,
        band_order=["r", "g", "b"],
        categories=["tree"],
        eval_batch_size=3,
        collate_fn=list,
    )
    assert detection._proxy.kwargs["eval_batch_size"] == 3 and detection._proxy.collate_fn is list
    assert detection.categories == ["tree"] and detection.plot_indexes == [0, 1, 2]


def test_bad_arguments_and_missing_package(
    fake_geobench_v2: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ValueError, match="must be one of \\['default', 'multi_temporal_default'\\]"):
        GeoBenchV2ClassificationDataModule(StandInDataModule, 4, ["B02"], train_augmentations="strong")
    with pytest.raises(ValueError, match="predict_loader must be one of"):
        GeoBenchV2ClassificationDataModule(StandInDataModule, 4, ["B02"], predict_loader="validation")
    with pytest.raises(ValueError, match="did you mean \\['GeoBenchEuroSATDataModule'\\]"):
        GeoBenchV2ClassificationDataModule("GeoBenchEurosatDataModule", 4, ["B02"])
    monkeypatch.setitem(sys.modules, "geobench_v2.datamodules", None)
    with pytest.raises(ImportError, match=r"terratorch\[geobenchv2\]"):
        geobench_v2_attribute("MultiModalSegmentationAugmentation")
