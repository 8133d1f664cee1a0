"""Dict (multimodal) inputs through the tasks, tiled inference, the writers and ``terratorch predict``.

The model is a tiny dict-accepting CNN registered here (one stem convolution per modality, summed),
trained on :func:`terratorch.datasets.make_multimodal_demo` data (S2L2A + S1GRD, 32 px chips).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from lightning import Trainer
from torch import nn

from terratorch.datamodules import GenericMultiModalDataModule
from terratorch.datasets import make_multimodal_demo
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

BACKBONE = "multimodal_test_cnn"
MODULE = f'''
from torch import nn
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY


@TERRATORCH_BACKBONE_REGISTRY.register
class {BACKBONE}(nn.Module):
    """Per-modality 3x3 stems (summed over the modalities present), then a strided convolution."""

    def __init__(self, modalities=None, width=16):
        super().__init__()
        modalities = modalities or {{"S2L2A": 12, "S1GRD": 2}}
        self.stems = nn.ModuleDict({{m: nn.Conv2d(c, width, 3, padding=1) for m, c in modalities.items()}})
        self.down = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.out_channels = [width, width]

    def forward(self, x):
        if not isinstance(x, dict):
            raise TypeError(f"{BACKBONE} takes a dict of modalities, got {{type(x).__name__}}")
        a = sum(self.stems[m](t) for m, t in x.items()).relu()
        return [a, self.down(a).relu()]
'''
MODEL_ARGS = {
    "backbone": BACKBONE,
    "decoder": "FCNDecoder",
    "decoder_channels": 16,
    "decoder_num_convs": 1,
}


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Any:
    """Register the test backbone from a module on ``sys.path`` (the CLI imports it the same way)."""
    package = tmp_path_factory.mktemp("mm_modules")
    (package / "multimodal_test_modules.py").write_text(MODULE)
    sys.path.insert(0, str(package))
    import multimodal_test_modules  # noqa: F401

    yield package
    sys.path.remove(str(package))
    sys.modules.pop("multimodal_test_modules", None)
    TERRATORCH_BACKBONE_REGISTRY.unregister(BACKBONE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    return make_multimodal_demo(tmp_path_factory.mktemp("mm_task") / "demo", n_train=16, n_val=8, n_test=4)


def trainer(**kwargs: Any) -> Trainer:
    defaults = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return Trainer(**{**defaults, **kwargs})


def majority_miou(dm: GenericMultiModalDataModule, num_classes: int) -> float:
    """mIoU of always predicting the most frequent val class (IoU = its share for it, 0 elsewhere)."""
    masks = torch.cat([batch["mask"].flatten() for batch in dm.val_dataloader()])
    masks = masks[masks >= 0]
    counts = torch.bincount(masks, minlength=num_classes).float()
    return float(counts.max() / counts.sum()) / num_classes


def test_segmentation_on_two_modalities_beats_the_majority_baseline(backbone, demo) -> None:
    from terratorch.tasks import SemanticSegmentationTask

    torch.manual_seed(0)
    dm = GenericMultiModalDataModule(batch_size=4, **demo.datamodule_kwargs())
    task = SemanticSegmentationTask(
        model_factory="EncoderDecoderFactory",
        model_args={**MODEL_ARGS, "num_classes": demo.num_classes},
        ignore_index=-1,
        lr=1e-2,
        plot_on_val=False,
    )
    run = trainer(max_epochs=4)
    run.fit(task, datamodule=dm)
    miou = float(run.callback_metrics["val/mIoU"])
    baseline = majority_miou(dm, demo.num_classes)
    assert miou > baseline + 0.3, f"val mIoU {miou:.3f} vs majority baseline {baseline:.3f}"
    tested = run.test(task, datamodule=dm, verbose=False)[0]
    assert tested["test/mIoU"] > baseline


def test_regression_and_tiled_validation_take_dict_inputs(backbone, demo) -> None:
    from terratorch.tasks import PixelwiseRegressionTask

    dm = GenericMultiModalDataModule(batch_size=4, **demo.datamodule_kwargs(task="regression"))
    task = PixelwiseRegressionTask(
        model_factory="EncoderDecoderFactory",
        model_args=MODEL_ARGS,
        ignore_index=-1,
        tiled_inference_on_validation=True,
        tiled_inference_parameters={"crop": 16, "stride": 12, "delta": 2},
        plot_on_val=False,
    )
    run = trainer(max_epochs=1, limit_train_batches=2)
    run.fit(task, datamodule=dm)
    assert torch.isfinite(run.callback_metrics["val/loss"])
    assert "val/RMSE" in run.callback_metrics


def test_classification_takes_dict_inputs(backbone, demo, tmp_path) -> None:
    from terratorch.tasks import ClassificationTask

    stems = demo.stems["train"] + demo.stems["val"]
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\n" + "".join(f"{s},{i % 2}\n" for i, s in enumerate(stems)))
    kwargs = demo.datamodule_kwargs(task="classification", num_classes=2)
    kwargs.update(
        train_label_data_root=str(labels), val_label_data_root=str(labels), test_label_data_root=None
    )
    dm = GenericMultiModalDataModule(batch_size=4, **kwargs)
    task = ClassificationTask(
        model_factory="EncoderDecoderFactory",
        model_args={"backbone": BACKBONE, "decoder": "IdentityDecoder", "num_classes": 2},
    )
    run = trainer(max_epochs=1, limit_train_batches=2)
    run.fit(task, datamodule=dm)
    assert "val/Accuracy" in run.callback_metrics
    batch = next(iter(dm.val_dataloader()))
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64


def test_tiled_inference_tiles_every_modality_alike() -> None:
    from terratorch.tasks.tiled_inference import tiled_inference

    torch.manual_seed(0)
    weights = {"A": torch.randn(3, 4, 1, 1), "B": torch.randn(3, 2, 1, 1)}

    def forward(x: dict[str, torch.Tensor]) -> torch.Tensor:  # per pixel: tiling must not change it
        assert set(x) == {"A", "B"} and x["A"].shape[-2:] == x["B"].shape[-2:]
        return sum(nn.functional.conv2d(t, weights[m]) for m, t in x.items())

    image = {"A": torch.randn(2, 4, 40, 36), "B": torch.randn(2, 2, 40, 36)}
    full = forward(image)
    for blend in (None, "cosine"):
        tiled = tiled_inference(forward, image, crop=16, stride=12, delta=2, blend=blend)
        torch.testing.assert_close(tiled, full, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"share batch size.*A: \(2, 4, 40, 36\), B: \(2, 2, 40, 30\)"):
        tiled_inference(forward, {"A": image["A"], "B": image["B"][..., :30]}, crop=16, stride=12)


def test_modalities_of_different_sizes_are_rejected_by_the_task(backbone) -> None:
    from terratorch.tasks import SemanticSegmentationTask

    task = SemanticSegmentationTask(
        model_factory="EncoderDecoderFactory", model_args={**MODEL_ARGS, "num_classes": 3}
    )
    batch = {
        "image": {"S2L2A": torch.zeros(1, 12, 32, 32), "S1GRD": torch.zeros(1, 2, 16, 16)},
        "mask": torch.zeros(1, 32, 32, dtype=torch.long),
    }
    with pytest.raises(
        ValueError, match=r"different spatial sizes \(S2L2A: \(1, 12, 32, 32\), S1GRD: \(1, 2, 16, 16\)"
    ):
        task.training_step(batch, 0)


def test_plots_use_the_rgb_modality() -> None:
    from terratorch.tasks.base import plot_image

    image = {"S1GRD": torch.zeros(2, 2, 8, 8), "S2L2A": torch.ones(2, 12, 8, 8)}
    datamodule = type("DM", (), {"rgb_indices": {"S2L2A": [3, 2, 1]}})()
    chosen, rgb = plot_image(image, datamodule)
    assert chosen.shape == (12, 8, 8) and rgb == [3, 2, 1]
    assert plot_image({"META": torch.zeros(2, 3)}, datamodule) == (None, None)


def write_predict_config(path: Path, demo: Any, out_dir: Path) -> str:
    data = demo.datamodule_kwargs(batch_size=2)
    data["predict_data_root"] = {}
    for modality, folder in demo.data_roots.items():  # the test chips, copied beside the config
        target = path.parent / "scenes" / modality
        target.mkdir(parents=True, exist_ok=True)
        for stem in demo.stems["test"]:
            shutil.copy(folder / f"{stem}_{modality}.tif", target)
        data["predict_data_root"][modality] = str(target)
    config: dict[str, Any] = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "logger": False,
            "enable_progress_bar": False,
            "default_root_dir": str(path.parent / "run"),
        },
        "data": {"class_path": "terratorch.datamodules.GenericMultiModalDataModule", "init_args": data},
        "model": {
            "class_path": "SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {**MODEL_ARGS, "num_classes": demo.num_classes},
                "tiled_inference_parameters": {"crop": 16, "stride": 12, "delta": 2},
            },
        },
        "predict_output_dir": str(out_dir),
    }
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_predict_writes_geotiffs_georeferenced_like_the_first_modality(
    backbone, demo, tmp_path, monkeypatch
) -> None:
    from terratorch.__main__ import main as terratorch_main

    monkeypatch.chdir(tmp_path)
    out_dir = tmp_path / "preds"
    config = write_predict_config(tmp_path / "predict.yaml", demo, out_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = terratorch_main(["predict", "-c", config])
        except SystemExit as stop:
            code = stop.code
    assert not code
    sources = sorted((tmp_path / "scenes" / "S2L2A").glob("*.tif"))
    outputs = sorted(out_dir.glob("*.tif"))
    assert len(outputs) == len(sources) == len(demo.stems["test"])
    for source, written in zip(sources, outputs):
        assert written.name.startswith(source.stem)
        with rasterio.open(source) as src, rasterio.open(written) as out:
            assert out.crs == src.crs and out.transform == src.transform
            assert (out.height, out.width) == (src.height, src.width)
            assert set(np.unique(out.read(1))) <= {0, 1, 2, int(out.nodata)}


def test_custom_writer_georeferences_from_the_first_modality(demo, tmp_path) -> None:
    from terratorch.cli_tools import CustomWriter

    stems = demo.stems["test"][:2]
    files = {m: [str(demo.data_roots[m] / f"{s}_{m}.tif") for s in stems] for m in ("S2L2A", "S1GRD")}
    prediction = (torch.ones(2, 32, 32, dtype=torch.long), files)
    trainer_stub = type("T", (), {"predict_output_dir": str(tmp_path)})()
    CustomWriter(write_interval="batch").write_on_batch_end(trainer_stub, None, prediction, None, {}, 0, 0)
    for stem in stems:
        source = demo.data_roots["S2L2A"] / f"{stem}_S2L2A.tif"
        with rasterio.open(tmp_path / f"{stem}_S2L2A_pred.tif") as out, rasterio.open(source) as src:
            assert out.transform == src.transform and out.crs == src.crs


def test_streaming_prediction_refuses_multimodal_samples() -> None:
    from terratorch.cli.prediction_writer import _dataset_files

    dataset = type("D", (), {"samples": [{"S2L2A": "a_S2L2A.tif", "S1GRD": "a_S1GRD.tif"}]})()
    with pytest.raises(ValueError, match="predict_streaming reads one GeoTIFF per sample"):
        _dataset_files(dataset)
