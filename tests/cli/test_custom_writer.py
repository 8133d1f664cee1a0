"""Reference-compatible helpers of ``terratorch.cli_tools``: GeoTIFF I/O, ``CustomWriter``, configs."""

from __future__ import annotations

import errno
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import yaml
from jsonargparse import Namespace
from rasterio.transform import from_origin

from terratorch.cli_tools import (
    CustomWriter,
    add_default_checkpointing_config,
    build_lightning_cli,
    clean_config_for_deployment_and_dump,
    import_custom_modules,
    save_prediction,
    write_tiff,
)
from terratorch.io.geotiff import GeoTIFFWriteError


def _scene(path: Path, nodata: float | None = 0, dtype: str = "uint16") -> Path:
    data = np.full((3, 8, 6), 7, dtype=dtype)
    data[:, 0, 0] = 0  # a nodata pixel in every band
    data[1, 2, 3] = 0  # nodata in one band only
    profile = {
        "driver": "GTiff",
        "height": 8,
        "width": 6,
        "count": 3,
        "dtype": dtype,
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4000000, 10, 10),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


class _Trainer:
    """The attributes MyLightningCLI sets on its trainer."""

    def __init__(self, out_dtype=None, output_file_prefix=None, predict_output_dir=None):
        self.out_dtype = out_dtype
        self.output_file_prefix = output_file_prefix
        self.predict_output_dir = predict_output_dir


def test_save_prediction_keeps_georeference_and_marks_input_nodata(tmp_path):
    source = _scene(tmp_path / "scene.tif")
    prediction = torch.arange(48, dtype=torch.int64).reshape(8, 6) % 5
    written = save_prediction(prediction, source, tmp_path, dtype="int16", suffix="pred")
    assert written == str(tmp_path / "scene_pred.tif")
    with rasterio.open(source) as src, rasterio.open(written) as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.count == 1 and out.dtypes[0] == "int16" and out.nodata == -1
        values = out.read(1)
    expected = prediction.numpy().copy()
    expected[0, 0] = expected[2, 3] = -1
    np.testing.assert_array_equal(values, expected)


def test_save_prediction_without_input_nodata_writes_every_value(tmp_path):
    source = _scene(tmp_path / "scene.tif", nodata=None)
    prediction = torch.rand(8, 6)
    written = save_prediction(prediction, source, tmp_path, dtype="float32", output_file_name="named")
    assert Path(written).name == "named_pred.tif"
    with rasterio.open(written) as out:
        np.testing.assert_allclose(out.read(1), prediction.numpy())


def test_save_prediction_on_a_coarser_grid_keeps_the_footprint(tmp_path):
    """A prediction at half resolution is georeferenced over the input (the reference fails on it)."""
    source = _scene(tmp_path / "scene.tif")
    with rasterio.open(source, "r+") as dst:  # nodata at the centre of output pixel (1, 1)
        dst.write(np.zeros((1, 1), dtype="uint16"), 1, window=rasterio.windows.Window(3, 3, 1, 1))
    written = save_prediction(torch.ones(4, 3, dtype=torch.int64), source, tmp_path, dtype="int16")
    with rasterio.open(source) as src, rasterio.open(written) as out:
        assert out.crs == src.crs and out.bounds == src.bounds and out.res == (20.0, 20.0)
        values = out.read(1)
    expected = np.ones((4, 3), dtype="int16")
    expected[1, 1] = -1  # each coarse pixel takes the nodata state of the input pixel at its centre
    np.testing.assert_array_equal(values, expected)


def test_save_prediction_disk_errors_name_the_output_file(tmp_path, monkeypatch):
    source = _scene(tmp_path / "scene.tif")

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full_disk)
    with pytest.raises(GeoTIFFWriteError, match=r"scene_pred\.tif'.*No space left on device") as caught:
        save_prediction(torch.zeros(8, 6), source, tmp_path)
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value.__cause__, OSError)


def test_write_tiff_sets_band_count(tmp_path):
    profile = {"driver": "GTiff", "height": 4, "width": 4, "count": 1, "dtype": "float32"}
    path = write_tiff(np.ones((2, 4, 4), dtype="float64"), tmp_path / "two.tif", profile)
    with rasterio.open(path) as out:
        assert out.count == 2 and out.dtypes == ("float32", "float32")


def test_custom_writer_writes_our_task_outputs(tmp_path):
    """Our tasks' ``{"prediction", "filename"}`` batches; dtype chosen from the values when unset."""
    files = [str(_scene(tmp_path / f"s{i}.tif")) for i in range(2)]
    out_dir = tmp_path / "out"
    writer = CustomWriter(write_interval="batch")
    batch = {"prediction": torch.ones(2, 8, 6, dtype=torch.int64), "filename": files}
    writer.write_on_batch_end(_Trainer(predict_output_dir=str(out_dir)), None, batch, None, {}, 0, 0)
    written = sorted(p.name for p in out_dir.glob("*.tif"))
    assert written == ["s0_pred.tif", "s1_pred.tif"]
    with rasterio.open(out_dir / "s0_pred.tif") as out:
        assert out.dtypes[0] == "int16"


def test_custom_writer_prefix_does_not_overwrite_later_files(tmp_path):
    """The reference writes every file of a run to ``<prefix>_pred.tif``; later ones get their stem."""
    files = [str(_scene(tmp_path / f"s{i}.tif")) for i in range(3)]
    writer = CustomWriter(output_dir=str(tmp_path / "out"), write_interval="epoch")
    trainer = _Trainer(out_dtype="float32", output_file_prefix="run")
    batches = [((torch.rand(2, 8, 6), "pred"), files[:2]), ((torch.rand(1, 8, 6), "pred"), files[2:])]
    writer.write_on_epoch_end(trainer, None, batches, None)
    written = sorted(p.name for p in (tmp_path / "out").glob("*.tif"))
    assert written == ["run_pred.tif", "run_s1_pred.tif", "run_s2_pred.tif"]


def test_custom_writer_needs_file_names(tmp_path):
    writer = CustomWriter(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="file names"):
        writer.write_on_batch_end(_Trainer(), None, {"prediction": torch.ones(1, 2, 2)}, None, {}, 0, 0)


def test_import_custom_modules_registers_a_backbone(tmp_path, monkeypatch):
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    package = tmp_path / "ref_style_modules"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from torch import nn\n"
        "from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY\n\n"
        "@TERRATORCH_BACKBONE_REGISTRY.register\n"
        "class ref_style_cnn(nn.Module):\n"
        "    pass\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    try:
        import_custom_modules(package)
        assert "ref_style_cnn" in TERRATORCH_BACKBONE_REGISTRY
    finally:
        TERRATORCH_BACKBONE_REGISTRY.unregister("ref_style_cnn")
        sys.modules.pop("ref_style_modules", None)
    with pytest.raises(ValueError, match="isn't a directory"):
        import_custom_modules(tmp_path / "missing")


def test_add_default_checkpointing_config_on_a_namespace():
    config = Namespace(subcommand="fit")
    config["fit.trainer.enable_checkpointing"] = True
    config["fit.trainer.callbacks"] = [Namespace(class_path="lightning.pytorch.callbacks.EarlyStopping")]
    result = add_default_checkpointing_config(config)
    callbacks = result["fit.trainer.callbacks"]
    assert [c.class_path for c in callbacks[1:]] == ["StateDictAwareModelCheckpoint"] * 2
    assert [c.init_args.filename for c in callbacks[1:]] == ["{epoch}", "{epoch}_state_dict"]
    assert callbacks[2].init_args.save_weights_only is True
    assert all(c.init_args.monitor == "val/loss" for c in callbacks[1:])


def test_clean_config_for_deployment_leaves_the_input_alone():
    config = {"optimizer": {"lr": 1}, "trainer": {"callbacks": [1]}, "model": {"init_args": {}}}
    text = clean_config_for_deployment_and_dump(config)
    assert config == {"optimizer": {"lr": 1}, "trainer": {"callbacks": [1]}, "model": {"init_args": {}}}
    assert yaml.safe_load(text)["trainer"] == {"logger": False, "precision": "16-mixed"}


def test_float32_precision_env(monkeypatch):
    """``terratorch_FLOAT_32_PRECISION`` sets torch's matmul precision; a bad value only warns."""
    before = torch.get_float32_matmul_precision()
    monkeypatch.setenv("terratorch_FLOAT_32_PRECISION", "medium")
    try:
        with pytest.raises(SystemExit):  # --help: the parser exits after printing
            build_lightning_cli(["fit", "--help"], run=True)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(before)
    monkeypatch.setenv("terratorch_FLOAT_32_PRECISION", "fastest")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit):
        warnings.simplefilter("always")
        build_lightning_cli(["fit", "--help"], run=True)
    assert any("terratorch_FLOAT_32_PRECISION" in str(w.message) for w in caught)
