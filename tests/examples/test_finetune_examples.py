"""Every ``examples/finetune/*.yaml`` runs through the ``terratorch`` CLI on generated demo data.

Each test works in a scratch directory laid out like a user's: ``examples/`` linked from the
repository and the demo data written to ``data/demo/<task>`` (the relative paths the configs use,
as the configs' headers document), then runs the example with short-run overrides. The
segmentation example must also learn: its val mIoU clearly beats predicting the majority class.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from terratorch.cli_tools import build_lightning_cli
from terratorch.datasets.demo import make_demo_dataset

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "finetune"
QUICK = ["--trainer.enable_checkpointing", "true", "--trainer.logger", "false"]


def scratch(base: Path, task: str, **sizes: int) -> Path:
    """``base`` with ``examples`` linked and demo data for ``task`` under ``data/demo/<task>``."""
    if not (base / "examples").exists():
        (base / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    make_demo_dataset(base / "data" / "demo" / task, task, **sizes)
    return base


@pytest.fixture
def in_scratch(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    return tmp_path


@pytest.fixture(scope="module")
def trained_segmentation(tmp_path_factory) -> tuple[Path, object]:
    """The segmentation example trained for 2 epochs on 16 train / 8 val chips of 64 px."""
    base = scratch(tmp_path_factory.mktemp("seg"), "segmentation", n_train=16, n_val=8, n_test=4)
    previous = Path.cwd()
    os.chdir(base)
    try:
        cli = build_lightning_cli(
            ["fit", "-c", "examples/finetune/segmentation_vit_upernet.yaml", "--trainer.max_epochs", "2"]
        )
    finally:
        os.chdir(previous)
    return base, cli


def majority_class_miou(root: Path) -> float:
    """val mIoU of predicting the most frequent train class everywhere (same metric as the task)."""
    from torchmetrics.classification import MulticlassJaccardIndex

    def masks(split: str) -> list[np.ndarray]:
        stems = (root / "splits" / f"{split}.txt").read_text().split()
        arrays = []
        for stem in stems:
            with rasterio.open(root / "labels" / f"{stem}_mask.tif") as src:
                mask = src.read(1).astype(np.int64)
                mask[mask == src.nodata] = -1
            arrays.append(mask)
        return arrays

    counts = np.bincount(np.concatenate([m[m >= 0] for m in masks("train")]), minlength=3)
    majority = int(counts.argmax())
    metric = MulticlassJaccardIndex(num_classes=3, ignore_index=-1, average="macro")
    for mask in masks("val"):
        target = torch.from_numpy(mask)[None]
        metric.update(torch.full_like(target, majority), target)
    return float(metric.compute())


def test_segmentation_example_beats_majority_baseline(trained_segmentation):
    base, cli = trained_segmentation
    miou = float(cli.trainer.callback_metrics["val/mIoU"])
    baseline = majority_class_miou(base / "data" / "demo" / "segmentation")
    assert baseline < 0.35  # sanity: the demo classes are mixed within chips
    assert miou >= baseline + 0.15, f"val/mIoU {miou:.3f} vs majority-class baseline {baseline:.3f}"
    metrics = (base / "output" / "segmentation" / "logs" / "run" / "metrics.csv").read_text()
    assert "val/mIoU" in metrics.splitlines()[0]


def test_segmentation_example_predicts_with_its_checkpoint(trained_segmentation, monkeypatch):
    base, _ = trained_segmentation
    monkeypatch.chdir(base)
    ckpt = "output/segmentation/logs/run/checkpoints/last.ckpt"
    assert Path(ckpt).is_file()
    args = [
        "predict",
        "-c",
        "examples/finetune/segmentation_vit_upernet.yaml",
        "--ckpt_path",
        ckpt,
        "--data.init_args.predict_data_root",
        "data/demo/segmentation/images",
        "--predict_output_dir",
        "output/segmentation/predictions",
    ]
    build_lightning_cli(args)
    images = sorted(Path("data/demo/segmentation/images").glob("*_img.tif"))
    outputs = sorted(Path("output/segmentation/predictions").glob("*_pred.tif"))
    assert len(outputs) == len(images) == 28
    with rasterio.open(images[0]) as src, rasterio.open(outputs[0]) as out:
        assert out.crs == src.crs and out.transform == src.transform and out.shape == src.shape


def test_regression_example_runs(in_scratch):
    scratch(in_scratch, "pixel_regression", n_train=8, n_val=4, n_test=4, size=32)
    cli = build_lightning_cli(
        ["fit", "-c", "examples/finetune/regression_unet.yaml", "--trainer.max_epochs", "1"]
    )
    metrics = cli.trainer.callback_metrics
    assert torch.isfinite(metrics["val/RMSE"]) and torch.isfinite(metrics["val/loss"])
    assert (in_scratch / "output/regression/logs/run/checkpoints/last.ckpt").is_file()
    test = build_lightning_cli(["test", "-c", "examples/finetune/regression_unet.yaml", *QUICK])
    assert "test/RMSE" in test.trainer.callback_metrics


def test_classification_example_runs_and_predicts(in_scratch):
    scratch(in_scratch, "classification", n_train=8, n_val=4, n_test=4, size=32)
    config = "examples/finetune/classification.yaml"
    cli = build_lightning_cli(["fit", "-c", config, "--trainer.max_epochs", "1"])
    assert 0.0 <= float(cli.trainer.callback_metrics["val/Accuracy"]) <= 1.0
    predict = [
        "predict",
        "-c",
        config,
        "--ckpt_path",
        "output/classification/logs/run/checkpoints/last.ckpt",
        "--data.init_args.predict_data_root",
        "data/demo/classification/images/cropland",
        "--predict_output_dir",
        "output/classification/predictions",
    ]
    build_lightning_cli(predict)
    rows = (in_scratch / "output/classification/predictions/predictions.csv").read_text().splitlines()
    files = sorted((in_scratch / "data/demo/classification/images/cropland").glob("*.tif"))
    assert rows[0] == "filename,prediction,probability_0,probability_1,probability_2"
    assert len(rows) == len(files) + 1
    assert all(int(row.split(",")[1]) in (0, 1, 2) for row in rows[1:])


def _forget_custom_modules() -> None:
    for name in [m for m in sys.modules if m == "custom_modules" or m.startswith("custom_modules.")]:
        del sys.modules[name]


def test_custom_backbone_example_runs(in_scratch):
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    scratch(in_scratch, "segmentation", n_train=8, n_val=4, n_test=2, size=32)
    _forget_custom_modules()  # another test may have imported a different package of that name
    try:
        cli = build_lightning_cli(
            ["fit", "-c", "examples/finetune/custom_backbone.yaml", "--trainer.max_epochs", "1"]
        )
        assert type(cli.model.model.encoder).__name__ == "SmallCNN"
        assert torch.isfinite(cli.trainer.callback_metrics["val/mIoU"])
    finally:
        TERRATORCH_BACKBONE_REGISTRY.unregister("small_cnn")
        _forget_custom_modules()
