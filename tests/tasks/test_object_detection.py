"""ObjectDetectionTask: learning on generated squares, per-component losses, GeoJSON output in the
input's CRS, and the tiled scene merge across tile borders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from terratorch.datasets.demo import make_detection_demo
from terratorch.tasks import ObjectDetectionTask
from terratorch.tasks.detection_tiling import merge_detections, tiled_detection

#: A small Faster R-CNN: ResNet-18 (random init, frozen: the FPN and heads learn) + a 64-channel FPN
#: over strides 8/16/32, whose anchors (32, 64, 128 px) fit the 22-32 px squares.
MODEL_ARGS = {
    "backbone": "timm_resnet18",
    "backbone_pretrained": False,
    "backbone_out_indices": [2, 3, 4],
    "in_channels": 3,
    "framework": "faster-rcnn",
    "num_classes": 3,
    "necks": [{"name": "FeaturePyramidNetworkNeck", "out_channel": 64}],
    "framework_box_batch_size_per_image": 32,
    "framework_rpn_batch_size_per_image": 64,
    "framework_rpn_pre_nms_top_n_train": 200,
    "framework_rpn_post_nms_top_n_train": 100,
}


def _trainer(tmp_path: Path, **kwargs) -> Trainer:
    options = dict(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(tmp_path),
    )
    options.update(kwargs)
    return Trainer(**options)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The detector trained for 8 epochs on 40 images of 48 px; returns (task, demo, trainer, logged, dm)."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("detection")
    demo = make_detection_demo(
        root / "data", n_train=40, n_val=8, n_test=4, size=48, objects_per_image=(1, 1), object_size=(22, 30)
    )
    datamodule = demo.make_datamodule(batch_size=8, num_workers=0)
    task = ObjectDetectionTask(
        "ObjectDetectionModelFactory",
        dict(MODEL_ARGS),
        lr=3e-3,
        optimizer="AdamW",
        freeze_backbone=True,
        class_names=list(demo.class_names),
        score_threshold=0.3,
    )
    trainer = _trainer(root, max_epochs=8, log_every_n_steps=1, check_val_every_n_epoch=8)
    trainer.fit(task, datamodule=datamodule)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}  # last step's losses, last val
    return task, demo, trainer, logged, datamodule


def test_training_reaches_map50_and_logs_each_loss(trained):
    _, _, _, logged, _ = trained
    for name in ("train/loss", "train/loss_classifier", "train/loss_box_reg", "train/loss_objectness"):
        assert name in logged, sorted(logged)
    total = logged["train/loss"]
    parts = sum(logged[k] for k in logged if k.startswith("train/loss_"))
    assert total == pytest.approx(parts, rel=1e-4)
    assert {"val/mAP", "val/mAP_50", "val/mAP_75"} <= set(logged)
    assert logged["val/mAP_50"] >= 0.5, logged


def _box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def test_predict_writes_geojson_in_the_input_crs_on_the_objects(trained, tmp_path):
    import shutil

    task, demo, _, _, _ = trained
    val_images = sorted({o["image"] for o in demo.objects if o["split"] == "val"})
    predict_dir = tmp_path / "predict"
    predict_dir.mkdir()
    for name in val_images:
        shutil.copy(demo.image_dir / name, predict_dir / name)
    datamodule = demo.make_datamodule(batch_size=4, num_workers=0, predict_data_root=str(predict_dir))
    writer = task.make_prediction_writer(output_dir=str(tmp_path / "out"))
    predictor = _trainer(tmp_path, callbacks=[writer])
    predictor.predict(task, datamodule=datamodule, return_predictions=False)
    assert len(writer.written) == len(val_images)
    matched = total = 0
    for name in val_images:
        collection = json.loads((tmp_path / "out" / f"{Path(name).stem}_pred.geojson").read_text())
        assert collection["type"] == "FeatureCollection"
        assert collection["crs"]["properties"]["name"] == demo.crs
        predicted = []
        for feature in collection["features"]:
            ring = np.asarray(feature["geometry"]["coordinates"][0])
            assert ring.shape == (5, 2) and np.allclose(ring[0], ring[-1])
            assert feature["properties"]["class_name"] in demo.class_names
            predicted.append((ring[:, 0].min(), ring[:, 1].min(), ring[:, 0].max(), ring[:, 1].max()))
        for obj in (o for o in demo.objects if o["image"] == name):
            total += 1
            matched += any(_box_iou(obj["bbox_map"], box) > 0.5 for box in predicted)
    # map coordinates: the boxes land on the generator's objects (not on pixel-space numbers)
    assert matched / total >= 0.6, (matched, total)


def _bright_square_detector(threshold: float = 0.5):
    """An exact detector for the tiling test: boxes of the bright connected regions of each crop."""
    from scipy import ndimage

    def detect(crops: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        results = []
        for crop in crops:
            labels, count = ndimage.label(crop[0].numpy() > threshold)
            boxes = [
                [float(s[1].start), float(s[0].start), float(s[1].stop), float(s[0].stop)]
                for s in ndimage.find_objects(labels)
            ]
            results.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.linspace(0.9, 0.8, count) if count else torch.zeros(0),
                    "labels": torch.ones(count, dtype=torch.int64),
                }
            )
        return results

    return detect


def test_tiled_scene_merge_leaves_one_box_per_object_across_tile_borders():
    scene = torch.zeros(1, 100, 100)
    squares = [(40, 10, 60, 30), (5, 5, 20, 20), (70, 62, 90, 80), (44, 44, 58, 58)]  # x1, y1, x2, y2
    for x1, y1, x2, y2 in squares:
        scene[:, y1:y2, x1:x2] = 1.0
    # crops of 50 with stride 25: every square crosses at least one inner crop edge
    result = tiled_detection(_bright_square_detector(), scene, crop=50, stride=25, batch_size=3)
    boxes = sorted(tuple(round(v) for v in box) for box in result["boxes"].tolist())
    assert boxes == sorted(squares)
    assert result["scores"].shape == (4,) and result["labels"].tolist() == [1, 1, 1, 1]


def test_merge_prefers_whole_boxes_over_cut_ones_and_keeps_separate_objects():
    detections = {
        "boxes": torch.tensor([[40.0, 10, 50, 30], [40, 10, 60, 30], [0, 0, 10, 10]]),
        "scores": torch.tensor([0.95, 0.6, 0.7]),
        "labels": torch.tensor([1, 1, 2]),
    }
    cut = torch.tensor([True, False, False])  # the first box is the cut half of the second
    kept = merge_detections(detections, cut, iou_threshold=0.5)
    assert kept["boxes"].tolist() == [[0, 0, 10, 10], [40, 10, 60, 30]]


def test_task_predicts_tiled_scenes_in_scene_coordinates(trained):
    task, _, _, _, _ = trained
    task.eval()
    task.tiled_inference_parameters = {"crop": 64, "stride": 48, "batch_size": 2}
    try:
        scene = torch.randn(1, 3, 100, 120) * 0.1
        out = task.predict_step({"image": scene, "filename": None}, 0)
    finally:
        task.tiled_inference_parameters = None
    (detections,) = out["prediction"]
    boxes = detections["boxes"]
    assert boxes.shape[1] == 4
    assert bool((boxes[:, [0, 2]] <= 120).all() and (boxes[:, [1, 3]] <= 100).all())


def test_pixel_coordinates_without_georeference_and_class_names(tmp_path):
    from terratorch.cli.detection_writer import GeoJSONDetectionWriter

    writer = GeoJSONDetectionWriter(tmp_path)
    writer.on_predict_start(None, None)
    detections = {
        "boxes": torch.tensor([[2.0, 3, 12, 8]]),
        "scores": torch.tensor([0.9]),
        "labels": torch.tensor([2]),
    }
    path = writer.write_one(detections, None, class_name=lambda label: ["bg", "a", "b"][label])
    collection = json.loads(path.read_text())
    assert "crs" not in collection
    (feature,) = collection["features"]
    ring = feature["geometry"]["coordinates"][0]
    assert {tuple(p) for p in ring} == {(2.0, 3.0), (12.0, 3.0), (12.0, 8.0), (2.0, 8.0)}
    assert feature["properties"] == {
        "score": pytest.approx(0.9),
        "label": 2,
        "class_name": "b",
        "box_pixels": [2, 3, 12, 8],
    }


def test_reference_parameters_and_errors():
    import inspect

    from terratorch.tasks.object_detection_task import ObjectDetectionTask as ReferencePathTask

    assert ReferencePathTask is ObjectDetectionTask
    params = inspect.signature(ObjectDetectionTask.__init__).parameters
    expected = [
        "model_factory", "model_args", "lr", "optimizer", "optimizer_hparams", "scheduler",
        "scheduler_hparams", "freeze_backbone", "freeze_decoder", "class_names", "iou_threshold",
        "score_threshold", "boxes_field", "labels_field", "masks_field", "ignore_index",
    ]  # fmt: skip
    assert list(params)[1 : 1 + len(expected)] == expected
    assert params["iou_threshold"].default == 0.5 and params["score_threshold"].default == 0.5
    assert params["ignore_index"].default == -1 and params["lr"].default == 0.001
    with pytest.raises(ValueError, match="class_names has 5 entries"):
        ObjectDetectionTask("ObjectDetectionModelFactory", dict(MODEL_ARGS), class_names=list("abcde"))
    with pytest.raises(ValueError, match="score_threshold must lie in"):
        ObjectDetectionTask("ObjectDetectionModelFactory", dict(MODEL_ARGS), score_threshold=2.0)
    task = ObjectDetectionTask(
        "ObjectDetectionModelFactory", dict(MODEL_ARGS), optimizer_hparams={"lr": 0.01}, ignore_index=2
    )
    assert task.lr == 0.01 and task.monitor == "val/mAP"
    targets = task.targets_of(
        {"boxes": [torch.tensor([[0.0, 0, 4, 4], [1, 1, 5, 5]])], "labels": [torch.tensor([1, 2])]}
    )
    assert targets[0]["labels"].tolist() == [1]
    with pytest.raises(ValueError, match="expects 'boxes'"):
        task.targets_of({"image": torch.zeros(1, 3, 8, 8)})
