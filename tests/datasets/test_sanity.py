"""Data sanity at setup: image/label grids must agree, images that hold no data are reported."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine

from terratorch.datamodules import GenericNonGeoClassificationDataModule, GenericNonGeoSegmentationDataModule
from terratorch.datasets import sanity
from terratorch.datasets.utils import write_geotiff

UTM = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_000_000.0)


def _pair(root, name, *, image=None, label_crs=32633, label_transform=UTM, label_size=8, nodata=None):
    rng = np.random.default_rng(len(name))
    data = rng.random((3, 8, 8), dtype=np.float32) if image is None else image
    write_geotiff(root / "img" / f"{name}_img.tif", data, nodata=nodata, transform=UTM)
    mask = rng.integers(0, 2, (label_size, label_size)).astype(np.uint8)
    write_geotiff(root / "lbl" / f"{name}_mask.tif", mask, crs=label_crs, transform=label_transform)


def _datamodule(root, **kwargs):
    return GenericNonGeoSegmentationDataModule(
        batch_size=1,
        num_workers=0,
        train_data_root=root / "img",
        train_label_data_root=root / "lbl",
        img_grep="*_img.tif",
        label_grep="*_mask.tif",
        num_classes=2,
        **kwargs,
    )


def test_spread_picks_first_last_and_evenly_between():
    assert sanity.spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert sanity.spread([1, 2], 8) == [1, 2]
    assert sanity.spread(list(range(5)), 1) == [0]


def test_aligned_pairs_pass_and_float_noise_in_the_transform_is_tolerated(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b", label_transform=Affine(30.0, 0.0, 500_000.0 + 1e-9, 0.0, -30.0, 5_000_000.0))
    _datamodule(tmp_path).setup("fit")


def test_label_in_another_crs_names_both_files_and_crs(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b", label_crs=4326, label_transform=Affine(0.0003, 0, 15.0, 0, -0.0003, 45.0))
    with pytest.raises(ValueError, match="CRS mismatch") as info:
        _datamodule(tmp_path).setup("fit")
    message = str(info.value)
    assert "b_img.tif" in message and "b_mask.tif" in message
    assert "EPSG:32633" in message and "EPSG:4326" in message and message.startswith("train split")


def test_shifted_label_footprint_is_an_error(tmp_path):
    _pair(tmp_path, "a", label_transform=Affine(30.0, 0.0, 500_300.0, 0.0, -30.0, 5_000_000.0))
    with pytest.raises(ValueError, match="footprint mismatch") as info:
        _datamodule(tmp_path).setup("fit")
    assert "500300" in str(info.value) and "a_mask.tif" in str(info.value)


def test_label_of_another_size_is_an_error_at_setup(tmp_path):
    _pair(tmp_path, "a", label_size=6)
    with pytest.raises(ValueError, match=r"size mismatch.*8x8.*6x6"):
        _datamodule(tmp_path).setup("fit")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_label_without_crs_is_compared_by_size_only(tmp_path):
    _pair(tmp_path, "a")
    import rasterio

    path = tmp_path / "lbl" / "plain_mask.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=8, width=8, count=1, dtype="uint8"
    ) as dst:  # no CRS, no transform
        dst.write(np.zeros((1, 8, 8), dtype=np.uint8))
    write_geotiff(tmp_path / "img" / "plain_img.tif", np.ones((3, 8, 8), np.float32), transform=UTM)
    _datamodule(tmp_path).setup("fit")


def test_some_empty_images_warn_with_count_and_names(tmp_path):
    nan = np.full((3, 8, 8), np.nan, dtype=np.float32)
    _pair(tmp_path, "a", image=nan)
    _pair(tmp_path, "b")
    _pair(tmp_path, "c", image=np.full((3, 8, 8), -9999, dtype=np.float32), nodata=-9999)
    with pytest.warns(sanity.DataSanityWarning, match=r"2 of 3 sampled images hold no data") as record:
        _datamodule(tmp_path, no_data_replace=0).setup("fit")
    assert "a_img.tif" in str(record[0].message) and "c_img.tif" in str(record[0].message)


def test_every_sampled_image_empty_is_an_error(tmp_path):
    for name in ("a", "b"):
        _pair(tmp_path, name, image=np.full((3, 8, 8), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="all 2 sampled images hold no data") as info:
        _datamodule(tmp_path, no_data_replace=0).setup("fit")
    assert "a_img.tif" in str(info.value)


def test_sparse_image_is_not_reported(tmp_path):
    sparse = np.full((3, 256, 256), np.nan, dtype=np.float32)
    sparse[:, 101, 37] = 1.0  # outside the first window, missed by the decimated read, found by the full one
    write_geotiff(tmp_path / "img" / "s_img.tif", sparse, transform=UTM)
    assert sanity.check_empty_images([tmp_path / "img" / "s_img.tif"]) == []


def test_only_the_selected_bands_count(tmp_path):
    image = np.ones((3, 8, 8), dtype=np.float32)
    image[1:] = np.nan  # bands 2 and 3 empty, band 1 valid
    for name in ("a", "b"):
        _pair(tmp_path, name, image=image)
    bands = {"dataset_bands": ["BLUE", "GREEN", "RED"], "no_data_replace": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error", sanity.DataSanityWarning)
        _datamodule(tmp_path, **bands).setup("fit")
    with pytest.raises(ValueError, match="hold no data"):
        _datamodule(tmp_path, output_bands=["GREEN", "RED"], **bands).setup("fit")


def test_classification_datamodule_checks_empty_images(tmp_path):
    for cls in ("x", "y"):
        write_geotiff(tmp_path / cls / f"{cls}.tif", np.full((3, 8, 8), np.nan, np.float32), transform=UTM)
    datamodule = GenericNonGeoClassificationDataModule(
        batch_size=1, num_workers=0, train_data_root=tmp_path, num_classes=2
    )
    with pytest.raises(ValueError, match="all 2 sampled images hold no data"):
        datamodule.setup("fit")


def test_module_switch_and_environment_turn_the_checks_off(tmp_path, monkeypatch):
    _pair(tmp_path, "a", label_crs=4326)
    monkeypatch.setattr(sanity, "ENABLED", False)
    _datamodule(tmp_path).setup("fit")
    monkeypatch.setattr(sanity, "ENABLED", True)
    monkeypatch.setenv("TERRATORCH_DATA_CHECKS", "0")
    _datamodule(tmp_path).setup("fit")
    monkeypatch.setenv("TERRATORCH_DATA_CHECKS", "1")
    with pytest.raises(ValueError, match="CRS mismatch"):
        _datamodule(tmp_path).setup("fit")


def test_sample_size_is_bounded(tmp_path, monkeypatch):
    for index in range(12):
        _pair(tmp_path, f"s{index:02d}")
    opened = []
    real = sanity._read_header
    monkeypatch.setattr(sanity, "_read_header", lambda path: opened.append(path) or real(path))
    monkeypatch.setattr(sanity, "HEADER_SAMPLE", 4)
    _datamodule(tmp_path).setup("fit")
    assert len(opened) == 8  # 4 pairs, image + label
    assert opened[0].name == "s00_img.tif" and opened[-1].name == "s11_mask.tif"


def test_unchanged_files_that_passed_are_not_read_again(tmp_path, monkeypatch):
    _pair(tmp_path, "a")
    opened = []
    real = sanity._read_header
    monkeypatch.setattr(sanity, "_read_header", lambda path: opened.append(path) or real(path))
    _datamodule(tmp_path).setup("fit")
    assert len(opened) == 2
    _datamodule(tmp_path).setup("fit")  # a benchmark sets up the same split for every trial
    assert len(opened) == 2
    _pair(tmp_path, "a", label_crs=4326)  # rewritten: checked again
    with pytest.raises(ValueError, match="CRS mismatch"):
        _datamodule(tmp_path).setup("fit")
