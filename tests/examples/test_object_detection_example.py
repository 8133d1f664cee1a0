"""``examples/finetune/object_detection.yaml`` runs through ``terratorch fit`` and ``terratorch predict``
(GeoJSON per image) on generated detection data, with short-run overrides."""

from __future__ import annotations

import json
from pathlib import Path

from terratorch.cli_tools import build_lightning_cli
from terratorch.datasets.demo import make_detection_demo

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "examples/finetune/object_detection.yaml"
SHORT = [
    "--trainer.max_epochs", "1",
    "--trainer.limit_train_batches", "2",
    "--trainer.limit_val_batches", "1",
    "--trainer.check_val_every_n_epoch", "1",
    "--data.init_args.batch_size", "2",
]  # fmt: skip


def test_object_detection_example_fits_and_predicts_geojson(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    demo = make_detection_demo(
        "data/demo/object_detection", n_train=4, n_val=2, n_test=2, size=64, objects_per_image=(1, 2),
        object_size=(24, 32),
    )  # fmt: skip
    fit = build_lightning_cli(["fit", "-c", CONFIG, *SHORT])
    assert "train/loss_classifier" in fit.trainer.callback_metrics
    assert "val/mAP" in fit.trainer.callback_metrics
    checkpoint = tmp_path / "output/object_detection/logs/run/checkpoints/last.ckpt"
    assert checkpoint.is_file()
    predict_dir = tmp_path / "predict_images"
    predict_dir.mkdir()
    for name in ("det_0000.tif", "det_0001.tif"):
        (predict_dir / name).write_bytes((demo.image_dir / name).read_bytes())
    build_lightning_cli(
        [
            "predict", "-c", CONFIG, "--ckpt_path", str(checkpoint),
            "--data.init_args.predict_data_root", str(predict_dir),
            "--predict_output_dir", "output/object_detection/predictions",
        ]
    )  # fmt: skip
    written = sorted((tmp_path / "output/object_detection/predictions").glob("*.geojson"))
    assert [p.name for p in written] == ["det_0000_pred.geojson", "det_0001_pred.geojson"]
    collection = json.loads(written[0].read_text())
    assert collection["type"] == "FeatureCollection" and collection["crs"]["properties"]["name"] == demo.crs
