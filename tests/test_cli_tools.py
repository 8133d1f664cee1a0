"""The ``terratorch`` LightningCLI: config keys, checkpoints, prediction GeoTIFFs and error messages.

Runs the real CLI in-process (``terratorch.__main__.main`` / ``build_lightning_cli``) on tiny demo
data (32 px chips, a 2-stage CNN) so the whole file takes seconds of compute.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
import yaml
from tests.tiny_backbones import tiny_cnn_module

from terratorch.__main__ import main as terratorch_main
from terratorch.cli_tools import build_lightning_cli, custom_module_paths, explain_parse_error
from terratorch.datasets.demo import make_demo_dataset, make_demo_scene


@pytest.fixture(autouse=True)
def lightning_logs_to_current_stderr():
    """Point Lightning's log handlers at this test's ``sys.stderr`` (capsys swaps it per test)."""
    import logging

    names = [n for n in logging.root.manager.loggerDict if n.startswith("lightning")]
    for name in names:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stderr  # not setStream(): it flushes the closed old stream


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    """A tiny segmentation demo dataset (4 train, 2 val, 2 test chips of 32 px)."""
    root = tmp_path_factory.mktemp("demo") / "segmentation"
    return make_demo_dataset(root, "segmentation", n_train=4, n_val=2, n_test=2, size=32)


TEST_BACKBONES = ("cli_test_cnn", "cli_extra_cnn")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in ``tmp_path`` with a custom-modules package defining the ``cli_test_cnn`` backbone.

    Afterwards the test backbones are unregistered and their modules forgotten, so the next test
    imports (and registers) them afresh.
    """
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    monkeypatch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
    package = tmp_path / "cli_test_modules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backbones.py").write_text(tiny_cnn_module("cli_test_cnn"))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cli_test_modules") or m == "other_cnn"]:
        del sys.modules[name]
    for name in TEST_BACKBONES:
        TERRATORCH_BACKBONE_REGISTRY.unregister(name)


def make_config(demo: Any, tmp_path: Path, **changes: Any) -> dict[str, Any]:
    """A complete fit config on the demo data; ``changes`` replace top-level sections."""
    data_args = demo.datamodule_kwargs(batch_size=2, num_workers=0)
    config: dict[str, Any] = {
        "seed_everything": 0,
        "custom_modules_path": "cli_test_modules",
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "default_root_dir": str(tmp_path / "run"),
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
                    "backbone": "cli_test_cnn",
                    "decoder": "FCNDecoder",
                    "decoder_channels": 8,
                    "decoder_num_convs": 1,
                    "num_classes": 3,
                },
                "ignore_index": -1,
                "plot_on_val": False,
            },
        },
    }
    config.update(changes)
    return config


def write_config(path: Path, config: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``terratorch <args>`` through the dispatcher; return (exit code, stdout, stderr)."""
    try:
        code = terratorch_main(args)
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return int(code or 0), captured.out, captured.err


# ----------------------------------------------------------------------------- fit, checkpoints, config keys


def test_fit_short_class_names_and_default_checkpoints(demo, workdir, capsys):
    config = write_config(workdir / "fit.yaml", make_config(demo, workdir))
    cli = build_lightning_cli(["fit", "-c", config, "--trainer.max_epochs", "2"])
    assert type(cli.model).__name__ == "SemanticSegmentationTask"
    assert type(cli.datamodule).__name__ == "GenericNonGeoSegmentationDataModule"
    checkpoint = cli.trainer.checkpoint_callback
    assert checkpoint.monitor == "val/loss" and checkpoint.mode == "min" and checkpoint.save_last
    saved = sorted(p.name for p in Path(checkpoint.dirpath).glob("*.ckpt"))
    assert "last.ckpt" in saved and any(name.startswith("best-epoch=") for name in saved), saved
    assert cli.trainer.current_epoch == 2
    assert torch.isfinite(cli.trainer.callback_metrics["val/mIoU"])
    # deploy_config_file (default true, as in the reference): an inference-ready copy of the config
    log_dir = Path(cli.trainer.log_dir)
    deploy = yaml.safe_load((log_dir / "config_deploy.yaml").read_text())
    assert (log_dir / "config.yaml").is_file()
    assert "optimizer" not in deploy and deploy["trainer"]["logger"] is False
    assert "callbacks" not in deploy["trainer"]


def test_state_dict_aware_checkpoints_by_short_name(demo, workdir):
    config = make_config(demo, workdir)
    config["trainer"]["callbacks"] = [
        {
            "class_path": "StateDictAwareModelCheckpoint",
            "init_args": {"filename": "{epoch}", "monitor": "val/loss"},
        },
        {
            "class_path": "StateDictAwareModelCheckpoint",
            "init_args": {"filename": "{epoch}_state_dict", "save_weights_only": True, "monitor": "val/loss"},
        },
    ]
    config["deploy_config_file"] = False
    cli = build_lightning_cli(
        ["fit", "-c", write_config(workdir / "sd.yaml", config), "--trainer.max_epochs", "1"]
    )
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "StateDictAwareModelCheckpoint"]
    assert [c.save_weights_only for c in checkpoints] == [False, True]
    names = sorted({p.name for c in checkpoints for p in Path(c.dirpath).glob("*.ckpt")})
    assert names == ["epoch=0.ckpt", "epoch=0_state_dict.ckpt"]
    assert not (Path(cli.trainer.log_dir) / "config_deploy.yaml").exists()


def test_own_model_checkpoint_replaces_the_default(demo, workdir):
    config = make_config(demo, workdir)
    own = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"monitor": "val/mIoU"}}
    config["trainer"]["callbacks"] = [own]
    cli = build_lightning_cli(["-c", write_config(workdir / "own.yaml", config)], run=False)
    checkpoints = [c for c in cli.trainer.callbacks if type(c).__name__ == "ModelCheckpoint"]
    assert [c.monitor for c in checkpoints] == ["val/mIoU"]


def test_seed_everything_makes_the_model_reproducible(demo, workdir):
    config = write_config(workdir / "seed.yaml", make_config(demo, workdir))
    first = build_lightning_cli(["-c", config], run=False).model.state_dict()
    second = build_lightning_cli(["-c", config], run=False).model.state_dict()
    other = build_lightning_cli(["-c", config, "--seed_everything", "1"], run=False).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_print_config_resolves_short_names(demo, workdir, capsys):
    config = write_config(workdir / "print.yaml", make_config(demo, workdir))
    code, out, _ = run_cli(["fit", "-c", config, "--print_config"], capsys)
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["model"]["class_path"].endswith(".SemanticSegmentationTask")
    assert printed["data"]["class_path"].endswith(".GenericNonGeoSegmentationDataModule")
    assert printed["custom_modules_path"] == "cli_test_modules"


@pytest.mark.parametrize("how", ["yaml", "flag", "env"])
def test_custom_modules_path_yaml_flag_and_env(demo, workdir, monkeypatch, how):
    (workdir / "extra").mkdir()
    (workdir / "extra" / "other_cnn.py").write_text(tiny_cnn_module("cli_extra_cnn"))
    config = make_config(demo, workdir)
    config["model"]["init_args"]["model_args"]["backbone"] = "cli_extra_cnn"
    args = ["-c", write_config(workdir / "custom.yaml", config)]
    if how == "yaml":
        config["custom_modules_path"] = "extra/other_cnn.py"
        args = ["-c", write_config(workdir / "custom.yaml", config)]
    elif how == "flag":
        args += ["--custom_modules_path", "extra/other_cnn.py"]
    else:
        monkeypatch.setenv("TERRATORCH_CUSTOM_MODULE_PATH", "extra/other_cnn.py")
    cli = build_lightning_cli(args, run=False)
    assert type(cli.model.model.encoder).__name__ == "cli_extra_cnn"


def test_custom_module_paths_are_found_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setenv("TERRATORCH_CUSTOM_MODULE_PATH", "from_env")
    config = tmp_path / "c.yaml"
    config.write_text("custom_modules_path: [from_yaml_a, from_yaml_b]\n")
    args = ["fit", "-c", str(config), "--custom_modules_path=from_flag"]
    assert custom_module_paths(args) == ["from_env", "from_yaml_a", "from_yaml_b", "from_flag"]


# ----------------------------------------------------------------------------- predict


def predict_config(demo: Any, workdir: Path, **extra: Any) -> dict[str, Any]:
    config = make_config(demo, workdir)
    config["data"]["init_args"]["predict_data_root"] = str(demo.image_dir)
    config.update(extra)
    return config


def test_predict_writes_georeferenced_geotiffs(demo, workdir, capsys):
    config = predict_config(demo, workdir, predict_output_dir="preds", output_file_prefix="seg_")
    code, _, err = run_cli(["predict", "-c", write_config(workdir / "predict.yaml", config)], capsys)
    assert code == 0, err
    inputs = sorted(demo.image_dir.glob(demo.img_grep))
    outputs = sorted((workdir / "preds").glob("*.tif"))
    assert [p.name for p in outputs] == [f"seg_{p.stem}_pred.tif" for p in inputs]
    for source, written in zip(inputs, outputs):
        with rasterio.open(source) as src, rasterio.open(written) as out:
            assert out.crs == src.crs and out.transform == src.transform
            assert (out.height, out.width, out.count) == (src.height, src.width, 1)
            assert out.dtypes[0] == "uint8" and out.nodata == 255  # -9999 cannot be a uint8 class map value
            classes = out.read(1)
            input_nodata = (src.read_masks() == 0).any(axis=0)
            assert (classes[input_nodata] == 255).all()
            assert set(np.unique(classes[~input_nodata])) <= {0, 1, 2}
    assert input_nodata.any(), "the demo chips have nodata pixels, so the nodata check above is exercised"


def test_predict_out_dtype_and_same_stems_in_one_batch(demo, workdir, capsys):
    for folder in ("a", "b"):  # two inputs named x_img.tif in one batch of 2
        (workdir / "scenes" / folder).mkdir(parents=True)
        shutil.copy(sorted(demo.image_dir.glob(demo.img_grep))[0], workdir / "scenes" / folder / "x_img.tif")
    config = predict_config(demo, workdir, predict_output_dir="preds", out_dtype="int16")
    config["data"]["init_args"].update(predict_data_root="scenes", img_grep="*/*_img.tif")
    code, _, err = run_cli(["predict", "-c", write_config(workdir / "p.yaml", config)], capsys)
    assert code == 0, err
    outputs = sorted(p.name for p in (workdir / "preds").glob("*.tif"))
    assert outputs == ["x_img_pred.tif", "x_img_pred_1.tif"]
    with rasterio.open(workdir / "preds" / outputs[0]) as out:
        assert out.dtypes[0] == "int16" and out.nodata == -9999  # the input's nodata fits int16


def test_predict_tiled_in_memory_and_streaming_agree(demo, workdir, capsys):
    scenes = workdir / "scenes"
    scenes.mkdir()
    make_demo_scene(scenes / "big_img.tif", 80, 72, seed=3)
    tiles = {"crop": 32, "stride": 24, "batch_size": 4, "blend": "cosine"}
    config = predict_config(demo, workdir)
    config["model"]["init_args"]["tiled_inference_parameters"] = tiles
    config["data"]["init_args"].update(predict_data_root="scenes", batch_size=1)
    path = write_config(workdir / "tiled.yaml", config)
    code, _, err = run_cli(["predict", "-c", path, "--predict_output_dir", "memory"], capsys)
    assert code == 0, err
    args = ["predict", "-c", path, "--predict_output_dir", "stream", "--predict_streaming", "true"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    with (
        rasterio.open(workdir / "memory" / "big_img_pred.tif") as a,
        rasterio.open(workdir / "stream" / "big_img_pred.tif") as b,
    ):
        assert (a.height, a.width) == (b.height, b.width) == (80, 72)
        assert a.transform == b.transform and a.crs == b.crs
        agreement = (a.read(1) == b.read(1)).mean()
    assert agreement > 0.999  # same crops, weights and normalisation; only float rounding may differ


def test_predict_from_checkpoint_uses_trained_weights(demo, workdir, capsys):
    config = write_config(workdir / "fit.yaml", make_config(demo, workdir))
    cli = build_lightning_cli(["fit", "-c", config])
    ckpt = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    pconfig = predict_config(demo, workdir, predict_output_dir="preds")
    path = write_config(workdir / "p.yaml", pconfig)
    predicted = build_lightning_cli(["predict", "-c", path, "--ckpt_path", str(ckpt)])
    trained = cli.model.state_dict()
    loaded = predicted.model.state_dict()
    assert all(torch.equal(trained[k], loaded[k].to(trained[k].device)) for k in trained)


# ----------------------------------------------------------------------------- compute_statistics


def test_compute_statistics_subcommand(demo, workdir, capsys):
    from terratorch.datasets.statistics import compute_statistics

    config = write_config(workdir / "stats.yaml", make_config(demo, workdir))
    code, out, err = run_cli(["compute_statistics", "-c", config, "--output", "stats_out.yaml"], capsys)
    assert code == 0, err
    printed = yaml.safe_load(out)
    expected = compute_statistics(demo.make_datamodule())
    assert printed["means"] == pytest.approx(expected["means"])
    assert printed["stds"] == pytest.approx(expected["stds"])
    assert yaml.safe_load((workdir / "stats_out.yaml").read_text()) == printed


# ----------------------------------------------------------------------------- bad input


def bad_run(demo, workdir, capsys, config: dict[str, Any], *extra: str, command: str = "fit") -> str:
    args = [command, "-c", write_config(workdir / "bad.yaml", config), *extra]
    code, _, err = run_cli(args, capsys)
    assert code != 0
    assert "Traceback" not in err
    return err


def test_unknown_top_level_key_lists_valid_keys(demo, workdir, capsys):
    err = bad_run(demo, workdir, capsys, make_config(demo, workdir, trainr={"max_epochs": 1}))
    assert "trainr: unknown key. Did you mean 'trainer'?" in err
    assert "Valid keys here:" in err and "custom_modules_path" in err and "predict_output_dir" in err


def test_unknown_trainer_key_suggests(demo, workdir, capsys):
    config = make_config(demo, workdir)
    config["trainer"]["max_epoch"] = 1
    err = bad_run(demo, workdir, capsys, config)
    assert "trainer.max_epoch: unknown key. Did you mean 'max_epochs'" in err
    assert "trainer.max_steps" in err


def test_unknown_task_argument_lists_arguments(demo, workdir, capsys):
    config = make_config(demo, workdir)
    config["model"]["init_args"]["los"] = "ce"
    err = bad_run(demo, workdir, capsys, config)
    assert "model.init_args.los: SemanticSegmentationTask does not take an argument 'los'" in err
    assert "Did you mean 'loss'" in err and "Valid arguments of SemanticSegmentationTask:" in err


def test_unknown_transform_argument_warns_and_is_dropped(demo, workdir):
    # The reference hands unknown transform arguments to albumentations 2, which ignores them with a
    # warning; ours drops them with a warning that lists the valid arguments.
    from terratorch.cli.config_compat import AlbumentationsArgumentWarning
    from terratorch.cli_tools import build_lightning_cli

    config = make_config(demo, workdir)
    config["data"]["init_args"]["train_transform"] = [
        {"class_path": "albumentations.HorizontalFlip", "init_args": {"q": 1}}
    ]
    path = write_config(workdir / "config.yaml", config)
    with pytest.warns(
        AlbumentationsArgumentWarning,
        match=r"HorizontalFlip.*'q' dropped.*Valid arguments of HorizontalFlip: p",
    ):
        cli = build_lightning_cli(["-c", path], run=False)
    transforms = cli.config["data"]["init_args"]["train_transform"]
    assert [t["class_path"] for t in transforms] == ["albumentations.HorizontalFlip"]
    assert "q" not in transforms[0]["init_args"]


def test_unknown_class_name_suggests(demo, workdir, capsys):
    config = make_config(demo, workdir)
    config["model"]["class_path"] = "SemanticSegmentationTsk"
    err = bad_run(demo, workdir, capsys, config)
    assert (
        "model.class_path: unknown class 'SemanticSegmentationTsk'. Did you mean 'SemanticSegmentationTask'"
        in err
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        # the task's messages, in either did-you-mean spelling ("Did you mean: ce" or "Did you mean 'ce'")
        ("loss", "cee", r"Unknown loss 'cee'.*Did you mean:? '?ce"),
        ("optimizer", "Adamm", r"Unknown optimizer 'Adamm'.*Did you mean:? '?Adam"),
        ("scheduler", "CosineLR", r"Unknown scheduler 'CosineLR'.*CosineAnnealingLR"),
    ],
)
def test_unknown_loss_optimizer_scheduler(demo, workdir, capsys, key, value, expected):

    config = make_config(demo, workdir)
    config["model"]["init_args"][key] = value
    err = bad_run(demo, workdir, capsys, config)
    assert "building SemanticSegmentationTask failed: ValueError:" in err
    assert re.search(expected, err), err


def test_missing_files(demo, workdir, capsys):
    code, _, err = run_cli(["fit", "-c", "does_not_exist.yaml"], capsys)
    assert code != 0 and "does_not_exist.yaml" in err and "Traceback" not in err
    config = make_config(demo, workdir)
    config["data"]["init_args"]["train_data_root"] = "no/such/dir"
    err = bad_run(demo, workdir, capsys, config)
    assert "FileNotFoundError: train_data_root" in err and "no/such/dir" in err
    err = bad_run(
        demo, workdir, capsys, make_config(demo, workdir), "--ckpt_path", "missing.ckpt", command="validate"
    )
    assert "ckpt_path: checkpoint file 'missing.ckpt' does not exist" in err


def test_missing_custom_module_path(demo, workdir, capsys):
    config = make_config(demo, workdir, custom_modules_path="nowhere/modules")
    err = bad_run(demo, workdir, capsys, config)
    assert "Custom modules path 'nowhere/modules' does not exist" in err


def test_predict_needs_output_dir_and_valid_dtype(demo, workdir, capsys):
    err = bad_run(demo, workdir, capsys, predict_config(demo, workdir), command="predict")
    assert "predict needs predict_output_dir" in err
    config = predict_config(demo, workdir, predict_output_dir="out", out_dtype="uint9")
    err = bad_run(demo, workdir, capsys, config, command="predict")
    assert re.search(r"out_dtype 'uint9' is not a raster dtype\. Did you mean:? '?uint8", err), err


def test_streaming_needs_tiled_parameters(demo, workdir, capsys):
    config = predict_config(demo, workdir, predict_output_dir="out", predict_streaming=True)
    err = bad_run(demo, workdir, capsys, config, command="predict")
    assert "predict_streaming needs the task's tiled_inference_parameters" in err


def test_verbose_shows_the_original_exception(demo, workdir):
    config = make_config(demo, workdir)
    config["data"]["init_args"]["train_data_root"] = "no/such/dir"
    with pytest.raises(FileNotFoundError, match="train_data_root"):
        terratorch_main(["--verbose", "fit", "-c", write_config(workdir / "v.yaml", config)])


def test_explain_parse_error_strips_union_noise():
    message = (
        'Parser key "trainer.callbacks":\n  Does not validate against any of the Union subtypes\n'
        "  Subtypes: [<class 'list'>, <class 'NoneType'>]\n  Errors:\n    - something specific is wrong\n"
        "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: x"
    )
    assert (
        explain_parse_error(message) == 'Parser key "trainer.callbacks":\n    - something specific is wrong'
    )


# ----------------------------------------------------------------------------- Python inference entry point


def test_lightning_inference_model_from_fit_outputs(demo, workdir):
    """``LightningInferenceModel`` on what ``fit`` leaves: config_deploy.yaml and last.ckpt."""
    from terratorch.cli_tools import LightningInferenceModel

    config = write_config(workdir / "fit.yaml", make_config(demo, workdir))
    fitted = build_lightning_cli(["fit", "-c", config])
    ckpt = Path(fitted.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    deploy = Path(fitted.trainer.log_dir) / "config_deploy.yaml"
    assert deploy.is_file()
    original = Path(fitted.trainer.log_dir) / "fit.yaml"  # the original config file is copied too
    assert original.read_text() == Path(config).read_text()

    bands = list(demo.band_names)
    model = LightningInferenceModel.from_config(
        deploy, ckpt, predict_dataset_bands=bands, predict_output_bands=bands
    )
    assert model.datamodule.predict_dataset_bands == bands
    trained = fitted.model.model.state_dict()
    loaded = model.model.model.state_dict()
    assert trained.keys() == loaded.keys()
    assert all(torch.equal(trained[k].cpu(), loaded[k].cpu()) for k in trained)

    inputs = sorted(demo.image_dir.glob(demo.img_grep))
    predictions, names = model.inference_on_dir(demo.image_dir)
    assert sorted(Path(n).name for n in names) == [p.name for p in inputs]
    with rasterio.open(inputs[0]) as src:
        size = (src.height, src.width)
    assert predictions.shape == (len(inputs), *size)
    assert predictions.min() >= 0 and predictions.max() < 3  # class indices of the 3-class task

    first = [Path(n).name for n in names].index(inputs[0].name)
    single = model.inference(inputs[0])
    assert single.shape == size
    assert torch.equal(single, predictions[first])
    assert not any(type(c).__name__.endswith("Writer") for c in model.trainer.callbacks)


def test_my_trainer_compute_statistics_on_demo_data(demo, workdir):
    """``MyTrainer.compute_statistics`` returns the statistics of the raw train split."""
    from terratorch.cli_tools import MyTrainer
    from terratorch.datamodules.generic_pixel_wise_data_module import GenericNonGeoSegmentationDataModule

    kwargs = demo.datamodule_kwargs(batch_size=2, num_workers=0, num_classes=3)
    stats = MyTrainer(logger=False).compute_statistics(GenericNonGeoSegmentationDataModule(**kwargs))
    assert len(stats["image"]["means"]) == len(demo.band_names)
    assert len(stats["image"]["stds"]) == len(demo.band_names)
    assert set(stats["mask"]) <= {-1, 0, 1, 2}


def test_compute_statistics_through_my_lightning_cli(demo, workdir):
    """The ``compute_statistics`` subcommand of :class:`MyLightningCLI` runs on ``MyTrainer``."""
    config = write_config(workdir / "stats.yaml", make_config(demo, workdir))  # a fit config, as is
    cli = build_lightning_cli(["compute_statistics", "-c", config])
    assert type(cli.trainer).__name__ == "MyTrainer"
    assert cli.subcommand == "compute_statistics"
