"""Demo-data generator: layout, georeference, determinism, learnable structure, scenes, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from terratorch.datasets.demo import (
    TASKS,
    TEXTURE_TILE,
    class_signatures,
    class_textures,
    main,
    make_demo_dataset,
    make_demo_scene,
    textured_reflectance,
)


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        make_demo_dataset(tmp_path / name, "segmentation", n_train=2, n_val=1, n_test=1, size=16, seed=seed)
    a, b, c = (_tree_bytes(tmp_path / n) for n in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


@pytest.mark.parametrize("task", TASKS)
def test_every_task_loads_through_its_datamodule(tmp_path, task):
    info = make_demo_dataset(
        tmp_path, task, n_train=3, n_val=2, n_test=2, size=16, num_bands=4, num_classes=3
    )
    assert {split: len(stems) for split, stems in info.stems.items()} == {"train": 3, "val": 2, "test": 2}
    assert [line for line in info.splits["val"].read_text().splitlines()] == info.stems["val"]
    datamodule = info.make_datamodule(batch_size=2)
    datamodule.setup("fit")
    datamodule.setup("test")
    assert (len(datamodule.train_dataset), len(datamodule.val_dataset), len(datamodule.test_dataset)) == (
        3,
        2,
        2,
    )
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image"].shape == (2, 4, 16, 16)
    target = batch.get("mask", batch.get("label"))
    expected = {
        "segmentation": (2, 16, 16),
        "pixel_regression": (2, 16, 16),
        "classification": (2,),
        "scalar_regression": (2,),
        "multilabel": (2, 3),
    }[task]
    assert tuple(target.shape) == expected


def test_chips_are_georeferenced_with_nodata_pixels(tmp_path):
    info = make_demo_dataset(tmp_path, "segmentation", n_train=2, n_val=1, n_test=1, size=32)
    image_path = sorted(info.image_dir.glob("*_img.tif"))[0]
    with rasterio.open(image_path) as src:
        assert src.crs.to_epsg() == 32633
        assert src.transform.a == 30.0 and src.transform.e == -30.0
        assert src.nodata == -9999 and src.count == 6 and src.dtypes[0] == "int16"
        assert list(src.descriptions) == info.band_names
        nodata_pixels = int((src.read(1) == -9999).sum())
    assert 1 <= nodata_pixels <= 10
    with rasterio.open(info.label_dir / image_path.name.replace("_img", "_mask")) as src:
        assert src.nodata == 255 and src.crs.to_epsg() == 32633
        mask = src.read(1)
    assert set(np.unique(mask)) <= {0, 1, 2, 255} and (mask == 255).sum() == nodata_pixels


def test_means_and_stds_files_match_train_pixels(tmp_path):
    info = make_demo_dataset(tmp_path, "pixel_regression", n_train=3, n_val=1, n_test=1, size=16)
    pixels = []
    for stem in info.stems["train"]:
        with rasterio.open(info.image_dir / f"{stem}_img.tif") as src:
            data = src.read().reshape(src.count, -1)
        pixels.append(data[:, data[0] != -9999] * info.constant_scale)
    pixels = np.concatenate(pixels, axis=1)
    np.testing.assert_allclose(info.means, pixels.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(info.stds, pixels.std(axis=1), atol=1e-6)
    assert [float(v) for v in info.means_file.read_text().split()] == info.means


def _pixels(dataset):
    features, labels = [], []
    for sample in dataset:
        image, mask = sample["image"].numpy(), sample["mask"].numpy()
        keep = mask != -1
        features.append(image[:, keep].T)
        labels.append(mask[keep])
    return np.concatenate(features), np.concatenate(labels)


def test_segmentation_classes_are_learnable(tmp_path):
    """A nearest-centroid classifier on train pixel spectra clearly beats the majority class on val."""
    info = make_demo_dataset(tmp_path, "segmentation", n_train=4, n_val=3, n_test=1, size=32, seed=5)
    datamodule = info.make_datamodule()
    datamodule.setup("fit")
    x_train, y_train = _pixels(datamodule.train_dataset)
    x_val, y_val = _pixels(datamodule.val_dataset)
    centroids = np.stack([x_train[y_train == k].mean(axis=0) for k in range(info.num_classes)])
    predicted = np.argmin(((x_val[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    accuracy = (predicted == y_val).mean()
    majority = (y_val == np.bincount(y_train).argmax()).mean()
    assert majority < 0.7
    assert accuracy > majority + 0.25


def _box3(image):
    """3x3 neighbourhood mean of a ``(C, H, W)`` image (edges repeated)."""
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge")
    h, w = image.shape[1:]
    return sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9


def _interior_features(dataset):
    """Per-pixel and 3x3-mean spectra of pixels whose 3x3 neighbourhood is one valid class."""
    pixels, boxes, labels = [], [], []
    for sample in dataset:
        image, mask = sample["image"].numpy(), sample["mask"].numpy()
        padded = np.pad(mask, 1, mode="edge")
        h, w = mask.shape
        same = np.all([padded[i : i + h, j : j + w] == mask for i in range(3) for j in range(3)], axis=0)
        keep = same & (mask != -1)
        pixels.append(image[:, keep].T)
        boxes.append(_box3(image)[:, keep].T)
        labels.append(mask[keep])
    return np.concatenate(pixels), np.concatenate(boxes), np.concatenate(labels)


def test_segmentation_pixels_are_noisy_but_context_resolves_them(tmp_path):
    """One pixel's spectrum is a noisy hint; its 3x3 neighbourhood (what a convolution sees) is not."""
    info = make_demo_dataset(tmp_path, "segmentation", n_train=4, n_val=3, n_test=1, size=32, seed=5)
    datamodule = info.make_datamodule()
    datamodule.setup("fit")
    train_pixels, train_boxes, y_train = _interior_features(datamodule.train_dataset)
    val_pixels, val_boxes, y_val = _interior_features(datamodule.val_dataset)

    def nearest_centroid_accuracy(x_train, x_val):
        centroids = np.stack([x_train[y_train == k].mean(axis=0) for k in range(info.num_classes)])
        return (np.argmin(((x_val[:, None] - centroids[None]) ** 2).sum(-1), axis=1) == y_val).mean()

    per_pixel = nearest_centroid_accuracy(train_pixels, val_pixels)
    with_context = nearest_centroid_accuracy(train_boxes, val_boxes)
    assert per_pixel < 0.95
    assert with_context > per_pixel + 0.05


def test_class_textures_tile_and_leave_the_first_class_flat():
    textures = class_textures(4)
    assert textures.shape == (4, TEXTURE_TILE, TEXTURE_TILE)
    assert not textures[0].any() and all(np.ptp(t) > 1.5 for t in textures[1:])
    assert len({t.tobytes() for t in textures[1:]}) == 3  # a different stripe orientation per class
    signatures = class_signatures(4, 3, seed=0)
    class_map = np.arange(4).repeat(2 * TEXTURE_TILE).reshape(1, -1).repeat(2 * TEXTURE_TILE, axis=0)
    reflectance = textured_reflectance(signatures, textures, class_map)
    # shifting the frame by one tile changes nothing; class 0 is its plain signature
    shifted = textured_reflectance(signatures, textures, class_map, TEXTURE_TILE, 2 * TEXTURE_TILE)
    np.testing.assert_array_equal(reflectance, shifted)
    np.testing.assert_allclose(reflectance[:, :, 0], signatures[0][:, None].repeat(2 * TEXTURE_TILE, 1))


def test_pixel_regression_target_is_predictable_from_bands(tmp_path):
    info = make_demo_dataset(tmp_path, "pixel_regression", n_train=4, n_val=2, n_test=1, size=32, seed=5)
    datamodule = info.make_datamodule()
    datamodule.setup("fit")
    x_train, y_train = _pixels(datamodule.train_dataset)
    x_val, y_val = _pixels(datamodule.val_dataset)
    weights = np.linalg.lstsq(np.c_[x_train, np.ones(len(x_train))], y_train, rcond=None)[0]
    residual = np.c_[x_val, np.ones(len(x_val))] @ weights - y_val
    r2 = 1 - (residual**2).sum() / ((y_val - y_val.mean()) ** 2).sum()
    assert r2 > 0.8


def test_classification_folders_and_multilabel_csv(tmp_path):
    info = make_demo_dataset(
        tmp_path / "cls", "classification", n_train=6, n_val=2, n_test=2, size=16, num_classes=4
    )
    assert sorted(p.name for p in info.image_dir.iterdir()) == sorted(info.class_names)
    assert sum(1 for _ in info.image_dir.rglob("*.tif")) == 10
    datamodule = info.make_datamodule(class_names=None)  # default: sorted folders = index order
    datamodule.setup("fit")
    assert datamodule.train_dataset.classes == info.class_names
    assert sorted(int(t) for t in datamodule.train_dataset.targets) == [0, 0, 1, 1, 2, 3]
    info = make_demo_dataset(tmp_path / "ml", "multilabel", n_train=4, n_val=1, n_test=1, size=16)
    header, *rows = info.label_file.read_text().splitlines()
    assert header == "filename," + ",".join(info.class_names) and len(rows) == 6
    assert all(any(v == "1" for v in row.split(",")[1:]) for row in rows)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"unknown demo task 'segmentaton'.*Did you mean segmentation"):
        make_demo_dataset(tmp_path, "segmentaton")
    with pytest.raises(ValueError, match="size must be >= 1"):
        make_demo_dataset(tmp_path, "segmentation", size=0)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        make_demo_dataset(tmp_path, "classification", num_classes=1)


def test_scene_is_written_in_strips_and_matches_its_mask(tmp_path):
    path = make_demo_scene(
        tmp_path / "scene.tif", 300, 517, num_bands=3, seed=4, mask_path=tmp_path / "mask.tif"
    )
    with rasterio.open(path) as src, rasterio.open(tmp_path / "mask.tif") as msk:
        assert (src.height, src.width, src.count) == (300, 517, 3)
        assert src.crs.to_epsg() == 32633 and src.nodata == -9999 and src.profile["tiled"]
        image, mask = src.read(), msk.read(1)
    assert set(np.unique(mask)) == {0, 1, 2}
    valid = image[0] != -9999
    # each class has its own spectrum: per-class mean of band 0 differs clearly between classes
    means = [image[0][valid & (mask == k)].mean() for k in range(3)]
    assert min(abs(a - b) for i, a in enumerate(means) for b in means[i + 1 :]) > 100
    again = make_demo_scene(tmp_path / "again.tif", 300, 517, num_bands=3, seed=4)
    assert again.read_bytes() == path.read_bytes()


def test_cli_writes_dataset_and_prints_config(tmp_path, capsys):
    assert (
        main(
            [
                "--task",
                "classification",
                "--root",
                str(tmp_path),
                "--n-train",
                "2",
                "--n-val",
                "1",
                "--n-test",
                "1",
                "--size",
                "16",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "class_path: GenericNonGeoClassificationDataModule" in out and "train_split" in out
    assert (tmp_path / "splits" / "train.txt").read_text().count("\n") == 2
    assert main(["--scene", str(tmp_path / "s.tif"), "--height", "40", "--width", "30"]) == 0
    assert (tmp_path / "s.tif").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    with pytest.raises(SystemExit):
        main(["--task", "segmentation"])  # --root missing
    assert "--root is required" in capsys.readouterr().err


def test_console_script_dispatches_demo_data(tmp_path):
    from terratorch.__main__ import main as terratorch_main

    assert (
        terratorch_main(
            [
                "demo-data",
                "--task",
                "scalar_regression",
                "--root",
                str(tmp_path),
                "--n-train",
                "1",
                "--n-val",
                "1",
                "--n-test",
                "1",
                "--size",
                "8",
            ]
        )
        == 0
    )
    assert (tmp_path / "labels.csv").read_text().startswith("filename,target\n")
