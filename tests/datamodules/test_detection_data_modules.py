"""Detection datamodules: the generic COCO one, m-VHR10, Substation and AED elephants on tiny layouts."""

from __future__ import annotations

import csv
import json

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from terratorch.datamodules.generic_nongeo_od_data_module import GenericNonGeoObjectDetectionDataModule
from terratorch.datamodules.m_VHR10 import IMAGENET_MEANS, IMAGENET_STDS, mVHR10DataModule
from terratorch.datamodules.od_aed_elephant import ElephantDataModule
from terratorch.datamodules.substation import SubstationDataModule
from terratorch.datamodules.substation import means as substation_means
from terratorch.datamodules.substation import stds as substation_stds
from terratorch.datasets.demo import make_detection_demo
from terratorch.datasets.object_detection import InvalidAnnotationError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("od_demo")
    return make_detection_demo(root, n_train=4, n_val=2, n_test=1, size=64, objects_per_image=(2, 3))


def test_generic_datamodule_batches_normalised_images_and_box_lists(demo):
    datamodule = demo.make_datamodule(batch_size=2, num_workers=0, train_transform=[A.HorizontalFlip(p=0.5)])
    datamodule.setup("fit")
    assert len(datamodule.train_dataset) == 4 and len(datamodule.val_dataset) == 2
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64)
    assert [tuple(b.shape[1:]) for b in batch["boxes"]] == [(4,), (4,)]
    assert all(m.shape[1:] == (64, 64) and m.dtype == torch.uint8 for m in batch["masks"])
    truth = [o for o in demo.objects if o["image"] == batch["filename"][0]]
    assert batch["boxes"][0].tolist() == [o["bbox_pixel"] for o in truth]
    assert batch["labels"][0].tolist() == [o["category_id"] for o in truth]
    raw = batch["image"].clone()
    normalised = datamodule.on_after_batch_transfer(batch, 0)["image"]
    mean = torch.tensor(demo.means).view(1, 3, 1, 1)
    std = torch.tensor(demo.stds).view(1, 3, 1, 1)
    torch.testing.assert_close(normalised, (raw - mean) / std)
    train = next(iter(datamodule.train_dataloader()))
    assert train["image"].shape == (2, 3, 64, 64) and len(train["labels"]) == 2


def test_generic_datamodule_box_only_and_predict(demo):
    datamodule = demo.make_datamodule(
        batch_size=3, num_workers=0, return_masks=False, predict_data_root=str(demo.image_dir)
    )
    datamodule.setup("test")
    batch = next(iter(datamodule.test_dataloader()))
    assert "masks" not in batch and len(batch["boxes"]) == 1
    datamodule.setup("predict")
    batch = next(iter(datamodule.predict_dataloader()))
    assert batch["image"].shape == (3, 3, 64, 64) and all(b.shape == (0, 4) for b in batch["boxes"])


def test_generic_datamodule_reports_bad_boxes_at_setup(demo, tmp_path):
    coco = json.loads(demo.annotation_files["train"].read_text())
    coco["annotations"][1]["bbox"] = [60, 10, 20, 20]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(coco))
    datamodule = demo.make_datamodule(batch_size=2, num_workers=0, train_label_data_root=str(bad))
    image_id = coco["annotations"][1]["image_id"]
    with pytest.raises(
        InvalidAnnotationError, match=rf"image id {image_id} .*\[60, 10, 80, 30\] extends outside"
    ):
        datamodule.setup("fit")
    clipping = demo.make_datamodule(
        batch_size=2, num_workers=0, train_label_data_root=str(bad), invalid_boxes="clip"
    )
    clipping.setup("fit")
    assert any(b[2] == 64 for r in clipping.train_dataset.records for b in r.boxes.tolist())
    with pytest.raises(ValueError, match="invalid_boxes must be one of"):
        GenericNonGeoObjectDetectionDataModule(2, 0, 3, invalid_boxes="skip")


# ----------------------------------------------------------------------------- m-VHR10


def _vhr10_layout(root, count=10, height=40, width=48):
    folder = root / "NWPU VHR-10 dataset"
    (folder / "positive image set").mkdir(parents=True)
    (folder / "negative image set").mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "positive image set" / f"{i + 1:03d}.jpg")
        images.append({"id": i, "file_name": f"{i + 1:03d}.jpg"})
        x, y = i, 2 * i
        polygon = [x, y, x + 10, y, x + 10, y + 8, x, y + 8]
        annotations.append(
            {
                "id": i,
                "image_id": i,
                "category_id": 1 + i % 10,
                "bbox": [x, y, 10, 8],
                "segmentation": [polygon],
            }
        )
    for i in range(150):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(
            folder / "negative image set" / f"{i + 1:03d}.jpg"
        )
    categories = [{"id": c, "name": str(c)} for c in range(1, 11)]
    coco = {"images": images, "annotations": annotations, "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(coco))


def test_mvhr10_splits_padding_masks_and_normalisation(tmp_path):
    _vhr10_layout(tmp_path)
    datamodule = mVHR10DataModule(root=tmp_path, batch_size=2, image_size=64)
    datamodule.setup("fit")
    datamodule.setup("test")
    # the reference's split: pandas sample(frac=1, random_state=123) of the sorted ids
    assert datamodule.train_dataset.ids == [4, 0, 7, 5, 8, 3, 1]
    assert datamodule.val_dataset.ids == [6] and datamodule.test_dataset.ids == [9, 2]
    batch = next(iter(datamodule.test_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 64)
    # padded to 64 x 64: 12 rows on top, 8 columns on the left
    torch.testing.assert_close(batch["boxes"][0], torch.tensor([[9.0 + 8, 18 + 12, 19 + 8, 26 + 12]]))
    assert batch["labels"][0].tolist() == [10] and batch["masks"][0].shape == (1, 64, 64)
    assert batch["masks"][0][0, 30:38, 17:27].all() and batch["masks"][0].sum() == 80
    raw = batch["image"].clone()
    out = datamodule.on_after_batch_transfer(batch, 0)["image"]
    mean = torch.tensor(IMAGENET_MEANS).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STDS).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (raw / 255 - mean) / std)


def test_mvhr10_negative_set_and_missing_layout(tmp_path):
    from terratorch.datasets.m_VHR10 import mVHR10

    with pytest.raises(FileNotFoundError, match="NWPU VHR-10 dataset"):
        mVHR10(root=tmp_path)
    _vhr10_layout(tmp_path, count=3)
    negative = mVHR10(root=tmp_path, split="negative", second_level_split="test")
    assert len(negative) == 150 - int(150 * 0.95)
    sample = negative[0]
    assert sample["image"].shape == (3, 8, 8) and sample["boxes"].shape == (0, 4)


# ----------------------------------------------------------------------------- Substation


def _substation_layout(root, steps=3, size=16):
    (root / "image_stack").mkdir(parents=True)
    (root / "mask").mkdir()
    rng = np.random.default_rng(0)
    rows, images, annotations = [], [], []
    for i, split in enumerate(("train", "train", "val", "test")):
        name = f"s{i}.npz"
        np.savez(root / "image_stack" / name, rng.random((steps, 13, size, size)).astype(np.float32) * 3000)
        mask = np.zeros((size, size), np.uint8)
        mask[2:6, 3:9] = 3
        mask[10:12, 10:12] = 2
        np.savez(root / "mask" / name, mask)
        rows.append({"image": f"some/dir/{name}", "split": split, "id": 100 + i})
        images.append({"id": 100 + i, "file_name": name, "width": size, "height": size})
        polygon = [3, 2, 9, 2, 9, 6, 3, 6]
        annotations.append(
            {"id": i, "image_id": 100 + i, "category_id": 1, "bbox": [3, 2, 6, 4], "segmentation": [polygon]}
        )
    with (root / "substation_meta_splits_full.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "split", "id"])
        writer.writeheader()
        writer.writerows(rows)
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "substation"}]}
    (root / "annotations.json").write_text(json.dumps(coco))


def test_substation_detection_with_time_steps(tmp_path):
    _substation_layout(tmp_path)
    datamodule = SubstationDataModule(
        root=tmp_path,
        mode="object_detection",
        timepoint_aggregation="identity",
        num_of_timepoints=4,
        image_size=32,
        batch_size=2,
        num_workers=0,
    )
    datamodule.setup("fit")
    assert len(datamodule.train_dataset) == 2 and len(datamodule.val_dataset) == 1
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["image"].shape == (1, 3, 4, 32, 32)  # (B, C, T, H, W), 3 steps padded cyclically to 4
    torch.testing.assert_close(batch["boxes"][0], torch.tensor([[6.0, 4, 18, 12]]), atol=1e-4, rtol=0)
    assert batch["labels"][0].tolist() == [1] and batch["masks"][0].shape == (1, 32, 32)
    raw = np.load(tmp_path / "image_stack" / "s2.npz")["arr_0"]
    torch.testing.assert_close(batch["image"][0, :, 3], batch["image"][0, :, 0])  # step 4 repeats step 1
    out = datamodule.on_after_batch_transfer(batch, 0)["image"]
    mean = torch.tensor(substation_means)[[3, 2, 1]].view(1, 3, 1, 1, 1)
    std = torch.tensor(substation_stds)[[3, 2, 1]].view(1, 3, 1, 1, 1)
    torch.testing.assert_close(out, (batch["image"] - mean) / std)
    assert raw.shape == (3, 13, 16, 16)


def test_substation_segmentation_concat_and_mask_2d(tmp_path):
    _substation_layout(tmp_path)
    datamodule = SubstationDataModule(root=tmp_path, batch_size=2, num_workers=0, mask_2d=True)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 12, 16, 16) and batch["mask"].shape == (2, 2, 16, 16)
    assert batch["mask"][:, 1].sum() == 2 * 24 and (batch["mask"].sum(1) == 1).all()
    normalised = datamodule.on_after_batch_transfer(batch, 0)["image"]
    assert normalised.shape == (2, 12, 16, 16)
    with pytest.raises(ValueError, match="timepoint_aggregation must be one of"):
        SubstationDataModule(root=tmp_path, use_timepoints=False).setup("fit")


# ----------------------------------------------------------------------------- AED elephants


def _elephant_layout(root, name, count=2, height=48, width=64):
    folder = root / name
    folder.mkdir()
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8)).save(folder / f"e{i}.png")
        images.append({"id": i + 1, "file_name": f"e{i}.png", "width": width, "height": height})
        annotations.append({"id": i, "image_id": i + 1, "category_id": 1, "bbox": [20, 4, 8, 8]})
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "elephant"}]}
    (root / f"{name}.json").write_text(json.dumps(coco))
    return folder, root / f"{name}.json"


def test_elephant_tiles_cache_and_split(tmp_path):
    train_dir, train_ann = _elephant_layout(tmp_path, "train")
    test_dir, test_ann = _elephant_layout(tmp_path, "test", count=1)
    kwargs = {
        "min_size": (1, 1),
        "tile_size": (32, 32),
        "overlap": 16,
        "batch_size": 2,
        "num_workers": 0,
        "train_test_split": 0.5,
    }
    datamodule = ElephantDataModule(
        train_dir,
        train_ann,
        test_dir,
        test_ann,
        tile_cache_train=tmp_path / "c_train",
        tile_cache_test=None,
        **kwargs,
    )
    datamodule.setup("fit")
    datamodule.setup("test")
    # tiles at x0 in {0, 16, 32}, y0 in {0, 16}; the box [20, 4, 28, 12] lies in the y0=0 tiles at x0 0 and 16
    assert len(datamodule.dataset_test) == 6
    assert len(datamodule.dataset_train) + len(datamodule.dataset_val) == 4
    assert len(list((tmp_path / "c_train").glob("*.png"))) == 4
    boxes = {tuple(datamodule.dataset_test[i]["boxes"].reshape(-1).tolist()) for i in range(6)}
    assert boxes == {(20.0, 4.0, 28.0, 12.0), (4.0, 4.0, 12.0, 12.0), ()}
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].max() <= 1
    again = ElephantDataModule(
        train_dir,
        train_ann,
        test_dir,
        test_ann,
        tile_cache_train=tmp_path / "c_train",
        tile_cache_test=None,
        **kwargs,
    )
    again.setup("fit")
    assert [s.indices for s in (again.dataset_train, again.dataset_val)] == [
        s.indices for s in (datamodule.dataset_train, datamodule.dataset_val)
    ]


def test_elephant_invalid_box_is_reported(tmp_path):
    folder, ann = _elephant_layout(tmp_path, "train", count=1)
    coco = json.loads(ann.read_text())
    coco["annotations"][0]["bbox"] = [20, 4, 0, 8]
    ann.write_text(json.dumps(coco))
    datamodule = ElephantDataModule(
        folder, ann, folder, ann, min_size=(1, 1), tile_cache_train=None, tile_cache_test=None
    )
    with pytest.raises(InvalidAnnotationError, match=r"image id 1 \(e0.png, 64x48\).*zero or negative size"):
        datamodule.setup("fit")
