"""compute_statistics: streaming per-band mean/std (nodata excluded) and label histograms."""

from __future__ import annotations

import numpy as np
import pytest

from terratorch.datasets import GenericNonGeoSegmentationDataset, compute_statistics
from terratorch.datasets.demo import make_demo_dataset
from terratorch.datasets.statistics import BandAccumulator, format_statistics
from terratorch.datasets.utils import write_geotiff


def test_accumulator_matches_numpy_over_uneven_images():
    rng = np.random.default_rng(0)
    images = [rng.normal(1000.0, 3.0, size=(2, h, 5)) for h in (1, 7, 3)]
    nodata = [np.zeros(img.shape, dtype=bool) for img in images]
    nodata[1][0, 2:4] = True
    acc = BandAccumulator()
    for image, mask in zip(images, nodata):
        acc.add(image, mask)
    flat = [np.concatenate([img[b][~m[b]] for img, m in zip(images, nodata)]) for b in range(2)]
    means, stds = acc.result()
    np.testing.assert_allclose(means, [f.mean() for f in flat], rtol=1e-12)
    np.testing.assert_allclose(stds, [f.std() for f in flat], rtol=1e-9)
    with pytest.raises(ValueError, match="no images"):
        BandAccumulator().result()


def test_segmentation_statistics_exclude_nodata_and_ignore_transforms(tmp_path):
    import albumentations as A

    images = [np.arange(32, dtype=np.int16).reshape(2, 4, 4) + 100 * i for i in range(3)]
    images[0][:, 0, 0] = -1
    masks = [np.full((4, 4), i % 2, dtype=np.uint8) for i in range(3)]
    masks[2][0, :] = 255
    for i, (image, mask) in enumerate(zip(images, masks)):
        write_geotiff(tmp_path / "img" / f"s{i}_img.tif", image, nodata=-1)
        write_geotiff(tmp_path / "lbl" / f"s{i}_mask.tif", mask, nodata=255)
    dataset = GenericNonGeoSegmentationDataset(
        tmp_path / "img",
        label_data_root=tmp_path / "lbl",
        img_grep="*_img.tif",
        label_grep="*_mask.tif",
        constant_scale=0.5,
        no_data_replace=0.0,
        transform=[A.RandomCrop(2, 2)],
    )
    stats = compute_statistics(dataset)
    valid = [np.concatenate([img[b].ravel()[img[b].ravel() != -1] for img in images]) * 0.5 for b in range(2)]
    np.testing.assert_allclose(stats["means"], [v.mean() for v in valid])
    np.testing.assert_allclose(stats["stds"], [v.std() for v in valid])
    assert stats["num_samples"] == 3 and stats["bands"] is None
    assert stats["label_histogram"] == {0: 16 + 12, 1: 16}


def test_datamodule_uses_train_split_and_matches_demo_statistics(tmp_path):
    info = make_demo_dataset(tmp_path, "classification", n_train=6, n_val=3, n_test=1, size=16)
    stats = compute_statistics(info.make_datamodule())
    np.testing.assert_allclose(stats["means"], info.means, atol=1e-6)
    np.testing.assert_allclose(stats["stds"], info.stds, atol=1e-6)
    assert stats["num_samples"] == 6 and stats["bands"] == info.band_names
    assert stats["label_histogram"] == {0: 2, 1: 2, 2: 2}
    text = format_statistics(stats)
    assert text.startswith("means:\n") and "stds:" in text


def test_regression_and_multilabel_histograms(tmp_path):
    info = make_demo_dataset(tmp_path / "r", "scalar_regression", n_train=5, n_val=1, n_test=1, size=8)
    hist = compute_statistics(info.make_datamodule())["label_histogram"]
    targets = [float(line.split(",")[1]) for line in info.label_file.read_text().splitlines()[1:6]]
    assert sum(hist["counts"]) == 5 and len(hist["bin_edges"]) == 21
    assert hist["min"] == pytest.approx(min(targets)) and hist["max"] == pytest.approx(max(targets))
    info = make_demo_dataset(tmp_path / "m", "multilabel", n_train=5, n_val=1, n_test=1, size=8)
    rows = [line.split(",")[1:] for line in info.label_file.read_text().splitlines()[1:6]]
    expected = {k: sum(int(row[k]) for row in rows) for k in range(3)}
    assert compute_statistics(info.make_datamodule(), max_samples=None)["label_histogram"] == expected


def test_pixel_regression_histogram_skips_label_nodata(tmp_path):
    info = make_demo_dataset(tmp_path, "pixel_regression", n_train=2, n_val=1, n_test=1, size=8)
    hist = compute_statistics(info.make_datamodule(), max_samples=1)["label_histogram"]
    assert hist["min"] >= 0.0 and hist["max"] <= 1.0
    assert 64 - 6 <= sum(hist["counts"]) < 64  # 2-6 nodata pixels are left out


def test_rejects_other_datasets():
    with pytest.raises(TypeError, match="needs a generic GeoTIFF dataset"):
        compute_statistics([1, 2, 3])


def test_multi_temporal_statistics_are_per_band_over_all_steps(tmp_path):
    frames = np.concatenate([np.stack([np.full((2, 2), 10.0 * t), np.full((2, 2), 5.0)]) for t in range(3)])
    write_geotiff(tmp_path / "img" / "a.tif", frames.astype(np.float32))
    write_geotiff(tmp_path / "lbl" / "a.tif", np.zeros((2, 2), dtype=np.uint8))
    dataset = GenericNonGeoSegmentationDataset(
        tmp_path / "img",
        label_data_root=tmp_path / "lbl",
        dataset_bands=["VV", "VH"],
        expand_temporal_dimension=True,
    )
    stats = compute_statistics(dataset)
    np.testing.assert_allclose(stats["means"], [10.0, 5.0])
    np.testing.assert_allclose(stats["stds"], [np.std([0.0, 10.0, 20.0]), 0.0])
