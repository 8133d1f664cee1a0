"""The twelve GEO-Bench v1 datamodules on tiny data in GEO-Bench's layout (``make_geobench_demo``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from terratorch.datamodules import geobench_data_module as gdm
from terratorch.datasets.geobench import GEOBENCH_DATASETS
from terratorch.datasets.geobench_demo import make_geobench_demo

SIZE = 16
SAMPLES = 2


@pytest.fixture(scope="module")
def geobench_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every task, two 16 px samples per split, default and 0.01x_train partitions."""
    root = tmp_path_factory.mktemp("geobench")
    make_geobench_demo(root, n_samples=SAMPLES, size=SIZE)
    return root


@pytest.mark.parametrize("task", sorted(gdm.GEOBENCH_DATAMODULES))
def test_batches_per_partition_and_split(geobench_root: Path, task: str) -> None:
    dataset_class = GEOBENCH_DATASETS[task]
    channels = len(dataset_class.default_bands())
    for partition, train_size in (("default", SAMPLES), ("0.01x_train", 1)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # m-SA-crop-type ships a zero std
            datamodule = gdm.GEOBENCH_DATAMODULES[task](
                data_root=str(geobench_root / dataset_class.benchmark),
                batch_size=SAMPLES,
                partition=partition,
            )
        datamodule.setup("fit")
        datamodule.setup("test")
        datamodule.setup("predict")
        assert len(datamodule.train_dataset) == train_size
        for loader in (datamodule.train_dataloader, datamodule.val_dataloader, datamodule.test_dataloader):
            batch = datamodule.on_after_batch_transfer(next(iter(loader())), 0)
            size = len(batch["image"])
            assert batch["image"].shape == (size, channels, SIZE, SIZE)
            assert batch["image"].dtype == torch.float32 and torch.isfinite(batch["image"]).all()
            if dataset_class.label_kind == "segmentation":
                assert batch["mask"].shape == (size, SIZE, SIZE) and batch["mask"].dtype == torch.long
            elif dataset_class.label_kind == "multilabel":
                assert batch["label"].shape == (size, 43) and batch["label"].dtype == torch.float32
            else:
                assert batch["label"].shape == (size,) and batch["label"].dtype == torch.long
                assert int(batch["label"].max()) < dataset_class.num_classes
        assert len(next(iter(datamodule.predict_dataloader()))["image"]) == SAMPLES


def test_metadata_and_band_selection(geobench_root: Path) -> None:
    datamodule = gdm.MForestNetNonGeoDataModule(
        data_root=str(geobench_root), bands=["RED", "NIR"], use_metadata=True, batch_size=2
    )
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image"].shape == (2, 2, SIZE, SIZE)
    assert batch["temporal_coords"].shape == (2, 1, 2) and batch["location_coords"].shape == (2, 2)
    means, _ = gdm._REFERENCE_STATISTICS["MForestNetNonGeoDataModule"]
    torch.testing.assert_close(datamodule.means, torch.tensor([means["RED"], means["NIR"]]))
    normalised = datamodule.on_after_batch_transfer(dict(batch), 0)["image"]
    expected = (batch["image"] - datamodule.means.view(1, -1, 1, 1)) / datamodule.stds.view(1, -1, 1, 1)
    torch.testing.assert_close(normalised, expected)


def test_band_stats_statistics_and_custom_aug(geobench_root: Path) -> None:
    datamodule = gdm.MEuroSATNonGeoDataModule(
        data_root=str(geobench_root), means="band_stats", stds="band_stats", batch_size=6
    )
    datamodule.setup("fit")
    image = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)["image"]
    assert abs(float(image.mean())) < 0.2 and abs(float(image.std()) - 1) < 0.2

    def mark(batch: dict) -> dict:
        return {**batch, "aug": True}

    marked = gdm.MEuroSATNonGeoDataModule(data_root=str(geobench_root), aug=mark)
    assert marked.on_after_batch_transfer({"image": torch.zeros(1)}, 0)["aug"] is True
    with pytest.warns(UserWarning, match=r"band\(s\) \['CLOUD_PROBABILITY'\] have std 0"):
        gdm.MSACropTypeNonGeoDataModule(data_root=str(geobench_root))
    with pytest.raises(ValueError, match="unknown band 'NIR'"):
        gdm.MEuroSATNonGeoDataModule(data_root=str(geobench_root), bands=["NIR"])


def test_reference_per_dataset_module_paths_resolve_to_our_classes():
    """``terratorch.datamodules.m_eurosat.MEuroSATNonGeoDataModule`` (a TerraTorch 1.2 config path) works."""
    import importlib

    from terratorch.datamodules import geobench_data_module
    from terratorch.datasets import geobench

    module = importlib.import_module("terratorch.datamodules.m_eurosat")
    assert module is geobench_data_module
    assert module.MEuroSATNonGeoDataModule is geobench_data_module.MEuroSATNonGeoDataModule
    from terratorch.datasets.m_cashew_plantation import MBeninSmallHolderCashewsNonGeo

    assert MBeninSmallHolderCashewsNonGeo is geobench.MBeninSmallHolderCashewsNonGeo
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("terratorch.datamodules.m_not_a_dataset")
