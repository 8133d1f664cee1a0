"""Object-detection datasets: COCO / per-image JSON layouts, transforms, bad input, demo generator."""

from __future__ import annotations

import json
import logging

import albumentations as A
import numpy as np
import pytest
import rasterio
import torch
from PIL import Image

from terratorch.datasets.demo import make_detection_demo
from terratorch.datasets.generic_nongeo_od_dataset import GenericNonGeoObjectDetectionDataset
from terratorch.datasets.object_detection import (
    DetectionSampleTransform,
    InvalidAnnotationError,
    collate_detection,
    seeded_split,
)
from terratorch.datasets.utils import write_geotiff

SIZE = 32


def _write_images(folder, count, bands=3, size=SIZE):
    rng = np.random.default_rng(0)
    names = []
    for i in range(count):
        name = f"img_{i}.tif"
        write_geotiff(folder / name, rng.random((bands, size, size), dtype=np.float32))
        names.append(name)
    return names


def _coco(names, annotations, size=SIZE, categories=(1, 2)):
    return {
        "images": [{"id": i, "file_name": n, "width": size, "height": size} for i, n in enumerate(names)],
        "annotations": [
            {"id": k, "image_id": image_id, "category_id": cat, "bbox": bbox, "iscrowd": 0, **extra}
            for k, (image_id, cat, bbox, extra) in enumerate(annotations)
        ],
        "categories": [{"id": c, "name": f"c{c}"} for c in categories],
    }


def _rect(x, y, w, h):
    return {"segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]}


@pytest.fixture
def coco_dir(tmp_path):
    names = _write_images(tmp_path / "images", 3)
    annotations = [
        (0, 1, [2, 3, 10, 8], _rect(2, 3, 10, 8)),
        (0, 2, [20, 18, 6, 6], _rect(20, 18, 6, 6)),
        (1, 2, [0, 0, 32, 32], _rect(0, 0, 32, 32)),
    ]  # image 2 has no objects
    path = tmp_path / "train.json"
    path.write_text(json.dumps(_coco(names, annotations)))
    return tmp_path, path


def test_coco_samples_have_torchvision_target_format(coco_dir):
    root, ann = coco_dir
    dataset = GenericNonGeoObjectDetectionDataset(root / "images", num_classes=3, label_data_root=ann)
    assert len(dataset) == 3 and dataset.return_masks
    sample = dataset[0]
    assert sample["image"].shape == (3, SIZE, SIZE) and sample["image"].dtype == torch.float32
    assert sample["boxes"].dtype == torch.float32 and sample["labels"].dtype == torch.int64
    torch.testing.assert_close(sample["boxes"], torch.tensor([[2.0, 3, 12, 11], [20, 18, 26, 24]]))
    assert sample["labels"].tolist() == [1, 2]
    assert sample["masks"].shape == (2, SIZE, SIZE) and sample["masks"].dtype == torch.uint8
    assert sample["masks"][0, 3:11, 2:12].all() and sample["masks"][0].sum() == 80
    assert sample["filename"] == "img_0.tif" and sample["image_id"] == 0
    with rasterio.open(root / "images" / "img_0.tif") as src:
        np.testing.assert_array_equal(sample["image"].numpy(), src.read())


def test_empty_image_gives_empty_targets_also_through_transforms(coco_dir):
    root, ann = coco_dir
    for transform in (None, [A.HorizontalFlip(p=1.0)]):
        dataset = GenericNonGeoObjectDetectionDataset(root / "images", 3, ann, transform=transform)
        empty = dataset[2]
        assert empty["boxes"].shape == (0, 4) and empty["boxes"].dtype == torch.float32
        assert empty["labels"].shape == (0,) and empty["labels"].dtype == torch.int64
        assert empty["masks"].shape == (0, SIZE, SIZE)


def test_boxes_and_masks_follow_a_horizontal_flip_exactly(coco_dir):
    root, ann = coco_dir
    plain = GenericNonGeoObjectDetectionDataset(root / "images", 3, ann)[0]
    flipped = GenericNonGeoObjectDetectionDataset(
        root / "images", 3, ann, transform=[A.HorizontalFlip(p=1.0)]
    )[0]
    expected = plain["boxes"].clone()
    expected[:, [0, 2]] = SIZE - plain["boxes"][:, [2, 0]]
    torch.testing.assert_close(flipped["boxes"], expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-1))
    torch.testing.assert_close(flipped["masks"], plain["masks"].flip(-1))
    assert flipped["labels"].tolist() == plain["labels"].tolist()


def test_crop_drops_boxes_with_their_labels_and_masks(coco_dir):
    root, ann = coco_dir
    crop = [A.Crop(x_min=0, y_min=0, x_max=16, y_max=16)]
    sample = GenericNonGeoObjectDetectionDataset(root / "images", 3, ann, transform=crop)[0]
    torch.testing.assert_close(sample["boxes"], torch.tensor([[2.0, 3, 12, 11]]), atol=1e-4, rtol=0)
    assert sample["labels"].tolist() == [1] and sample["masks"].shape == (1, 16, 16)
    assert sample["masks"][0].sum() == 80


def test_per_image_json_layout_png_and_band_subset(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(2):
        Image.fromarray((rng.random((24, 20, 3)) * 255).astype(np.uint8)).save(tmp_path / f"p{i}.png")
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "p0.json").write_text(json.dumps({"boxes": [[1, 2, 5, 9]], "labels": [1]}))
    dataset = GenericNonGeoObjectDetectionDataset(
        tmp_path,
        num_classes=2,
        label_data_root=tmp_path / "labels",
        image_grep="*.png",
        dataset_bands=["RED", "GREEN", "BLUE"],
        output_bands=["BLUE", "RED"],
    )
    first, second = dataset[0], dataset[1]
    assert first["image"].shape == (2, 24, 20)
    np.testing.assert_array_equal(
        first["image"][0].numpy(), np.asarray(Image.open(tmp_path / "p0.png"))[..., 2]
    )
    assert first["boxes"].tolist() == [[1, 2, 5, 9]] and first["labels"].tolist() == [1]
    assert second["boxes"].shape == (0, 4)  # no label file: no objects


def test_split_file_selects_images_of_a_coco_file(coco_dir):
    root, ann = coco_dir
    split = root / "split.txt"
    split.write_text("img_1\nimg_2.tif\n")
    dataset = GenericNonGeoObjectDetectionDataset(root / "images", 3, ann, split=split)
    assert [p.name for p in dataset.image_files] == ["img_1.tif", "img_2.tif"]
    assert dataset[0]["image_id"] == 1 and dataset[0]["labels"].tolist() == [2]


def test_collate_keeps_variable_numbers_of_boxes(coco_dir):
    root, ann = coco_dir
    dataset = GenericNonGeoObjectDetectionDataset(root / "images", 3, ann)
    batch = collate_detection([dataset[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, SIZE, SIZE)
    assert [b.shape[0] for b in batch["boxes"]] == [2, 1, 0]
    assert [m.shape[0] for m in batch["masks"]] == [2, 1, 0]
    assert batch["filename"] == ["img_0.tif", "img_1.tif", "img_2.tif"]
    ragged = collate_detection([{"image": torch.zeros(3, 4, 4)}, {"image": torch.zeros(3, 5, 5)}])
    assert isinstance(ragged["image"], list)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("bbox", "words"),
    [
        ([25, 4, 10, 6], ["extends outside the image", "[x1, y1, x2, y2] = [25, 4, 35, 10]"]),
        ([-3, 4, 10, 6], ["extends outside the image", "[-3, 4, 7, 10]"]),
        ([5, 5, -2, 4], ["zero or negative size", "[5, 5, 3, 9]"]),
        ([5, 5, 0, 4], ["zero or negative size", "[5, 5, 5, 9]"]),
    ],
)
def test_invalid_boxes_raise_with_image_id_and_box(tmp_path, bbox, words):
    names = _write_images(tmp_path, 2)
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(_coco(names, [(0, 1, [1, 1, 4, 4], {}), (1, 1, bbox, {})])))
    with pytest.raises(InvalidAnnotationError) as error:
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, ann, image_grep="*.tif")
    message = str(error.value)
    for word in [*words, "image id 1", "img_1.tif", "invalid_boxes='clip'"]:
        assert word in message


def test_unknown_category_is_reported_with_image_and_box(tmp_path):
    names = _write_images(tmp_path, 1)
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(_coco(names, [(0, 7, [1, 2, 3, 4], {})])))
    with pytest.raises(
        InvalidAnnotationError, match=r"image id 0 \(img_0.tif\).*\[1, 2, 3, 4\].*unknown category_id 7"
    ):
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, ann, image_grep="*.tif")


def test_labels_out_of_range_and_bad_policy(coco_dir):
    root, ann = coco_dir
    with pytest.raises(InvalidAnnotationError, match=r"label 2 is outside \[0, num_classes=2\)"):
        GenericNonGeoObjectDetectionDataset(root / "images", num_classes=2, label_data_root=ann)
    with pytest.raises(ValueError, match="invalid_boxes must be one of"):
        GenericNonGeoObjectDetectionDataset(root / "images", 3, ann, invalid_boxes="drop")


def test_clip_policy_clips_drops_and_warns_with_counts(tmp_path, caplog):
    names = _write_images(tmp_path, 1)
    ann = tmp_path / "a.json"
    boxes = [(0, 1, [25, 4, 10, 6], {}), (0, 2, [5, 5, 0, 4], {}), (0, 1, [1, 1, 4, 4], {})]
    ann.write_text(json.dumps(_coco(names, boxes)))
    with caplog.at_level(logging.WARNING, logger="terratorch"):
        dataset = GenericNonGeoObjectDetectionDataset(
            tmp_path, 3, ann, image_grep="*.tif", invalid_boxes="clip"
        )
    assert "clipped 1 box(es)" in caplog.text and "dropped 1 box(es)" in caplog.text
    sample = dataset[0]
    assert sample["boxes"].tolist() == [[25, 4, 32, 10], [1, 1, 5, 5]] and sample["labels"].tolist() == [1, 1]


def test_missing_image_file_is_named(tmp_path):
    names = _write_images(tmp_path, 1)
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(_coco([*names, "gone.tif"], [])))
    with pytest.raises(FileNotFoundError, match=r"gone.tif.*image id 1"):
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, ann, image_grep="*.tif")


def test_declared_image_size_is_checked_against_the_file(tmp_path):
    names = _write_images(tmp_path, 1)
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps(_coco(names, [(0, 1, [30, 30, 5, 5], {})], size=40)))
    with pytest.raises(
        InvalidAnnotationError, match=r"img_0.tif is 32x32 pixels but .*a.json says 40x40 \(image id 0\)"
    ):
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, ann, image_grep="*.tif")


def test_per_image_file_errors(tmp_path):
    _write_images(tmp_path, 1)
    (tmp_path / "img_0.json").write_text(json.dumps({"boxes": [[1, 1, 3, 3], [2, 2, 4, 4]], "labels": [1]}))
    with pytest.raises(InvalidAnnotationError, match="2 boxes but 1 labels"):
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, image_grep="*.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="none of the 1 images has a label file"):
        GenericNonGeoObjectDetectionDataset(tmp_path, 3, tmp_path / "empty", image_grep="*.tif")


# ----------------------------------------------------------------------------- helpers


def test_sample_transform_keeps_time_steps_together():
    transform = DetectionSampleTransform([A.HorizontalFlip(p=1.0)])
    image = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)  # (T, C, H, W)
    out = transform({"image": image, "boxes": torch.tensor([[0.0, 0, 1, 2]]), "labels": torch.tensor([1])})
    assert out["image"].shape == (3, 2, 4, 4)
    torch.testing.assert_close(out["image"], image.flip(-1).transpose(0, 1))
    torch.testing.assert_close(out["boxes"], torch.tensor([[3.0, 0, 4, 2]]), atol=1e-4, rtol=0)


def test_seeded_split_matches_the_reference_shuffle():
    # pandas DataFrame.sample(frac=1, random_state=123) on range(10) (the reference's m-VHR10 split)
    train, val, test = seeded_split(10, (0.7, 0.15, 0.15), 123)
    assert train.tolist() == [4, 0, 7, 5, 8, 3, 1] and val.tolist() == [6] and test.tolist() == [9, 2]
    with pytest.raises(ValueError, match="sum to 1"):
        seeded_split(10, (0.5, 0.2, 0.2), 0)


# ----------------------------------------------------------------------------- demo generator


def test_detection_demo_is_georeferenced_learnable_and_consistent(tmp_path):
    kwargs = {"n_train": 3, "n_val": 1, "n_test": 1, "size": 64, "objects_per_image": (2, 3), "seed": 3}
    info = make_detection_demo(tmp_path / "a", **kwargs)
    again = make_detection_demo(tmp_path / "b", **kwargs)
    assert (info.root / "images" / "det_0000.tif").read_bytes() == (
        again.root / "images" / "det_0000.tif"
    ).read_bytes()
    assert info.num_classes == 3 and info.crs == "EPSG:32633"
    coco = json.loads(info.annotation_files["val"].read_text())
    assert [i["file_name"] for i in coco["images"]] == ["det_0003.tif"]
    geojson = json.loads(info.ground_truth_geojson.read_text())
    assert len(geojson["features"]) == len(info.objects)
    for obj in info.objects:
        x1, y1, x2, y2 = obj["bbox_pixel"]
        assert 2 <= sum(o["image"] == obj["image"] for o in info.objects) <= 3 and 16 <= x2 - x1 <= 24
        with rasterio.open(info.image_dir / obj["image"]) as src:
            assert src.crs.to_epsg() == 32633
            minx, miny, maxx, maxy = obj["bbox_map"]
            assert src.xy(y1, x1, offset="ul") == pytest.approx((minx, maxy))
            assert src.xy(y2, x2, offset="ul") == pytest.approx((maxx, miny))
            inside = src.read()[:, y1:y2, x1:x2].mean(axis=(1, 2))
        bright = inside > 0.6
        assert bright.tolist() == ([True, False, False] if obj["category_id"] == 1 else [False, True, True])
    dataset = GenericNonGeoObjectDetectionDataset(info.image_dir, 3, info.annotation_files["train"])
    assert sum(len(dataset[i]["boxes"]) for i in range(len(dataset))) == sum(
        o["split"] == "train" for o in info.objects
    )
