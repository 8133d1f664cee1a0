"""Segmentation / pixel-regression GeoTIFF datasets: bands, nodata, labels, transforms, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terratorch.datasets import (
    GenericImageDataset,
    GenericNonGeoPixelwiseRegressionDataset,
    GenericNonGeoSegmentationDataset,
)
from terratorch.datasets.utils import GeoTIFFError, write_geotiff

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]


def band_image(h: int = 8, w: int = 8, bands: int = 4) -> np.ndarray:
    """Band b holds the value 100 * (b + 1) everywhere, so band selection is visible in values."""
    return np.stack([np.full((h, w), 100 * (b + 1), dtype=np.int16) for b in range(bands)])


def make_pair(root, stem, image, mask, *, image_nodata=None, mask_nodata=None):
    write_geotiff(root / "img" / f"{stem}_img.tif", image, nodata=image_nodata)
    write_geotiff(root / "lbl" / f"{stem}_mask.tif", mask, nodata=mask_nodata)


def seg_dataset(root, **kwargs):
    defaults = {"img_grep": "*_img.tif", "label_grep": "*_mask.tif", "dataset_bands": BANDS}
    # the reference order: (data_root, num_classes, label_data_root, ...)
    return GenericNonGeoSegmentationDataset(
        root / "img", label_data_root=root / "lbl", **{**defaults, **kwargs}
    )


@pytest.fixture
def seg_root(tmp_path):
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[:, 4:] = 2
    mask[0, 0] = 255
    image = band_image()
    image[:, 1, 1] = -9999
    make_pair(tmp_path, "a", image, mask, image_nodata=-9999, mask_nodata=255)
    make_pair(tmp_path, "b", band_image(), np.ones((8, 8), dtype=np.uint8), mask_nodata=255)
    return tmp_path


def test_sample_shapes_dtypes_and_filename(seg_root):
    ds = seg_dataset(seg_root, num_classes=3)
    assert len(ds) == 2
    sample = ds[0]
    assert sample["image"].shape == (4, 8, 8) and sample["image"].dtype == torch.float32
    assert sample["mask"].shape == (8, 8) and sample["mask"].dtype == torch.int64
    assert sample["filename"].endswith("a_img.tif")


@pytest.mark.parametrize(
    ("output_bands", "expected"),
    [(["GREEN", "BLUE"], [200, 100]), ([[2, 3]], [300, 400]), (["GREEN", 3], [200, 400])],
)
def test_band_selection_by_name_index_and_range(tmp_path, output_bands, expected):
    make_pair(tmp_path, "a", band_image(), np.zeros((8, 8), dtype=np.uint8))
    ds = seg_dataset(tmp_path, dataset_bands=["BLUE", "GREEN", 2, 3], output_bands=output_bands)
    image = ds[0]["image"]
    assert [float(image[c, 0, 0]) for c in range(image.shape[0])] == expected


def test_filter_indices_follow_output_bands(tmp_path):
    make_pair(tmp_path, "a", band_image(), np.zeros((8, 8), dtype=np.uint8))
    mixed = seg_dataset(tmp_path, dataset_bands=[[0, 2], "RED", "BLUE", 7], output_bands=[1, "BLUE", 7])
    assert mixed.filter_indices == [1, 4, 5]
    assert seg_dataset(tmp_path).filter_indices is None  # no output_bands: every band, no filter


def test_constant_scale_and_nodata_replacement(seg_root):
    ds = seg_dataset(seg_root, constant_scale=0.01, no_data_replace=-5.0)
    image, mask = ds[0]["image"], ds[0]["mask"]
    assert torch.all(image[:, 1, 1] == -5.0)
    assert float(image[0, 0, 1]) == pytest.approx(1.0) and float(image[3, 0, 1]) == pytest.approx(4.0)
    assert int(mask[0, 0]) == -1  # label nodata -> default no_label_replace
    assert int(mask[0, 5]) == 2


def test_nodata_kept_without_replacement_and_custom_label_replace(seg_root):
    ds = seg_dataset(seg_root, no_label_replace=99)
    assert float(ds[0]["image"][0, 1, 1]) == -9999.0
    assert int(ds[0]["mask"][0, 0]) == 99


def test_nan_pixels_error_or_replaced(tmp_path):
    image = band_image().astype(np.float32)
    image[2, 3, 3] = np.nan
    make_pair(tmp_path, "a", image, np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"a_img.tif contains NaN pixels; set no_data_replace"):
        seg_dataset(tmp_path)[0]
    replaced = seg_dataset(tmp_path, no_data_replace=0.0)[0]["image"]
    assert float(replaced[2, 3, 3]) == 0.0 and not torch.isnan(replaced).any()


def test_fewer_bands_than_dataset_bands_names_the_file(tmp_path):
    make_pair(tmp_path, "a", band_image(bands=3), np.zeros((8, 8), dtype=np.uint8))
    ds = seg_dataset(tmp_path, output_bands=["BLUE"])
    with pytest.raises(ValueError, match=r"a_img.tif has 3 bands but dataset_bands lists 4"):
        ds[0]


def test_output_bands_not_in_dataset_bands(tmp_path):
    make_pair(tmp_path, "a", band_image(), np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"output_bands=\['SWIR_1'\], dataset_bands=\['BLUE'"):
        seg_dataset(tmp_path, output_bands=["SWIR_1"])
    with pytest.raises(ValueError, match="needs dataset_bands"):
        seg_dataset(tmp_path, dataset_bands=None, output_bands=[1])


def test_label_value_out_of_range_names_file_and_value(tmp_path):
    mask = np.zeros((8, 8), dtype=np.uint8)
    mask[3, 3] = 7
    make_pair(tmp_path, "a", band_image(), mask)
    with pytest.raises(ValueError, match=r"a_mask.tif contains value\(s\) \[7\] outside \[0, 3\)"):
        seg_dataset(tmp_path, num_classes=3)[0]
    assert int(seg_dataset(tmp_path, num_classes=8)[0]["mask"][3, 3]) == 7


def test_reduce_zero_label(tmp_path):
    mask = np.array([[0, 1], [2, 3]], dtype=np.uint8)
    make_pair(tmp_path, "a", band_image(2, 2), mask)
    out = seg_dataset(tmp_path, reduce_zero_label=True, num_classes=3)[0]["mask"]
    assert out.tolist() == [[-1, 0], [1, 2]]


def test_image_label_size_mismatch(tmp_path):
    make_pair(tmp_path, "a", band_image(8, 8), np.zeros((8, 6), dtype=np.uint8))
    with pytest.raises(
        ValueError, match=r"size mismatch: image .*a_img.tif is \(8, 8\).*a_mask.tif is \(8, 6\)"
    ):
        seg_dataset(tmp_path)[0]


def test_image_label_count_mismatch(tmp_path):
    make_pair(tmp_path, "a", band_image(), np.zeros((8, 8), dtype=np.uint8))
    write_geotiff(tmp_path / "img" / "b_img.tif", band_image())
    with pytest.raises(ValueError, match=r"2 images vs 1 labels.*b_img.tif"):
        seg_dataset(tmp_path)


def test_empty_root_names_glob_and_directory(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no files matched img_grep='\*_img.tif' in '.*img'"):
        seg_dataset(tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_tiff_names_the_file(tmp_path, damage):
    noise = np.random.default_rng(0).integers(0, 1000, (4, 64, 64)).astype(np.int16)
    make_pair(tmp_path, "a", noise, np.zeros((64, 64), dtype=np.uint8))
    path = tmp_path / "img" / "a_img.tif"
    data = path.read_bytes()
    path.write_bytes(b"II*\x00" + b"\x00" * 64 if damage == "garbage" else data[: len(data) // 2])
    with pytest.raises(GeoTIFFError, match=r"cannot read GeoTIFF .*a_img.tif"):
        seg_dataset(tmp_path)[0]


def test_split_file_selects_samples(seg_root, tmp_path):
    split = tmp_path / "split.txt"
    split.write_text("b\n")
    ds = seg_dataset(seg_root, split=split)
    assert len(ds) == 1 and ds[0]["filename"].endswith("b_img.tif")
    split.write_text("zzz\n")
    with pytest.raises(FileNotFoundError, match=r"split\.txt"):
        seg_dataset(seg_root, split=split)


def test_files_are_opened_lazily_one_read_per_file(seg_root, monkeypatch):
    import rasterio

    opened = []
    real_open = rasterio.open
    monkeypatch.setattr(
        rasterio, "open", lambda path, *a, **k: opened.append(str(path)) or real_open(path, *a, **k)
    )
    ds = seg_dataset(seg_root)
    assert opened == []  # creating the dataset lists files only
    ds[1]
    assert [p.rsplit("/", 1)[1] for p in opened] == ["b_img.tif", "b_mask.tif"]


def test_transforms_apply_jointly_and_end_as_tensors(tmp_path):
    import albumentations as A
    from albumentations.pytorch import ToTensorV2

    image = np.zeros((2, 4, 4), dtype=np.int16)
    image[:, :, 0] = 5
    mask = np.zeros((4, 4), dtype=np.uint8)
    mask[:, 0] = 1
    make_pair(tmp_path, "a", image, mask)
    flips = (
        [A.HorizontalFlip(p=1.0)],
        [A.HorizontalFlip(p=1.0), ToTensorV2()],
        A.Compose([A.HorizontalFlip(p=1.0)]),
    )
    for transform in flips:
        sample = seg_dataset(tmp_path, dataset_bands=["B1", "B2"], transform=transform)[0]
        assert isinstance(sample["image"], torch.Tensor) and sample["image"].shape == (2, 4, 4)
        assert sample["mask"].dtype == torch.int64
        assert torch.all(sample["image"][:, :, 3] == 5) and torch.all(sample["mask"][:, 3] == 1)
        assert torch.all(sample["mask"][:, 0] == 0)


def test_non_transform_item_is_rejected(tmp_path):
    make_pair(tmp_path, "a", band_image(), np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(TypeError, match=r"transform #0 is 'HorizontalFlip'"):
        seg_dataset(tmp_path, transform=["HorizontalFlip"])


def test_expand_temporal_dimension(tmp_path):
    frames = np.concatenate([band_image(4, 4) + 10 * t for t in range(3)])  # 3 steps x 4 bands
    make_pair(tmp_path, "a", frames, np.zeros((4, 4), dtype=np.uint8))
    ds = seg_dataset(tmp_path, output_bands=["RED", "BLUE"], expand_temporal_dimension=True)
    image = ds[0]["image"]
    assert image.shape == (2, 3, 4, 4)  # (C, T, H, W)
    assert image[:, :, 0, 0].tolist() == [[300, 310, 320], [100, 110, 120]]
    write_geotiff(tmp_path / "img" / "a_img.tif", frames[:10])
    with pytest.raises(ValueError, match="has 10 bands but dataset_bands lists a multiple of 4"):
        ds[0]


def test_pixelwise_regression_mask_float_with_label_nodata(tmp_path):
    target = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    target[0, 0] = -9999.0
    target[1, 1] = np.nan
    make_pair(tmp_path, "a", band_image(4, 4), target, mask_nodata=-9999.0)
    ds = GenericNonGeoPixelwiseRegressionDataset(
        tmp_path / "img", tmp_path / "lbl", img_grep="*_img.tif", label_grep="*_mask.tif"
    )
    mask = ds[0]["mask"]
    assert mask.dtype == torch.float32 and mask.shape == (4, 4)
    assert float(mask[0, 0]) == -1.0 and float(mask[1, 1]) == -1.0
    assert float(mask[3, 3]) == pytest.approx(1.0)


def test_prediction_dataset_has_no_labels(seg_root):
    ds = GenericImageDataset(
        seg_root / "img", img_grep="*_img.tif", dataset_bands=BANDS, output_bands=["RED"]
    )
    sample = ds[0]
    assert set(sample) == {"image", "filename"} and sample["image"].shape == (1, 8, 8)
    assert not ds.has_labels
