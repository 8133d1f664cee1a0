"""The serving app in-process: the request batcher, then real HTTP against uvicorn in a thread.

The model is the session's tiny fitted segmentation model (see ``conftest.py``), loaded once with
:meth:`terratorch.serve.predictor.Predictor.from_config`; every request goes over a socket.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import rasterio
import yaml
from tests.serve.conftest import BACKBONE, PACKAGE, FittedModel, ThreadServer

from terratorch.__main__ import main as terratorch_main
from terratorch.datasets.demo import make_demo_dataset, make_demo_scene
from terratorch.io.geotiff import write_geotiff
from terratorch.serve.app import create_app
from terratorch.serve.batching import RequestBatcher
from terratorch.serve.predictor import Predictor

# ----------------------------------------------------------------------------- the batcher


def run(coroutine):
    return asyncio.run(coroutine)


def test_batcher_collects_concurrent_items_up_to_max_batch():
    seen: list[list[int]] = []

    def process(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    async def scenario():
        batcher = RequestBatcher(process, max_batch=3, max_wait_ms=1000)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
        await batcher.stop()
        return results, batcher.stats.as_dict()

    results, stats = run(scenario())
    assert [r for r, _ in results] == [0, 10, 20, 30, 40]  # each caller gets its own result, in order
    assert seen == [[0, 1, 2], [3, 4]]  # a full batch closes at once; the rest waits for max_wait_ms
    assert [size for _, size in results] == [3, 3, 3, 2, 2]
    assert stats["requests"] == 5 and stats["batches"] == 2 and stats["largest_batch"] == 3
    assert stats["batch_sizes"] == {"2": 1, "3": 1}


def test_batcher_zero_wait_batches_what_is_queued_and_errors_reach_only_their_callers():
    def process(items: list[int]) -> list[object]:
        if 99 in items:
            raise RuntimeError("whole batch failed")
        return [ValueError(f"bad item {i}") if i < 0 else i for i in items]

    async def scenario():
        batcher = RequestBatcher(process, max_batch=8, max_wait_ms=0)
        await batcher.start()
        good, bad = await asyncio.gather(batcher.submit(1), batcher.submit(-1), return_exceptions=True)
        broken = await asyncio.gather(batcher.submit(99), return_exceptions=True)
        after = await batcher.submit(2)  # the worker survives both kinds of failure
        await batcher.stop()
        return good, bad, broken[0], after, batcher.stats

    good, bad, broken, after, stats = run(scenario())
    assert good == (1, 2)  # queued together, so one batch of 2 even without waiting
    assert isinstance(bad, ValueError) and "bad item -1" in str(bad)
    assert isinstance(broken, RuntimeError) and "whole batch failed" in str(broken)
    assert after == (2, 1)
    assert stats.failed == 2 and stats.batches == 3


def test_batcher_rejects_bad_settings_and_use_before_start():
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        RequestBatcher(lambda items: items, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms must be >= 0"):
        RequestBatcher(lambda items: items, max_wait_ms=-1)
    with pytest.raises(RuntimeError, match="not running"):
        run(RequestBatcher(lambda items: items).submit(1))


# ----------------------------------------------------------------------------- the app over HTTP


@pytest.fixture(scope="module")
def predictor(fitted: FittedModel) -> Predictor:
    return Predictor.from_config(fitted.config, fitted.ckpt)


@pytest.fixture(scope="module")
def server(predictor: Predictor, fitted: FittedModel):
    """Answers at once (no batch window), refuses uploads over 0.05 MiB, reads paths under the fit root."""
    app = create_app(predictor, max_batch=4, max_wait_ms=0, max_upload_mb=0.05, path_root=fitted.root)
    running = ThreadServer(app)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def batching_server(predictor: Predictor):
    """Holds the first request up to 2 s, so four concurrent requests always share one batch."""
    running = ThreadServer(create_app(predictor, max_batch=4, max_wait_ms=2000))
    yield running
    running.stop()


def upload(url: str, path: Path, name: str | None = None) -> httpx.Response:
    with path.open("rb") as handle:
        return httpx.post(
            f"{url}/predict", files={"file": (name or path.name, handle, "image/tiff")}, timeout=60
        )


def test_metadata_describes_model_bands_batching_and_limits(server, fitted):
    meta = httpx.get(f"{server.url}/metadata").json()
    assert meta["task"] == "SemanticSegmentationTask" and meta["backbone"] == "serve_test_cnn"
    assert meta["datamodule"] == "GenericNonGeoSegmentationDataModule"
    assert meta["bands"]["dataset_bands"] == list(fitted.demo.band_names)
    assert meta["bands"]["expected_count"] == len(fitted.demo.band_names)
    assert meta["num_classes"] == 3 and meta["tiled_inference_parameters"] is None
    assert meta["batching"]["max_batch"] == 4 and meta["batching"]["max_wait_ms"] == 0
    assert meta["limits"]["max_upload_mb"] == 0.05
    assert meta["source"]["ckpt_path"] == str(fitted.ckpt)
    assert isinstance(meta["version"], str) and meta["version"]


def test_upload_path_and_b64_answers_are_the_same_georeferenced_prediction(server, fitted):
    source = fitted.inputs()[0]
    answer = upload(server.url, source)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/tiff"
    assert f'filename="{source.stem}_pred.tif"' in answer.headers["content-disposition"]
    with rasterio.MemoryFile(answer.content) as memory, memory.open() as out, rasterio.open(source) as src:
        assert out.crs == src.crs and out.transform == src.transform
        assert (out.count, out.height, out.width) == (1, src.height, src.width)
        assert set(np.unique(out.read(1))) <= {0, 1, 2, 255}
    relative = str(source.relative_to(fitted.root))  # resolved against path_root
    by_path = httpx.post(f"{server.url}/predict", json={"path": relative}, timeout=60)
    assert by_path.status_code == 200, by_path.text
    assert by_path.content == answer.content
    reference_style = {"data_format": "path", "data": str(source), "out_data_format": "b64_json"}
    encoded = httpx.post(f"{server.url}/predict", json=reference_style, timeout=60)
    assert encoded.status_code == 200, encoded.text
    body = encoded.json()
    assert body["data_format"] == "b64_json" and body["filename"] == f"{source.stem}_pred.tif"
    assert base64.b64decode(body["data"]) == answer.content
    raw = httpx.post(
        f"{server.url}/predict",
        content=source.read_bytes(),
        headers={"Content-Type": "image/tiff"},
        params={"filename": source.name},
        timeout=60,
    )
    assert raw.status_code == 200 and raw.content == answer.content
    odd = upload(server.url, source, name="../scène 1.tif")  # folders dropped, header kept ASCII
    assert odd.status_code == 200 and odd.content == answer.content
    assert 'filename="sc_ne 1_pred.tif"' in odd.headers["content-disposition"]


def test_concurrent_requests_share_a_forward_pass_even_with_different_sizes(
    server, batching_server, fitted, tmp_path
):
    files = [
        *fitted.inputs()[:3],
        make_demo_scene(tmp_path / "scene_img.tif", 24, 28, seed=3, block_size=16),
    ]  # 2 shapes
    alone = [upload(server.url, p) for p in files]
    assert all(a.status_code == 200 for a in alone), [a.text for a in alone]
    assert [a.headers["x-batch-size"] for a in alone] == ["1"] * 4
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda p: upload(batching_server.url, p), files))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert [a.content for a in answers] == [a.content for a in alone]  # batched = alone, bit for bit
    assert [a.headers["x-batch-size"] for a in answers] == ["4"] * 4
    stats = httpx.get(f"{batching_server.url}/metadata").json()["batching"]["stats"]
    assert stats["requests"] == 4 and stats["batches"] == 1 and stats["batch_sizes"] == {"4": 1}


def test_bad_requests_get_4xx_with_a_reason_and_the_server_stays_up(server, fitted, tmp_path):
    url = server.url
    not_tiff = tmp_path / "notes.tif"
    not_tiff.write_text("just text")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(fitted.inputs()[0].read_bytes()[:300])
    three_bands = write_geotiff(tmp_path / "rgb.tif", np.ones((3, 16, 16), dtype="int16"))
    big = make_demo_scene(tmp_path / "big_img.tif", 128, 128, seed=1)  # ~200 KB > 0.05 MiB
    outside = shutil.copy(fitted.inputs()[0], tmp_path / "outside.tif")  # not under path_root

    cases = [
        (upload(url, not_tiff), 415, "is not a TIFF file"),
        (upload(url, truncated), 400, "truncated.tif"),
        (upload(url, three_bands), 422, "has 3 bands but the model expects at least 6 bands"),
        (upload(url, big), 413, "at most 0.05 MiB"),
        (httpx.post(f"{url}/predict", json={"path": "nope.tif"}), 404, "no file 'nope.tif'"),
        (httpx.post(f"{url}/predict", json={"path": str(outside)}), 403, "outside the folder"),
        (httpx.post(f"{url}/predict", json={"path": "demo"}), 422, "not a file"),
        (httpx.post(f"{url}/predict", json={"pth": "x.tif"}), 422, "Did you mean 'path'?"),
        (
            httpx.post(f"{url}/predict", json={"path": "x", "out_data_format": "png"}),
            422,
            "Valid: b64_json, tiff",
        ),
        (
            httpx.post(f"{url}/predict", json={"data_format": "url", "data": "http://x"}),
            422,
            "does not download",
        ),
        (httpx.post(f"{url}/predict", json=["x"]), 422, "must be an object"),
        (
            httpx.post(f"{url}/predict", content=b"{oops", headers={"Content-Type": "application/json"}),
            400,
            "JSON",
        ),
        (httpx.post(f"{url}/predict", content=b"", headers={"Content-Type": "image/tiff"}), 400, "empty"),
        (
            httpx.post(f"{url}/predict", content=b"x", headers={"Content-Type": "text/plain"}),
            415,
            "multipart",
        ),
        (
            httpx.post(f"{url}/predict", files={"image": ("a.tif", b"x")}),
            422,
            "no file in a field named 'file'",
        ),
    ]
    for answer, status, text in cases:
        assert answer.status_code == status, (status, answer.text)
        assert text in answer.json()["detail"], answer.json()
        assert str(tmp_path) not in answer.json()["detail"] or status in (403,), answer.json()
    assert "/tmp/terratorch-serve-" not in " ".join(a.text for a, _, _ in cases)  # no server paths leak
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert upload(url, fitted.inputs()[1]).status_code == 200


def test_tiled_inference_set_by_an_override_matches_terratorch_predict(fitted, tmp_path):
    tiles = [
        "--model.init_args.tiled_inference_parameters",
        '{"crop": 16, "stride": 12, "batch_size": 4, "delta": 2}',
    ]
    scene = make_demo_scene(tmp_path / "scenes" / "big_img.tif", 40, 36, seed=3, block_size=16)
    out = tmp_path / "preds"
    args = [
        "predict",
        "-c",
        str(fitted.config),
        "--ckpt_path",
        str(fitted.ckpt),
        "--predict_output_dir",
        str(out),
    ]
    assert terratorch_main([*args, "--data.init_args.predict_data_root", str(scene.parent), *tiles]) == 0
    predictor = Predictor.from_config(fitted.config, fitted.ckpt, overrides=tiles)
    assert predictor.metadata()["tiled_inference_parameters"] == {
        "crop": 16,
        "stride": 12,
        "batch_size": 4,
        "delta": 2,
    }
    server = ThreadServer(create_app(predictor))
    try:
        answer = upload(server.url, scene)
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    assert answer.content == (out / "big_img_pred.tif").read_bytes()


def test_per_image_tasks_answer_json(fitted, tmp_path):
    demo = make_demo_dataset(tmp_path / "classes", "classification", n_train=2, n_val=1, n_test=1, size=32)
    config = {
        "seed_everything": 0,
        "custom_modules_path": str(fitted.root / PACKAGE),
        "trainer": {"accelerator": "cpu", "logger": False},
        "data": {
            "class_path": "GenericNonGeoClassificationDataModule",
            "init_args": demo.datamodule_kwargs(batch_size=2, num_workers=0),
        },
        "model": {
            "class_path": "ClassificationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {"backbone": BACKBONE, "decoder": "IdentityDecoder", "num_classes": 3},
            },
        },
    }
    path = tmp_path / "classify.yaml"
    path.write_text(yaml.safe_dump(config))
    server = ThreadServer(create_app(Predictor.from_config(path)))
    try:
        chip = sorted(demo.image_dir.rglob("*.tif"))[0]
        answer = upload(server.url, chip)
        meta = httpx.get(f"{server.url}/metadata").json()
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["filename"] == chip.name and body["prediction"] in (0, 1, 2)
    assert len(body["probabilities"]) == 3 and abs(sum(body["probabilities"]) - 1) < 1e-5
    assert meta["task"] == "ClassificationTask" and meta["model_class"] == "ScalarOutputModel"
