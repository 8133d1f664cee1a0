"""GeoTIFFPredictionWriter and streaming helpers, called directly (the CLI tests run them end to end)."""

from __future__ import annotations

import errno
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from terratorch.cli.prediction_writer import (
    GeoTIFFPredictionWriter,
    check_out_dtype,
    default_dtype,
    output_nodata,
    streaming_parameters,
)
from terratorch.datasets.utils import write_geotiff
from terratorch.io.geotiff import GeoTIFFWriteError

TRANSFORM = Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 4_000_000.0)


def source(tmp_path: Path, name: str, height: int = 6, width: int = 5, nodata: float | None = -1.0) -> Path:
    """A 2-band float32 GeoTIFF whose pixel (0, 0) is nodata in band 2 only."""
    data = np.ones((2, height, width), dtype=np.float32)
    if nodata is not None:
        data[1, 0, 0] = nodata
    return write_geotiff(tmp_path / name, data, nodata=nodata, crs=32617, transform=TRANSFORM)


def test_class_map_keeps_georeference_and_marks_nodata(tmp_path):
    src = source(tmp_path / "in", "a_img.tif")
    writer = GeoTIFFPredictionWriter(tmp_path / "out", output_file_prefix="p_")
    writer.on_predict_start(None, None)
    prediction = torch.full((1, 6, 5), 2, dtype=torch.int64)
    writer.write_on_batch_end(None, None, {"prediction": prediction, "filename": [str(src)]}, None, {}, 0, 0)
    with rasterio.open(tmp_path / "out" / "p_a_img_pred.tif") as out:
        assert out.crs.to_epsg() == 32617 and out.transform == TRANSFORM
        assert out.dtypes[0] == "uint8" and out.nodata == 255  # -1 does not fit uint8
        values = out.read(1)
    assert values[0, 0] == 255 and (values.ravel()[1:] == 2).all()


def test_regression_values_keep_the_input_nodata(tmp_path):
    src = source(tmp_path, "b.tif", nodata=-9999.0)
    writer = GeoTIFFPredictionWriter(tmp_path / "out")
    writer.on_predict_start(None, None)
    path = writer.write_one(torch.full((6, 5), 0.25), src)
    with rasterio.open(path) as out:
        assert out.dtypes[0] == "float32" and out.nodata == -9999.0
        values = out.read(1)
    assert values[0, 0] == -9999.0 and np.allclose(values.ravel()[1:], 0.25)


def test_input_without_nodata_writes_every_pixel(tmp_path):
    src = source(tmp_path, "c.tif", nodata=None)
    writer = GeoTIFFPredictionWriter(tmp_path / "out")
    writer.on_predict_start(None, None)
    with rasterio.open(writer.write_one(torch.zeros(6, 5, dtype=torch.int64), src)) as out:
        assert out.nodata is None and (out.read(1) == 0).all()


def test_file_too_large_names_the_output_file(tmp_path, monkeypatch):
    src = source(tmp_path, "e.tif")
    writer = GeoTIFFPredictionWriter(tmp_path / "out")
    writer.on_predict_start(None, None)

    def too_large(self, *args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", too_large)
    with pytest.raises(
        GeoTIFFWriteError, match=r"cannot write GeoTIFF '.*out/e_pred\.tif'.*File too large"
    ) as err:
        writer.write_one(torch.zeros(6, 5), src)
    assert err.value.errno == errno.EFBIG and err.value.__cause__.errno == errno.EFBIG


def test_same_stem_gets_a_counter_and_run_restarts_names(tmp_path):
    first, second = source(tmp_path / "a", "x.tif"), source(tmp_path / "b", "x.tif")
    writer = GeoTIFFPredictionWriter(tmp_path / "out")
    writer.on_predict_start(None, None)
    batch = {"prediction": torch.zeros(2, 6, 5, dtype=torch.int64), "filename": [str(first), str(second)]}
    writer.write_on_batch_end(None, None, batch, None, {}, 0, 0)
    assert [p.name for p in writer.written] == ["x_pred.tif", "x_pred_1.tif"]
    writer.on_predict_start(None, None)  # a new run overwrites its own previous outputs, not its siblings
    writer.write_on_batch_end(None, None, batch, None, {}, 0, 0)
    assert [p.name for p in writer.written] == ["x_pred.tif", "x_pred_1.tif"]


def test_per_image_predictions_go_to_csv(tmp_path):
    writer = GeoTIFFPredictionWriter(tmp_path / "out", output_file_prefix="cls_")
    writer.on_predict_start(None, None)
    batch = {"prediction": torch.tensor([1, 0]), "probabilities": torch.tensor([[0.2, 0.8], [0.9, 0.1]])}
    batch["filename"] = ["a.tif", "b.tif"]
    writer.write_on_batch_end(None, None, batch, None, {}, 0, 0)
    writer.on_predict_end(None, None)
    lines = (tmp_path / "out" / "cls_predictions.csv").read_text().splitlines()
    assert lines[0] == "filename,prediction,probability_0,probability_1"
    rows = [line.split(",") for line in lines[1:]]
    assert [row[:2] for row in rows] == [["a.tif", "1"], ["b.tif", "0"]]
    assert [float(v) for v in rows[0][2:]] == pytest.approx([0.2, 0.8])


def test_dtype_and_nodata_choice():
    assert default_dtype(np.array([0, 2]), num_classes=3) == "uint8"
    assert default_dtype(np.array([0, 300]), num_classes=301) == "uint16"
    assert default_dtype(np.array([0.5]), num_classes=None) == "float32"
    assert output_nodata(-9999.0, "int16", class_map=True, num_classes=3) == -9999.0
    assert output_nodata(1.0, "uint8", class_map=True, num_classes=3) == 255  # 1 is a class index
    assert math.isnan(output_nodata(1e39, "float32", class_map=False, num_classes=None))
    assert output_nodata(None, "uint8", class_map=True, num_classes=3) is None


def test_bad_input(tmp_path):
    with pytest.raises(
        ValueError, match=r"out_dtype 'float' is not a raster dtype\. Did you mean: float64, float32"
    ):
        check_out_dtype("float")
    src = source(tmp_path, "d.tif")
    writer = GeoTIFFPredictionWriter(tmp_path / "out", out_dtype="uint8")
    writer.on_predict_start(None, None)
    with pytest.raises(ValueError, match=r"values in \[300.0, 300.0\], outside out_dtype='uint8'"):
        writer.write_one(torch.full((6, 5), 300, dtype=torch.int64), src)
    with pytest.raises(ValueError, match=r"Prediction for .*d.tif is 4x4 but the file is 6x5"):
        writer.write_one(torch.zeros(4, 4, dtype=torch.int64), src)
    with pytest.raises(ValueError, match=r"the batch has no 'filename' entry"):
        writer.write_on_batch_end(None, None, {"prediction": torch.zeros(1, 6, 5)}, None, {}, 0, 0)
    with pytest.raises(TypeError, match=r"a dict with a 'prediction' tensor"):
        writer.write_on_batch_end(None, None, [torch.zeros(1)], None, {}, 0, 0)


def test_streaming_parameters():
    assert streaming_parameters({"h_crop": 64, "w_crop": 64, "stride": 48, "verbose": True}) == {
        "crop": 64,
        "stride": 48,
    }
    with pytest.raises(ValueError, match=r"needs the task's tiled_inference_parameters"):
        streaming_parameters(None)
    with pytest.raises(ValueError, match=r"square crops: h_crop=64 differs from w_crop=32"):
        streaming_parameters({"h_crop": 64, "w_crop": 32})
    with pytest.raises(ValueError, match=r"\['delta'\] are not supported by predict_streaming"):
        streaming_parameters({"crop": 64, "delta": 8})
