"""The named datasets of the Prithvi-EO-2.0 fine-tuning release, on tiny copies of their real layouts."""

from __future__ import annotations

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
import rasterio
import torch
from tests.prithvi_release_data import WRITERS


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("prithvi_release")
    return {name: writer(base / name) for name, writer in WRITERS.items()}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def test_sen1floods11_scales_selects_bands_and_reads_metadata(roots):
    from terratorch.datasets.sen1floods11 import Sen1Floods11NonGeo

    root = roots["sen1floods11"]
    dataset = Sen1Floods11NonGeo(root, split="train", bands=["SWIR_2", "GREEN"], use_metadata=True)
    assert len(dataset) == 2 and dataset.image_files[0].name == "Ghana_101_S2Hand.tif"
    sample = dataset[0]
    raw = _read(dataset.image_files[0])
    expected = np.nan_to_num(raw[[12, 2]], nan=0).astype(np.float32) * 0.0001
    torch.testing.assert_close(sample["image"], torch.from_numpy(expected))
    assert sample["image"][1, 3, 4] == 0  # the NaN pixel became no_data_replace
    assert sample["mask"].dtype == torch.int64 and set(sample["mask"].unique().tolist()) <= {-1, 0, 1}
    # Ghana has two metadata rows: the reference falls back to 1998-10-13 (day 286 -> 285)
    assert sample["temporal_coords"].tolist() == [[1998.0, 285.0]]
    india = Sen1Floods11NonGeo(root, split="val", use_metadata=True)[0]
    assert india["temporal_coords"].tolist() == [[2016.0, 224.0]]
    lat, lon = india["location_coords"].tolist()
    assert lat == pytest.approx(8.0 - 8.5e-4, abs=1e-5) and lon == pytest.approx(12.0 + 8.5e-4, abs=1e-5)


def test_sen1floods11_bad_input_names_what_was_expected(roots, tmp_path):
    from terratorch.datasets.sen1floods11 import Sen1Floods11NonGeo

    with pytest.raises(ValueError, match=r"\[.NIR.\] are not available.*COASTAL_AEROSOL.*mean NIR_BROAD"):
        Sen1Floods11NonGeo(roots["sen1floods11"], bands=["RED", "NIR"])
    with pytest.raises(ValueError, match=r"unknown split 'valid'.*\['train', 'val', 'test'\]"):
        Sen1Floods11NonGeo(roots["sen1floods11"], split="valid")
    with pytest.raises(FileNotFoundError, match=r"S2Hand image directory at .*HandLabeled/S2Hand"):
        Sen1Floods11NonGeo(tmp_path)


def test_multi_temporal_crop_unstacks_time_before_picking_bands(roots):
    from terratorch.datasets.multi_temporal_crop_classification import MultiTemporalCropClassification

    root = roots["multi_temporal_crop"]
    dataset = MultiTemporalCropClassification(
        root, bands=["RED", "SWIR_2"], no_data_replace=0, use_metadata=True
    )
    sample = dataset[0]
    raw = _read(dataset.image_files[0]).astype(np.float32)
    raw[raw == -9999] = 0
    expected = raw.reshape(3, 6, 16, 16)[:, [2, 5]].transpose(1, 0, 2, 3)  # (C, T, H, W)
    torch.testing.assert_close(sample["image"], torch.from_numpy(np.ascontiguousarray(expected)))
    mask = _read(dataset.segmentation_mask_files[0])[0].astype(np.int64) - 1  # reduce_zero_label
    torch.testing.assert_close(sample["mask"], torch.from_numpy(mask))
    assert sample["temporal_coords"].tolist() == [[2022, 59], [2022, 160], [2022, 272]]
    lat, lon = sample["location_coords"].tolist()
    assert 37.0 < lat < 38.5 and -94.0 < lon < -92.0  # UTM 15N, 4200 km north
    flat = MultiTemporalCropClassification(root, bands=["RED", "SWIR_2"], expand_temporal_dimension=False)[0]
    assert flat["image"].shape == (6, 16, 16) and torch.isnan(flat["image"]).sum() == 0
    time_major = expected.transpose(1, 0, 2, 3).reshape(6, 16, 16)
    np.testing.assert_array_equal(np.nan_to_num(flat["image"].numpy(), nan=0), time_major)
    with pytest.raises(ValueError, match="unknown split 'test'"):
        MultiTemporalCropClassification(root, split="test")


def test_multi_temporal_crop_missing_split_file(roots, tmp_path):
    from terratorch.datasets.multi_temporal_crop_classification import MultiTemporalCropClassification

    (tmp_path / "training_chips").mkdir()
    with pytest.raises(FileNotFoundError, match=r"train split file at .*training_data.txt"):
        MultiTemporalCropClassification(tmp_path)


def test_fire_scars_pairs_by_chip_and_reads_dates(roots):
    from terratorch.datasets.fire_scars import FireScarsNonGeo

    dataset = FireScarsNonGeo(roots["fire_scars"], use_metadata=True)
    sample = dataset[1]
    assert sample["image"].shape == (6, 16, 16) and sample["mask"].dtype == torch.int64
    assert sample["temporal_coords"].tolist() == [[2019.0, 201.0]]
    assert sample["mask"][0, 0] == -1  # nodata label -> no_label_replace
    assert dataset.segmentation_mask_files[1].name.endswith("T11SKA.2019201.v1.4.mask.tif")


def test_burn_intensity_stacks_three_steps_and_filters_cases(roots):
    from terratorch.datasets.burn_intensity import BurnIntensityNonGeo

    root = roots["burn_intensity"]
    dataset = BurnIntensityNonGeo(root, bands=["NIR", "BLUE"], use_metadata=True)
    sample = dataset[0]
    assert sample["image"].shape == (2, 3, 16, 16) and sample["mask"].shape == (16, 16)
    during = _read(root / "during" / "HLS_fire_a.tif")
    torch.testing.assert_close(sample["image"][:, 1], torch.from_numpy(during[[3, 0]].astype(np.float32)))
    y, x = sample["location_coords"].tolist()
    assert x == pytest.approx(300000 + 8 * 30) and y == pytest.approx(5000000 - 8 * 30)
    assert len(BurnIntensityNonGeo(root, use_full_data=False)) == 1  # only fire_a of the train cases


def test_landslide4sense_reads_hdf5_and_pairs_masks(roots, tmp_path):
    from terratorch.datasets.landslide4sense import Landslide4SenseNonGeo

    root = roots["landslide4sense"]
    sample = Landslide4SenseNonGeo(root, split="val", bands=["DEM", "COASTAL AEROSOL"])[0]
    with h5py.File(root / "images" / "validation" / "image_3.h5") as file:
        expected = np.asarray(file["img"])[..., [13, 0]].astype(np.float32).transpose(2, 0, 1)
    torch.testing.assert_close(sample["image"], torch.from_numpy(np.ascontiguousarray(expected)))
    assert sample["mask"].dtype == torch.int64
    (root / "annotations" / "test" / "mask_4.h5").rename(tmp_path / "gone.h5")
    try:
        with pytest.raises(FileNotFoundError, match=r"no matching mask_<n>.h5 .* \['image_4.h5'\]"):
            Landslide4SenseNonGeo(root, split="test")
    finally:
        (tmp_path / "gone.h5").rename(root / "annotations" / "test" / "mask_4.h5")


def test_biomassters_sensors_months_and_linear_s1(roots):
    from terratorch.datasets.biomassters import BioMasstersNonGeo

    root = str(roots["biomassters"])
    both = BioMasstersNonGeo(root, bands={"S1": ["VV_Asc", "RVI_Desc"], "S2": ["RED"]})
    assert len(both) == 4  # 2 chips x 2 months
    sample = both[0]
    assert sample["S1"].shape == (2, 16, 16) and sample["S2"].shape == (1, 16, 16)
    rows = both.df[(both.df["num_index"] == 0) & (both.df["satellite"] == "S1")]
    db = _read(Path(root) / "train_features" / rows["filename"].item())
    linear = 10 ** (db.astype(np.float64) / 10)
    rvi = 4 * linear[3] / (linear[2] + linear[3] + 1e-6)
    np.testing.assert_allclose(sample["S1"][0].numpy(), linear[0], rtol=1e-5)
    np.testing.assert_allclose(sample["S1"][1].numpy(), rvi, rtol=1e-4)
    target = _read(Path(root) / "train_agbm" / "aa01_agbm.tif")[0]
    torch.testing.assert_close(sample["mask"], torch.from_numpy(target))
    series = BioMasstersNonGeo(root, split="test", sensors=["S2"], bands=["GREEN"], as_time_series=True)
    assert len(series) == 1 and series[0]["image"].shape == (1, 2, 16, 16)
    assert len(BioMasstersNonGeo(root, sensors=["S2"], bands=["RED"], subset=0.5)) == 2
    with pytest.raises(ValueError, match=r"\['NIR'\] are not available.*NIR_BROAD"):
        BioMasstersNonGeo(root, sensors=["S2"], bands=["NIR"])


def test_sen4map_composites_labels_and_keys(roots, tmp_path):
    from terratorch.datasets.sen4map import Sen4MapDatasetMonthlyComposites, load_keys

    root = roots["sen4map"]
    dataset = Sen4MapDatasetMonthlyComposites(
        str(root / "train.h5"), h5data_keys=load_keys(root / "train_keys.pkl")
    )
    sample = dataset[1]
    assert (
        sample["image"].shape == (10, 12, 16, 16) and 0 <= sample["image"].min() <= sample["image"].max() <= 1
    )
    assert sample["label"].dtype == torch.int64 and sample["label"].item() == 4  # C10: broadleaved woodland
    with h5py.File(root / "train.h5") as file:
        record = file["p101"][()]
    clear = record["SCL"] < 9
    b4 = np.where(clear, record["B4"], 0).astype(np.float32)
    march = torch.from_numpy(b4[1:3]).median(dim=0).values  # acquisitions 1, 2 are March
    expected = ((march - 93.27) / (3214.5 - 93.27 + np.exp(-12.0))).clip(0, 1)
    torch.testing.assert_close(sample["image"][2, 2], expected.float())
    crops = Sen4MapDatasetMonthlyComposites(str(root / "train.h5"), classification_map="crops")
    assert crops[0]["label"].item() == 0  # B11: cereals
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(ValueError, match="only hold a list of strings"):
        load_keys(evil)
    with pytest.raises(ValueError, match="classification_map 'crop' must be one of"):
        Sen4MapDatasetMonthlyComposites(str(root / "train.h5"), classification_map="crop")
