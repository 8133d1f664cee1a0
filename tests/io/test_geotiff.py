"""The GeoTIFF rules of :mod:`terratorch.io.geotiff`: dtypes, nodata, casting, georeference, windows."""

from __future__ import annotations

import errno
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window

from terratorch.io import geotiff

TRANSFORM = Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 4_000_000.0)


def scene(tmp_path, name="scene.tif", bands=3, height=40, width=30, nodata=-9999.0, dtype="int16"):
    """A georeferenced scene whose values encode (band, row, col); pixel (2, 3) of band 1 is nodata."""
    b, r, c = np.meshgrid(np.arange(bands), np.arange(height), np.arange(width), indexing="ij")
    data = (b * 10_000 + r * 100 + c).astype(dtype)
    if nodata is not None:
        data[1, 2, 3] = nodata
    return geotiff.write_geotiff(tmp_path / name, data, nodata=nodata, crs=32617, transform=TRANSFORM), data


# ----------------------------------------------------------------------------- dtypes and nodata


def test_check_raster_dtype_suggests_close_names() -> None:
    assert geotiff.check_raster_dtype("uint16") == "uint16"
    assert geotiff.check_raster_dtype(None) is None
    with pytest.raises(ValueError, match=r"out_dtype 'unit8' is not a raster dtype\. Did you mean: uint8"):
        geotiff.check_raster_dtype("unit8")
    with pytest.raises(ValueError, match=r"^dtype 'int64' is not a raster dtype.*Valid: uint8, int8"):
        geotiff.check_raster_dtype("int64", key="dtype")


@pytest.mark.parametrize(
    ("top", "dtype"), [(0, "uint8"), (254, "uint8"), (255, "uint16"), (65534, "uint16"), (70_000, "uint32")]
)
def test_class_map_dtype_leaves_the_maximum_free_for_nodata(top: int, dtype: str) -> None:
    assert geotiff.class_map_dtype(top) == dtype


@pytest.mark.parametrize(
    ("value", "dtype", "fits"),
    [
        (255, "uint8", True),
        (256, "uint8", False),
        (-1, "uint8", False),
        (-1, "int8", True),
        (1.5, "int16", False),
        (float("nan"), "int32", False),
        (float("nan"), "float32", True),
        (1e39, "float32", False),
        (1e39, "float64", True),
    ],
)
def test_fits_dtype(value: float, dtype: str, fits: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning from the comparison either
        assert geotiff.fits_dtype(value, dtype) is fits


def test_output_nodata_keeps_a_fitting_value_and_falls_back_otherwise() -> None:
    assert geotiff.output_nodata(None, "uint8", n_classes=3) is None
    assert geotiff.output_nodata(-9999.0, "int16") == -9999.0
    assert geotiff.output_nodata(-9999.0, "uint8", n_classes=3) == 255  # does not fit
    assert geotiff.output_nodata(1.0, "uint8", n_classes=3) == 255  # a class index
    assert geotiff.output_nodata(1.0, "float32") == 1.0  # not a class map: 1 is a value like any other
    assert math.isnan(geotiff.output_nodata(1e39, "float32"))


def test_resolve_nodata_validates_a_requested_value_and_warns_on_fallback() -> None:
    assert geotiff.resolve_nodata(-1.0, None, "float32") == -1.0
    with pytest.raises(ValueError, match=r"nodata=2 cannot be used with out_dtype='uint8' and 4 classes"):
        geotiff.resolve_nodata(2, None, "uint8", n_classes=4)
    with pytest.raises(ValueError, match="nodata=300 cannot be used"):
        geotiff.resolve_nodata(300, None, "uint8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(geotiff.resolve_nodata(None, float("nan"), "float32"))  # NaN kept, no warning
    with pytest.warns(UserWarning, match="writing nodata=255.0 instead"):
        assert geotiff.resolve_nodata(None, -9999.0, "uint8", n_classes=4) == 255
    with pytest.raises(ValueError, match="No free nodata value in 'uint8' for 256 classes"):
        geotiff.resolve_nodata(None, -1.0, "uint8", n_classes=256)


def test_cast_rounds_floats_and_refuses_wrap_around() -> None:
    values = np.array([0.4, 1.6, 2.5, 254.9])
    cast = geotiff.cast_to_dtype(values, "uint8")
    assert cast.dtype == np.uint8 and cast.tolist() == [0, 2, 2, 255]  # round half to even
    with pytest.raises(
        ValueError, match=r"Scene a\.tif has values in \[-1\.0, 3\.0\], outside out_dtype='uint8'"
    ):
        geotiff.cast_to_dtype(np.array([-1, 3]), "uint8", what="Scene a.tif")
    with pytest.raises(ValueError, match=r"values in \[0\.0, 300\.0\].*\[0, 255\]"):
        geotiff.cast_to_dtype(np.array([0.0, 300.0]), "uint8")
    buffer = np.arange(4, dtype=np.float32)
    out = geotiff.cast_to_dtype(buffer, "float32")
    buffer[:] = -1  # the caller may reuse its buffer: the cast never shares memory
    assert out.tolist() == [0, 1, 2, 3]
    assert geotiff.cast_to_dtype(np.zeros((0, 2)), "int8").dtype == np.int8


def test_nodata_masks_numpy_and_torch_alike() -> None:
    data = np.array([[[1.0, np.nan], [-9999.0, 2.0]], [[-9999.0, 0.0], [3.0, 4.0]]], dtype=np.float32)
    mask = geotiff.nodata_mask(data, -9999.0)
    assert mask.tolist() == [[[False, True], [True, False]], [[True, False], [False, False]]]
    assert np.array_equal(geotiff.nodata_mask(torch.from_numpy(data), -9999.0).numpy(), mask)
    # The GDAL rule (outputs): NaN is nodata only when the nodata value is NaN.
    assert geotiff.invalid_pixels(data, -9999.0).tolist() == [[True, False], [True, False]]
    assert geotiff.invalid_pixels(data, float("nan")).tolist() == [[False, True], [False, False]]
    assert geotiff.invalid_pixels(data, None) is None
    assert geotiff.nodata_mask(np.zeros((1, 2, 2), np.int16), None) is None  # integers hold no NaN


def test_scale_and_fill_scales_before_filling() -> None:
    raw = np.array([[[100, -9999], [50, 0]]], dtype=np.int16)
    values, missing = geotiff.scale_and_fill(raw, scale=0.01, nodata=-9999, fill=-1.0)
    assert values.dtype == np.float32 and missing.tolist() == [[[False, True], [False, False]]]
    np.testing.assert_allclose(values, [[[1.0, -1.0], [0.5, 0.0]]])
    crops = torch.tensor([[[float("nan"), 4.0]]])
    filled, _ = geotiff.scale_and_fill(crops, scale=0.5, nodata=None, fill=0.0)
    assert filled.tolist() == [[[0.0, 2.0]]] and math.isnan(crops[0, 0, 0])  # input untouched
    kept, _ = geotiff.scale_and_fill(raw, nodata=-9999)
    assert kept[0, 0, 1] == -9999 and kept.base is None


# ----------------------------------------------------------------------------- reading


def test_windowed_read_and_header(tmp_path) -> None:
    path, data = scene(tmp_path)
    read = geotiff.read_raster(path, lambda count: [3, 1], window=Window(2, 5, 4, 3))
    assert read.count == 3 and read.nodata_value == -9999.0
    assert np.array_equal(read.data, data[[2, 0], 5:8, 2:6])
    header = geotiff.read_header(path)
    assert (header.count, header.height, header.width) == (3, 40, 30) == geotiff.raster_shape(path)
    assert header.crs.to_epsg() == 32617 and header.transform == TRANSFORM and header.nodata == -9999.0


def test_read_window_returns_rows_and_their_nodata(tmp_path) -> None:
    path, data = scene(tmp_path)
    with rasterio.open(path) as src:
        rows, invalid = geotiff.read_window(src, [2, 1], top=1, rows=4)
        _, none = geotiff.read_window(src, [1], top=1, rows=4)
    assert np.array_equal(rows, data[[1, 0], 1:5])
    assert invalid.shape == (4, 30) and invalid.sum() == 1 and invalid[1, 3]
    assert none is not None and not none.any()  # band 1 declares nodata but holds none here


def test_unreadable_files_name_the_file(tmp_path) -> None:
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    for path in (tmp_path / "broken.tif", tmp_path / "missing.tif"):
        with pytest.raises(geotiff.GeoTIFFError, match=str(path.name)) as caught:
            geotiff.read_header(path)
        assert isinstance(caught.value, OSError) and caught.value.__cause__ is not None


def test_check_band_indexes(tmp_path) -> None:
    assert geotiff.check_band_indexes(None, 3, "a.tif") == [1, 2, 3]
    assert geotiff.check_band_indexes([3, 1], 3, "a.tif") == [3, 1]
    with pytest.raises(ValueError, match=r"bands=\[0, True\] is invalid for a.tif \(3 bands\).*\[0, True\]"):
        geotiff.check_band_indexes([0, True], 3, "a.tif")
    with pytest.raises(ValueError, match=r"bands=\[\] is invalid"):
        geotiff.check_band_indexes([], 3, "a.tif")


# ----------------------------------------------------------------------------- georeference and writing


def test_scaled_transform_keeps_the_footprint() -> None:
    assert geotiff.scaled_transform(TRANSFORM, (40, 30), (40, 30)) is TRANSFORM
    half = geotiff.scaled_transform(TRANSFORM, (40, 30), (20, 15))
    assert (half.a, half.e, half.c, half.f) == (20.0, -20.0, 300_000.0, 4_000_000.0)
    assert half @ (15, 20) == TRANSFORM @ (30, 40)  # the far corner stays put
    uneven = geotiff.scaled_transform(TRANSFORM, (40, 30), (80, 10))
    assert (uneven.a, uneven.e) == (30.0, -5.0)


def test_profile_preserves_georeference_on_the_same_and_a_coarser_grid(tmp_path) -> None:
    path, _ = scene(tmp_path)
    with rasterio.open(path) as src:
        same = geotiff.georeferenced_profile(src, count=2, dtype="uint8", nodata=255, compress="lzw")
        coarse = geotiff.georeferenced_profile(
            src, count=1, dtype="float32", nodata=None, height=10, width=15
        )
    assert same["transform"] == TRANSFORM and same["crs"].to_epsg() == 32617
    assert (same["height"], same["width"], same["count"], same["compress"]) == (40, 30, 2, "lzw")
    out = geotiff.write_array(tmp_path / "coarse.tif", np.zeros((1, 10, 15), np.float32), coarse)
    with rasterio.open(path) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs and dst.bounds == src.bounds and dst.res == (20.0, 40.0)


def test_resample_nearest_mask() -> None:
    mask = np.array([[True, False], [False, False]])
    assert geotiff.resample_nearest(mask, (2, 2)) is mask
    assert geotiff.resample_nearest(mask, (4, 4)).sum() == 4
    assert geotiff.resample_nearest(np.eye(4, dtype=bool), (2, 2)).tolist() == [[True, False], [False, True]]


def test_row_writer_round_trip_in_uneven_chunks(tmp_path) -> None:
    path, _ = scene(tmp_path, height=600, width=40)
    data = np.random.default_rng(0).integers(0, 200, size=(2, 600, 40)).astype(np.uint8)
    with rasterio.open(path) as src:
        profile = geotiff.georeferenced_profile(
            src, count=2, dtype="uint8", nodata=255, **geotiff.streaming_creation_options("uint8")
        )
    writer = geotiff.RowWriter(tmp_path / "out.tif", profile)
    for start, stop in ((0, 100), (100, 300), (300, 599)):
        writer.write(data[:, start:stop])
    writer.write(data[:, 599:], final=True)
    writer.close()
    with rasterio.open(tmp_path / "out.tif") as out:
        assert out.transform == TRANSFORM and out.crs.to_epsg() == 32617 and out.nodata == 255
        assert out.profile["tiled"] and out.block_shapes[0] == (geotiff.BLOCK, geotiff.BLOCK)
        assert out.compression.value == "DEFLATE"
        assert np.array_equal(out.read(), data)


def test_write_error_names_the_file_and_keeps_the_cause(tmp_path) -> None:
    (tmp_path / "not_a_dir").write_text("")
    target = tmp_path / "not_a_dir" / "out.tif"
    with pytest.raises(
        geotiff.GeoTIFFWriteError, match=r"cannot write GeoTIFF '.*not_a_dir/out\.tif'"
    ) as caught:
        geotiff.write_geotiff(target, np.zeros((2, 2), np.uint8))
    assert isinstance(caught.value, OSError) and isinstance(caught.value.__cause__, OSError)
    assert caught.value.filename == str(target)


def test_file_too_large_while_writing_rows(tmp_path, monkeypatch) -> None:
    path, _ = scene(tmp_path)
    with rasterio.open(path) as src:
        profile = geotiff.georeferenced_profile(src, count=1, dtype="uint8", nodata=None)
    writer = geotiff.RowWriter(tmp_path / "big.tif", profile)

    def too_large(self, *args, **kwargs):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", too_large)
    with pytest.raises(
        geotiff.GeoTIFFWriteError, match=r"'.*big\.tif': \[Errno 27\] File too large"
    ) as caught:
        writer.write(np.zeros((1, 40, 30), np.uint8), final=True)
    assert caught.value.errno == errno.EFBIG and caught.value.__cause__.errno == errno.EFBIG
    monkeypatch.undo()
    writer.close()


def test_block_cache_option_respects_the_user(tmp_path, monkeypatch) -> None:
    path, _ = scene(tmp_path, width=300)
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with rasterio.open(path) as src:
        block_h, block_w = src.block_shapes[0]
        row_bytes = math.ceil(300 / block_w) * block_w * block_h * 3 * 2  # int16, 3 bands
        assert geotiff.block_cache_option(src) == {"GDAL_CACHEMAX": 2 * row_bytes + 64 * 2**20}
        with rasterio.Env(GDAL_CACHEMAX=128):
            assert geotiff.block_cache_option(src) == {}


def test_importing_the_module_does_not_load_rasterio() -> None:
    code = "import sys, terratorch.io.geotiff; print('rasterio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
