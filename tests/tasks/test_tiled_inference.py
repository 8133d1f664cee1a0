"""Tests for terratorch.tasks.tiled_inference: crop grid, blending, memory bound, GeoTIFF streaming."""

from __future__ import annotations

import errno
import math
import warnings

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from torch import nn

from terratorch.io import geotiff
from terratorch.models.model import ModelOutput
from terratorch.tasks.tiled_inference import TileGrid, tiled_inference, tiled_inference_geotiff

# the module object (``terratorch.tasks.tiled_inference`` may also resolve to the function)
CROP, STRIDE = 32, 24
NODATA = -9999


class Recorder:
    """Wraps a model and records the shape of every crop batch it receives."""

    def __init__(self, model: nn.Module | None = None) -> None:
        self.model = model
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x.clone() if self.model is None else self.model(x)


def context_model(in_ch: int = 3, out_ch: int = 4) -> nn.Module:
    """A small conv net with a 5x5 receptive field (so tiling changes its output near crop edges)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_ch, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, out_ch, 3, padding=1)
    ).eval()


def write_scene(path, data: np.ndarray, nodata: float | None = NODATA) -> None:
    """Write a georeferenced (EPSG:32633, 30 m) GeoTIFF holding ``data`` (C, H, W)."""
    count, height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=count,
        dtype=str(data.dtype),
        crs="EPSG:32633",
        transform=Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0),
        nodata=nodata,
    ) as dst:
        dst.write(data)


def scene_array(height: int, width: int, bands: int = 3, holes: bool = True) -> np.ndarray:
    """Random int16 scene with a rectangle of nodata pixels (all bands) and one single-band hole."""
    data = np.random.default_rng(1).integers(0, 1000, (bands, height, width)).astype("int16")
    if holes:
        data[:, 5:9, 10:20] = NODATA
        data[0, 12, 3] = NODATA
    return data


def normalize(x: torch.Tensor) -> torch.Tensor:
    return (x - 500.0) / 300.0


# ----------------------------------------------------------------------------- crop grid and window
def test_grid_aligns_last_crop_with_border() -> None:
    grid = TileGrid.build(100, 32, CROP, CROP, STRIDE, STRIDE, "cosine")
    assert grid.ys == (0, 24, 48, 68)  # 68 + 32 == 100: last crop ends on the border
    assert grid.xs == (0,)  # one crop exactly as wide as the image
    assert len(grid) == 4
    assert TileGrid.build(96, 10, 32, 32, 32, 32, "none").ys == (0, 32, 64)  # no duplicate at 64
    assert TileGrid.build(10, 10, 32, 32, 8, 8, "none").ys == (0,)  # smaller than the crop


def test_cosine_window_positive_and_flat_at_image_borders() -> None:
    grid = TileGrid.build(100, 100, CROP, CROP, STRIDE, STRIDE, "cosine")
    interior = grid.window(24, 24)
    corner = grid.window(0, 0)
    assert interior.shape == (CROP, CROP)
    assert interior.min() > 0
    assert interior.max() <= 1
    assert interior[0, 0] < 0.01  # tapered inside the image
    assert corner[0, 0] == 1  # image corner: no other crop covers it, no taper
    assert corner[-1, -1] < 0.01  # but tapered towards the interior
    assert torch.all(grid.window(0, 24, "cpu")[0] > 0)
    assert torch.equal(TileGrid.build(100, 100, 32, 32, 24, 24, "none").window(24, 24), torch.ones(32, 32))


# ----------------------------------------------------------------------------- in-memory results
@pytest.mark.parametrize("size", [(64, 64), (100, 77), (33, 95), (20, 15), (1, 1), (32, 32)])
@pytest.mark.parametrize("blend", ["cosine", "none"])
def test_identity_model_returns_input(size: tuple[int, int], blend: str) -> None:
    image = torch.randn(2, 3, *size)
    out = tiled_inference(Recorder(), image, crop=CROP, stride=STRIDE, batch_size=5, blend=blend)
    assert out.shape == image.shape
    torch.testing.assert_close(out, image, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", ["reflect", "replicate", "constant"])
def test_smaller_than_crop_is_padded_and_cropped_back(padding: str) -> None:
    recorder = Recorder()
    image = torch.randn(1, 2, 5, 40)
    out = tiled_inference(recorder, image, crop=CROP, stride=STRIDE, padding=padding, blend="cosine")
    assert {s[-2:] for s in recorder.shapes} == {(CROP, CROP)}
    torch.testing.assert_close(out, image)


def test_pointwise_model_matches_whole_image() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 3, kernel_size=1)
    image = torch.randn(2, 4, 90, 70)
    out = tiled_inference(conv, image, out_channels=3, crop=CROP, stride=STRIDE, batch_size=7, blend="cosine")
    with torch.no_grad():
        expected = conv(image)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert not out.requires_grad


def test_single_map_output_and_model_output_object() -> None:
    image = torch.randn(1, 3, 50, 41)
    out = tiled_inference(lambda x: x.sum(dim=1), image, crop=CROP, stride=STRIDE, blend="cosine")
    assert out.shape == (1, 50, 41)
    torch.testing.assert_close(out, image.sum(dim=1), rtol=1e-5, atol=1e-5)
    wrapped = tiled_inference(
        lambda x: ModelOutput(output=x * 2), image, crop=CROP, stride=STRIDE, blend="cosine"
    )
    torch.testing.assert_close(wrapped, image * 2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(45, 50), (10, 20)])
def test_multitemporal_input(size: tuple[int, int]) -> None:
    image = torch.randn(2, 3, 4, *size)  # (B, C, T, H, W)
    recorder = Recorder()
    out = tiled_inference(
        lambda x: recorder(x).mean(dim=2), image, crop=CROP, stride=STRIDE, batch_size=3, blend="cosine"
    )
    assert {s[:-2] for s in recorder.shapes} <= {(n, 3, 4) for n in range(1, 4)}
    torch.testing.assert_close(out, image.mean(dim=2), rtol=1e-5, atol=1e-5)


def test_per_sample_kwargs_follow_their_crops() -> None:
    image = torch.zeros(3, 1, 40, 40)
    offset = torch.tensor([1.0, 2.0, 3.0])

    def model(x: torch.Tensor, offset: torch.Tensor, scale: float) -> torch.Tensor:
        assert offset.shape == (x.shape[0],)
        return x + scale * offset[:, None, None, None]

    out = tiled_inference(
        model, image, crop=CROP, stride=STRIDE, batch_size=4, offset=offset, scale=2.0, blend="cosine"
    )
    for b in range(3):
        torch.testing.assert_close(out[b], torch.full((1, 40, 40), 2.0 * offset[b].item()))


def test_cosine_blend_crossfades_between_crops() -> None:
    calls = iter(range(100))

    def constant_per_batch(x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], float(next(calls)))  # one crop per call: value = crop index

    out = tiled_inference(
        constant_per_batch,
        torch.zeros(1, 1, CROP, 56),
        crop=CROP,
        stride=STRIDE,
        batch_size=1,
        blend="cosine",
    )
    row = out[0, 0, 0]
    assert row[0] == 0 and row[-1] == 1  # only one crop covers the outer columns
    overlap = row[STRIDE:CROP]  # covered by both crops
    assert torch.all(overlap > 0) and torch.all(overlap < 1)
    assert torch.all(overlap[1:] > overlap[:-1])  # smooth monotone crossfade, no seam
    calls = iter(range(100))
    plain = tiled_inference(
        constant_per_batch, torch.zeros(1, 1, CROP, 56), crop=CROP, stride=STRIDE, batch_size=1, blend="none"
    )
    torch.testing.assert_close(plain[0, 0, 0, STRIDE:CROP], torch.full((CROP - STRIDE,), 0.5))


def test_deterministic() -> None:
    model = context_model()
    image = torch.randn(1, 3, 70, 90)
    first = tiled_inference(model, image, crop=CROP, stride=STRIDE, batch_size=3, blend="cosine")
    second = tiled_inference(model, image, crop=CROP, stride=STRIDE, batch_size=3, blend="cosine")
    assert torch.equal(first, second)


def test_batches_never_exceed_batch_size_and_calls_match() -> None:
    recorder = Recorder()
    image = torch.randn(2, 3, 100, 77)
    tiled_inference(recorder, image, crop=CROP, stride=STRIDE, batch_size=5, blend="cosine")
    positions = 4 * 3  # rows (0, 24, 48, 68) x cols (0, 24, 45)
    assert len(recorder.shapes) == math.ceil(positions * 2 / 5)
    assert max(s[0] for s in recorder.shapes) == 5
    assert sum(s[0] for s in recorder.shapes) == positions * 2  # every crop exactly once
    assert {s[1:] for s in recorder.shapes} == {(3, CROP, CROP)}


def test_keeps_dtype_and_device() -> None:
    image = torch.randn(1, 2, 40, 40, dtype=torch.float64)
    out = tiled_inference(lambda x: x * 1.5, image, crop=CROP, stride=STRIDE, blend="cosine")
    assert out.dtype == torch.float64 and out.device == image.device
    torch.testing.assert_close(out, image * 1.5)


def test_half_precision_model_is_accumulated_in_float32() -> None:
    image = torch.rand(1, 2, 70, 70) * 100
    out = tiled_inference(lambda x: x.half(), image, crop=CROP, stride=STRIDE, blend="cosine")
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, image.half(), rtol=1e-3, atol=0.05)


def test_verbose_shows_progress(capsys) -> None:
    tiled_inference(
        lambda x: x,
        torch.zeros(1, 1, 40, 40),
        crop=CROP,
        stride=STRIDE,
        batch_size=1,
        verbose=True,
        blend="cosine",
    )
    assert "4/4" in capsys.readouterr().err  # 2 x 2 crops, one per call


def test_reference_keywords_select_reference_blending() -> None:
    image = torch.randn(1, 1, 40, 40)
    out = tiled_inference(
        lambda x: x, image, h_crop=32, w_crop=32, h_stride=24, w_stride=24, average_patches=False
    )
    torch.testing.assert_close(out, image)


# ----------------------------------------------------------------------------- in-memory errors
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crop": 32, "stride": 40}, "stride 40 is larger than crop 32 along the height"),
        ({"h_crop": 32, "w_crop": 16, "stride": 20}, "stride 20 is larger than crop 16 along the width"),
        ({"crop": 0}, "crop must be a positive integer, got 0"),
        ({"crop": 32, "stride": -1}, "stride must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"blend": "cosin"}, r"Unknown blend 'cosin'.*Did you mean 'cosine'"),
        ({"padding": "mirror"}, r"Unknown padding 'mirror'\..*Valid: constant, reflect, replicate\."),
    ],
)
def test_invalid_parameters(kwargs: dict, message: str) -> None:
    recorder = Recorder()
    with pytest.raises(ValueError, match=message):
        tiled_inference(recorder, torch.zeros(1, 1, 40, 40), **kwargs)
    assert recorder.shapes == []  # rejected before any model call


def test_invalid_input_rank() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*got \(3, 40, 40\)"):
        tiled_inference(lambda x: x, torch.zeros(3, 40, 40), blend="cosine")


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        (lambda x: x[..., ::2, ::2], ValueError, "pixel-wise predictions"),
        (lambda x: x.mean(dim=(2, 3)), ValueError, r"returned \(2, 1\)"),
        (lambda x: x.long(), TypeError, "torch.int64 predictions"),
        (lambda x: [x], TypeError, "must return a Tensor or a ModelOutput, got list"),
    ],
)
def test_non_pixelwise_model_output(model, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        tiled_inference(model, torch.zeros(2, 1, 32, 32), crop=CROP, stride=STRIDE, blend="cosine")


def test_out_channels_mismatch() -> None:
    with pytest.raises(ValueError, match="out_channels=5 but model_forward returned 3 channels"):
        tiled_inference(
            lambda x: x, torch.zeros(1, 3, 40, 40), out_channels=5, crop=CROP, stride=STRIDE, blend="cosine"
        )


def test_model_errors_propagate() -> None:
    def out_of_memory(x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(torch.OutOfMemoryError, match="Tried to allocate"):
        tiled_inference(out_of_memory, torch.zeros(1, 1, 40, 40), crop=CROP, stride=STRIDE, blend="cosine")


# ----------------------------------------------------------------------------- GeoTIFF streaming
def in_memory_reference(model: nn.Module, data: np.ndarray, batch_size: int = 3) -> torch.Tensor:
    """The in-memory result on the normalised whole scene, ``(C, H, W)``."""
    image = normalize(torch.from_numpy(data.astype("float32"))[None])
    return tiled_inference(model, image, crop=CROP, stride=STRIDE, batch_size=batch_size, blend="cosine")[0]


def test_streaming_raw_equals_in_memory_and_keeps_georeference(tmp_path) -> None:
    data = scene_array(300, 70)  # taller than one 256-row tile row of the output
    write_scene(tmp_path / "scene.tif", data)
    model = context_model()
    dst = tiled_inference_geotiff(
        model, tmp_path / "scene.tif", tmp_path / "pred.tif", crop=CROP, stride=STRIDE, batch_size=3,
        preprocess=normalize, output="raw", progress=False,
    )  # fmt: skip
    assert dst == tmp_path / "pred.tif"
    assert not (tmp_path / "pred.tif.partial").exists()
    invalid = (data == NODATA).any(axis=0)
    with rasterio.open(tmp_path / "scene.tif") as src, rasterio.open(dst) as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.nodata == NODATA and out.count == 4 and out.dtypes[0] == "float32"
        assert out.profile["tiled"] and out.compression.value == "DEFLATE"
        result = out.read()
    expected = in_memory_reference(model, data).numpy()
    np.testing.assert_allclose(result[:, ~invalid], expected[:, ~invalid], rtol=1e-5, atol=1e-5)
    assert np.all(result[:, invalid] == NODATA)
    assert invalid[12, 3]  # a pixel missing in one band only is nodata too


def test_streaming_argmax_matches_in_memory(tmp_path) -> None:
    data = scene_array(90, 110)
    write_scene(tmp_path / "scene.tif", data)
    model = context_model()
    with pytest.warns(UserWarning, match="writing nodata=255"):
        dst = tiled_inference_geotiff(
            model, tmp_path / "scene.tif", tmp_path / "labels.tif", crop=CROP, stride=STRIDE, batch_size=4,
            preprocess=normalize, progress=False,
        )  # fmt: skip
    with rasterio.open(dst) as out:
        assert out.count == 1 and out.dtypes[0] == "uint8" and out.nodata == 255
        labels = out.read(1)
    logits = in_memory_reference(model, data)
    top2 = logits.topk(2, dim=0).values
    decided = ((top2[0] - top2[1]) > 1e-4).numpy()  # exclude (near-)ties
    invalid = (data == NODATA).any(axis=0)
    expected = logits.argmax(dim=0).numpy()
    assert np.array_equal(labels[decided & ~invalid], expected[decided & ~invalid])
    assert decided.mean() > 0.99
    assert np.all(labels[invalid] == 255)
    assert set(np.unique(labels[~invalid])) <= {0, 1, 2, 3}


def test_streaming_probabilities_band_selection_and_explicit_nodata(tmp_path) -> None:
    data = scene_array(60, 50, bands=4)
    write_scene(tmp_path / "scene.tif", data)
    model = context_model(in_ch=2, out_ch=3)
    dst = tiled_inference_geotiff(
        model, tmp_path / "scene.tif", tmp_path / "probs.tif", crop=CROP, stride=STRIDE, bands=[4, 2],
        preprocess=normalize, output="probabilities", nodata=-1.0, progress=False,
    )  # fmt: skip
    with rasterio.open(dst) as out:
        assert out.nodata == -1.0 and out.count == 3
        probs = out.read()
    invalid = (data[[3, 1]] == NODATA).any(axis=0)
    expected = in_memory_reference(model, data[[3, 1]], batch_size=16).softmax(dim=0).numpy()
    np.testing.assert_allclose(probs[:, ~invalid], expected[:, ~invalid], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs[:, ~invalid].sum(axis=0), 1.0, rtol=1e-5)
    assert np.all(probs[:, invalid] == -1.0)


def test_streaming_regression_small_scene_without_nodata(tmp_path) -> None:
    data = scene_array(20, 25, holes=False).astype("uint16")  # smaller than a crop: padded, cropped back
    write_scene(tmp_path / "scene.tif", data, nodata=None)
    dst = tiled_inference_geotiff(
        lambda x: x.mean(dim=1), tmp_path / "scene.tif", tmp_path / "reg.tif", crop=CROP, stride=STRIDE,
        output="raw", progress=False,
    )  # fmt: skip
    with rasterio.open(dst) as out:
        assert out.count == 1 and out.nodata is None and (out.height, out.width) == (20, 25)
        np.testing.assert_allclose(out.read(1), data.astype("float32").mean(axis=0), rtol=1e-5)


def test_streaming_reads_one_strip_at_a_time(tmp_path, monkeypatch) -> None:
    data = scene_array(200, 64, holes=False)
    write_scene(tmp_path / "scene.tif", data)
    heights: list[int] = []
    original = rasterio.io.DatasetReader.read

    def recording_read(self, *args, **kwargs):
        heights.append(int(kwargs["window"].height))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", recording_read)
    recorder = Recorder(context_model())
    tiled_inference_geotiff(
        recorder, tmp_path / "scene.tif", tmp_path / "out.tif", crop=CROP, stride=STRIDE, batch_size=2,
        output="raw", progress=False,
    )  # fmt: skip
    strips = len(range(0, 200 - CROP, STRIDE)) + 1  # 8 strip rows, the last aligned with the border
    assert heights == [CROP] * strips  # one crop-high window per strip, never the whole scene
    assert max(s[0] for s in recorder.shapes) == 2
    assert len(recorder.shapes) == strips * 2  # 3 crops per row in batches of 2


def test_streaming_model_error_leaves_no_file(tmp_path) -> None:
    write_scene(tmp_path / "scene.tif", scene_array(80, 40))

    def failing(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("model exploded")

    with pytest.raises(RuntimeError, match="model exploded"):
        tiled_inference_geotiff(
            failing, tmp_path / "scene.tif", tmp_path / "out.tif", crop=CROP, stride=STRIDE
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


def test_streaming_disk_full_names_the_file_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    write_scene(tmp_path / "scene.tif", scene_array(40, 40))

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", full_disk)
    with pytest.raises(geotiff.GeoTIFFWriteError, match=r"'.*out\.tif\.partial'.*No space left") as caught:
        tiled_inference_geotiff(
            context_model(), tmp_path / "scene.tif", tmp_path / "out.tif", crop=CROP, stride=STRIDE,
            output="raw", progress=False,
        )  # fmt: skip
    assert caught.value.errno == errno.ENOSPC and isinstance(caught.value.__cause__, OSError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.tif"]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"bands": [0, 2]}, ValueError, r"bands=\[0, 2\] is invalid .* \(3 bands\).*offending: \[0\]"),
        ({"bands": [4]}, ValueError, r"1\.\.3"),
        ({"output": "argmaxx"}, ValueError, r"Unknown output 'argmaxx'.*Did you mean 'argmax'"),
        ({"out_dtype": "float32"}, ValueError, "output='argmax' needs an integer out_dtype"),
        ({"output": "raw", "out_dtype": "uint8"}, ValueError, "output='raw' needs a float out_dtype"),
        ({"out_dtype": "uint9"}, ValueError, r"'uint9' is not a raster dtype\. Did you mean: uint8"),
        ({"nodata": 1}, ValueError, r"nodata=1 cannot be used .* class index"),
        ({"stride": 64}, ValueError, "stride 64 is larger than crop 32"),
    ],
)
def test_streaming_invalid_arguments(tmp_path, kwargs: dict, error: type, message: str) -> None:
    write_scene(tmp_path / "scene.tif", scene_array(40, 40))
    params = {"crop": CROP, "stride": STRIDE, "progress": False, **kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(error, match=message):
            tiled_inference_geotiff(context_model(), tmp_path / "scene.tif", tmp_path / "out.tif", **params)
    assert not (tmp_path / "out.tif").exists()


def test_streaming_argmax_needs_class_scores(tmp_path) -> None:
    write_scene(tmp_path / "scene.tif", scene_array(40, 40))
    with pytest.raises(ValueError, match=r"needs at least 2 output channels.*output='raw'"):
        tiled_inference_geotiff(
            lambda x: x[:, 0], tmp_path / "scene.tif", tmp_path / "out.tif", crop=CROP, stride=STRIDE,
            progress=False,
        )  # fmt: skip


def test_streaming_missing_or_same_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"missing\.tif"):
        tiled_inference_geotiff(context_model(), tmp_path / "missing.tif", tmp_path / "out.tif")
    write_scene(tmp_path / "scene.tif", scene_array(40, 40))
    with pytest.raises(ValueError, match="dst_path must differ from src_path"):
        tiled_inference_geotiff(context_model(), tmp_path / "scene.tif", tmp_path / "scene.tif")


def test_streaming_caps_gdal_block_cache(tmp_path, monkeypatch) -> None:
    write_scene(tmp_path / "scene.tif", scene_array(40, 300))
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    with rasterio.open(tmp_path / "scene.tif") as src:
        block_h, block_w = src.block_shapes[0]
        option = geotiff.block_cache_option(src)
        row_bytes = math.ceil(300 / block_w) * block_w * block_h * 3 * 2  # int16, 3 bands
        assert option == {"GDAL_CACHEMAX": 2 * row_bytes + 64 * 2**20}
        monkeypatch.setenv("GDAL_CACHEMAX", "512")  # the user's setting wins
        assert geotiff.block_cache_option(src) == {}


def test_streaming_rectangular_crops_match_in_memory(tmp_path) -> None:
    data = scene_array(70, 130, holes=False)
    write_scene(tmp_path / "scene.tif", data, nodata=None)
    model = context_model()
    axes = {"h_crop": 32, "w_crop": 48, "h_stride": 20, "w_stride": 40}
    dst = tiled_inference_geotiff(
        model, tmp_path / "scene.tif", tmp_path / "out.tif", output="raw", progress=False, **axes
    )
    with rasterio.open(dst) as out:
        result = out.read()
    image = torch.from_numpy(data.astype("float32"))[None]
    expected = tiled_inference(model, image, **axes, blend="cosine")[0].numpy()
    np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-5)
