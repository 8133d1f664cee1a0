"""``LightningInferenceModel`` without a Trainer: same predictions as ``terratorch predict``, clear errors.

One tiny model is fitted once per module (32 px demo chips, a 2-stage CNN); every test predicts with it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from tests.tiny_backbones import tiny_cnn_module

from terratorch.cli.errors import ConfigError
from terratorch.datasets.demo import make_demo_dataset

BACKBONE = "inference_test_cnn"
BACKBONE_MODULE = tiny_cnn_module(BACKBONE)


def _config(demo: Any, root: Path, **model_changes: Any) -> dict[str, Any]:
    data_args = demo.datamodule_kwargs(batch_size=2, num_workers=0)
    data_args["predict_data_root"] = str(demo.image_dir)
    return {
        "seed_everything": 0,
        "custom_modules_path": "inference_test_modules",
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "default_root_dir": str(root / "run"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
        },
        "data": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": data_args},
        "model": {
            "class_path": "SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    "backbone": BACKBONE,
                    "backbone_in_chans": len(demo.band_names),
                    "decoder": "FCNDecoder",
                    "decoder_channels": 8,
                    "decoder_num_convs": 1,
                    "num_classes": 3,
                },
                "ignore_index": -1,
                "plot_on_val": False,
                **model_changes,
            },
        },
    }


def _write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Any:
    """Demo data, a fit config, its checkpoint and the working directory (custom modules inside)."""
    from terratorch.cli.lightning import build_lightning_cli
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    root = tmp_path_factory.mktemp("inference")
    demo = make_demo_dataset(root / "demo", "segmentation", n_train=4, n_val=2, n_test=2, size=32)
    package = root / "inference_test_modules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backbones.py").write_text(BACKBONE_MODULE)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
        patch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
        config = _write(root / "fit.yaml", _config(demo, root))
        cli = build_lightning_cli(["fit", "-c", str(config)])
        ckpt = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
        yield {"demo": demo, "root": root, "config": config, "ckpt": ckpt, "patch": patch}
    for name in [m for m in sys.modules if m.startswith("inference_test_modules")]:
        del sys.modules[name]
    TERRATORCH_BACKBONE_REGISTRY.unregister(BACKBONE)


@pytest.fixture
def in_root(fitted, monkeypatch) -> Path:
    monkeypatch.chdir(fitted["root"])
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    return fitted["root"]


@pytest.mark.parametrize("tiled", [False, True], ids=["whole", "tiled"])
def test_needs_no_trainer_and_matches_trainer_predict_bit_exact(fitted, in_root, tiled):
    """Logits from ``inference_on_dir`` equal ``trainer.predict``'s exactly (same task, same batches),
    also with the config's ``tiled_inference_parameters``."""
    from lightning.pytorch import Trainer

    from terratorch.cli.inference import LightningInferenceModel

    extra = {"tiled_inference_parameters": {"crop": 16, "stride": 8, "batch_size": 4}} if tiled else {}
    config = _write(
        in_root / "logits.yaml", _config(fitted["demo"], in_root, output_on_inference="logits", **extra)
    )
    model = LightningInferenceModel.from_config(config, fitted["ckpt"])
    assert model.device == torch.device("cpu")
    assert (model.model.tiled_inference_parameters is not None) == tiled
    ours, names = model.inference_on_dir()

    trainer = Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    batches = trainer.predict(model.model, datamodule=model.datamodule, return_predictions=True)
    theirs = torch.cat([b["prediction"] for b in batches])
    assert ours.dtype == torch.float32 and ours.shape == theirs.shape == (len(names), 3, 32, 32)
    assert torch.equal(ours, theirs)
    assert names == [n for b in batches for n in b["filename"]]


def test_from_config_equals_terratorch_predict(fitted, in_root):
    """``from_config`` + ``inference_on_dir`` gives the class maps ``terratorch predict`` writes."""
    from terratorch.__main__ import main as terratorch_main
    from terratorch.cli.inference import LightningInferenceModel

    out = in_root / "preds"
    code = terratorch_main(
        [
            "predict",
            "-c",
            str(fitted["config"]),
            "--ckpt_path",
            str(fitted["ckpt"]),
            "--predict_output_dir",
            str(out),
        ]
    )
    assert code in (0, None)
    bands = list(fitted["demo"].band_names)
    model = LightningInferenceModel.from_config(fitted["config"], fitted["ckpt"], bands, bands)
    predictions, names = model.inference_on_dir(fitted["demo"].image_dir)
    assert len(names) == len(list(out.glob("*.tif"))) > 0
    for prediction, name in zip(predictions, names, strict=True):
        with rasterio.open(out / f"{Path(name).stem}_pred.tif") as written, rasterio.open(name) as src:
            valid = (src.read_masks() > 0).all(axis=0)  # the writer marks input nodata pixels
            assert np.array_equal(written.read(1)[valid], prediction.numpy()[valid])
    single = model.inference(names[0])
    assert torch.equal(single, predictions[0])


def test_from_task_and_datamodule_streams_batches(fitted, in_root):
    """A hand-built task and datamodule, no trainer; ``iter_predictions`` yields one batch at a time."""
    from terratorch.cli.inference import LightningInferenceModel
    from terratorch.cli.lightning import build_lightning_cli

    cli = build_lightning_cli(["-c", str(fitted["config"])], run=False)
    model = LightningInferenceModel.from_task_and_datamodule(
        cli.model, cli.datamodule, fitted["ckpt"], device="cpu"
    )
    assert model.trainer is None
    sizes = [tensor.shape[0] for tensor, _ in model.iter_predictions(fitted["demo"].image_dir)]
    files = sorted(fitted["demo"].image_dir.glob(fitted["demo"].img_grep))
    assert sum(sizes) == len(files) and max(sizes) <= 2  # batch_size 2


def test_config_without_predict_root_names_the_key(fitted, in_root):
    from terratorch.cli.inference import LightningInferenceModel

    config = _config(fitted["demo"], in_root)
    del config["data"]["init_args"]["predict_data_root"]
    model = LightningInferenceModel.from_config(_write(in_root / "noroot.yaml", config), fitted["ckpt"])
    with pytest.raises(ConfigError, match=r"data\.init_args\.predict_data_root"):
        model.inference_on_dir()


@pytest.mark.parametrize("recorded", [True, False], ids=["class-path", "hyperparameter-names"])
def test_checkpoint_of_another_task_names_both_classes(fitted, in_root, recorded):
    """The saved task class comes from ``_class_path`` when recorded, else from the hyperparameter names."""
    import inspect

    from terratorch.cli.inference import LightningInferenceModel, checkpoint_task_class
    from terratorch.tasks import PixelwiseRegressionTask

    checkpoint = torch.load(fitted["ckpt"], map_location="cpu", weights_only=True)
    assert checkpoint_task_class(checkpoint).endswith(".SemanticSegmentationTask")
    if recorded:
        checkpoint["hyper_parameters"]["_class_path"] = "terratorch.tasks.regression.PixelwiseRegressionTask"
    else:
        names = inspect.signature(PixelwiseRegressionTask.__init__).parameters
        checkpoint["hyper_parameters"] = {n: None for n in names if n not in ("self", "model")}
    other = in_root / "regression.ckpt"
    torch.save(checkpoint, other)
    with pytest.raises(
        ConfigError, match=r"saved from a \S*PixelwiseRegressionTask.*builds a \S*SemanticSegmentationTask"
    ):
        LightningInferenceModel.from_config(fitted["config"], other)


def test_raster_band_count_mismatch_names_both_counts(fitted, in_root):
    """Files with 4 bands for a 6-band model: the error names 6 and 4."""
    from terratorch.cli.inference import LightningInferenceModel

    demo = fitted["demo"]
    folder = in_root / "four_bands"
    folder.mkdir()
    source = sorted(demo.image_dir.glob(demo.img_grep))[0]
    with rasterio.open(source) as src:
        profile = src.profile | {"count": 4}
        data = src.read()[:4]
    with rasterio.open(folder / source.name, "w", **profile) as dst:
        dst.write(data)
    config = _config(demo, in_root)
    config["data"]["init_args"]["predict_dataset_bands"] = list(demo.band_names[:4])
    config["data"]["init_args"]["predict_output_bands"] = list(demo.band_names[:4])
    model = LightningInferenceModel.from_config(_write(in_root / "four.yaml", config), fitted["ckpt"])
    with pytest.raises(ValueError, match=r"\b6\b.*\b4\b"):
        model.inference_on_dir(folder)
