"""``EmbeddingGenerationTask`` with ``prithvi_eo_tiny`` on generated GeoTIFFs (5 chips of 32 px, CPU).

Checked three ways: the GeoTIFF georeference is the input's at the token grid; the GeoParquet file
reads in geopandas (right CRS, one row per file) and DuckDB; each vector equals the model's pooled
features for that file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from terratorch.datasets.demo import make_demo_dataset

N_FILES, SIZE, PATCH = 5, 32, 16


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    root = tmp_path_factory.mktemp("embeddings") / "demo"
    return make_demo_dataset(root, "segmentation", n_train=N_FILES - 2, n_val=1, n_test=1, size=SIZE)


def _datamodule(demo: Any, batch_size: int = 2) -> Any:
    return demo.make_datamodule(batch_size=batch_size, num_workers=0, predict_data_root=str(demo.image_dir))


def _task(out: Path, **kwargs: Any) -> Any:
    from terratorch.tasks import EmbeddingGenerationTask

    torch.manual_seed(0)
    return EmbeddingGenerationTask(
        {"backbone": "prithvi_eo_tiny"}, output_dir=str(out), has_cls=True, **kwargs
    )


def _run(task: Any, datamodule: Any) -> list[str]:
    from terratorch.cli.inference import LightningInferenceModel

    _, names = LightningInferenceModel.from_task_and_datamodule(
        task, datamodule, device="cpu"
    ).inference_on_dir()
    return names


def _inputs(demo: Any) -> list[Path]:
    return sorted(demo.image_dir.glob(demo.img_grep))


def test_geotiff_keeps_the_input_georeference_at_the_token_grid(demo, tmp_path):
    task = _task(tmp_path / "tiff", layers=[-1, 0])
    names = _run(task, _datamodule(demo))
    assert len(names) == N_FILES
    grid = SIZE // PATCH
    for layer in ("layer_00", "layer_01"):
        for source in _inputs(demo):
            with (
                rasterio.open(source) as src,
                rasterio.open(tmp_path / "tiff" / layer / f"{source.stem}_embedding.tif") as out,
            ):
                assert (out.count, out.height, out.width) == (256, grid, grid)  # embed_dim x token grid
                assert out.crs == src.crs
                assert out.transform == src.transform @ Affine.scale(PATCH, PATCH)
                assert out.bounds == src.bounds
    summary = json.loads((tmp_path / "tiff" / "configuration_summary.json").read_text())
    assert summary["backbone"] == "prithvi_eo_tiny" and summary["n_layers_saved"] == 2
    assert summary["layers"][0]["layer_output_shape"] == [256, grid, grid]


def test_geoparquet_streams_rows_and_vectors_equal_the_pooled_features(demo, tmp_path):
    import duckdb
    import geopandas as gpd
    import pyarrow.parquet as pq

    datamodule = _datamodule(demo, batch_size=2)  # 5 files: 3 batches
    task = _task(tmp_path / "pq", output_format="parquet_joint", embedding_pooling="mean")
    _run(task, datamodule)
    path = tmp_path / "pq" / "layer_00" / "embeddings.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups == 3  # one row group per batch, flushed as it came

    frame = gpd.read_parquet(path)
    inputs = _inputs(demo)
    with rasterio.open(inputs[0]) as src:
        assert frame.crs == src.crs
    assert len(frame) == N_FILES and sorted(frame["file_id"]) == [p.stem for p in inputs]
    assert set(frame["layer"]) == {0}
    for source in inputs:
        with rasterio.open(source) as src:
            footprint = frame.loc[frame["file_id"] == source.stem, "geometry"].iloc[0]
            assert footprint.bounds == pytest.approx(tuple(src.bounds))

    rows = duckdb.sql(
        f"SELECT file_id, len(embedding) AS dim FROM read_parquet('{path}') ORDER BY file_id"
    ).fetchall()
    assert rows == [(p.stem, 256) for p in inputs]

    # each vector is the model's mean-pooled last-layer tokens (CLS dropped) of its file
    datamodule.setup("predict")
    task.eval()
    with torch.no_grad():
        for batch in datamodule.predict_dataloader():
            image = datamodule.on_after_batch_transfer(batch, 0)["image"]
            tokens = task.model.encoder(image)[-1]
            expected = tokens[:, 1:, :].mean(dim=1)
            for name, vector in zip(batch["filename"], expected, strict=True):
                saved = frame.loc[frame["file_id"] == Path(name).stem, "embedding"].iloc[0]
                np.testing.assert_allclose(np.asarray(saved), vector.numpy(), rtol=1e-5, atol=1e-6)


def test_per_file_parquet_and_neuco_csv(demo, tmp_path):
    import geopandas as gpd

    _run(_task(tmp_path / "files", output_format="parquet", embedding_pooling="max"), _datamodule(demo))
    files = sorted((tmp_path / "files" / "layer_00").glob("*_embedding.parquet"))
    assert [f.name for f in files] == [f"{p.stem}_embedding.parquet" for p in _inputs(demo)]
    one = gpd.read_parquet(files[0])
    assert len(one) == 1 and one.crs is not None and len(one["embedding"].iloc[0]) == 256

    _run(_task(tmp_path / "neuco", output_format="neuco_csv", embedding_pooling="cls"), _datamodule(demo))
    lines = (tmp_path / "neuco" / "layer_00" / "embeddings.csv").read_text().splitlines()
    assert lines[0].split(",")[:3] == ["id", "1", "2"] and len(lines) == N_FILES + 1


def test_temporal_inputs_give_one_row_per_time_step(demo, tmp_path):
    import geopandas as gpd

    from terratorch.tasks import EmbeddingGenerationTask

    task = EmbeddingGenerationTask(
        {"backbone": "prithvi_eo_tiny", "backbone_use_temporal": True, "backbone_temporal_pooling": "keep"},
        output_dir=str(tmp_path / "temporal"),
        output_format="parquet_joint",
        embedding_pooling="mean",
        has_cls=True,
    )
    files = [str(p) for p in _inputs(demo)[:2]]
    task.predict_step({"image": torch.randn(2, 6, 3, SIZE, SIZE), "filename": files})
    task.on_predict_end()
    frame = gpd.read_parquet(tmp_path / "temporal" / "layer_00" / "embeddings.parquet")
    assert len(frame) == 6 and sorted(frame["time_index"]) == [0, 0, 1, 1, 2, 2]
    assert frame.crs is not None


def test_multimodal_dict_inputs(demo, tmp_path):
    """A backbone taking ``{modality: tensor}``; ids come from the first modality's file names."""
    import geopandas as gpd
    from torch import nn

    from terratorch.tasks import EmbeddingGenerationTask

    class Fusion(nn.Module):
        out_channels = [4]

        def forward(self, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
            tokens = sum(v.flatten(2).mean(-1, keepdim=True) for v in x.values())  # (B, C, 1)
            return [tokens.transpose(1, 2).repeat(1, 4, 1)]  # (B, 4 tokens, 4)

    task = EmbeddingGenerationTask(
        {"backbone": Fusion()},
        output_dir=str(tmp_path / "mm"),
        output_format="parquet_joint",
        embedding_pooling="mean",
    )
    files = [str(p) for p in _inputs(demo)[:2]]
    image = {"s2": torch.ones(2, 4, 8, 8), "s1": torch.ones(2, 4, 8, 8)}
    task.predict_step({"image": image, "filename": {"s2": files, "s1": files}})
    task.on_predict_end()
    frame = gpd.read_parquet(tmp_path / "mm" / "layer_00" / "embeddings.parquet")
    assert list(frame["file_id"]) == [Path(f).stem for f in files]
    np.testing.assert_allclose(np.stack(frame["embedding"]), 2.0)


def test_bad_parameters_are_named():
    from terratorch.tasks import EmbeddingGenerationTask

    with pytest.raises(ValueError, match=r"output_format 'parket'.*Did you mean 'parquet'"):
        EmbeddingGenerationTask({"backbone": "prithvi_eo_tiny"}, output_format="parket")
    with pytest.raises(ValueError, match=r"embedding_pooling 'avg'"):
        EmbeddingGenerationTask({"backbone": "prithvi_eo_tiny"}, embedding_pooling="avg")
    with pytest.raises(KeyError, match=r"embed_file_key 'path'"):
        EmbeddingGenerationTask({"backbone": "prithvi_eo_tiny"}, embed_file_key="path").predict_step(
            {"image": torch.zeros(1, 6, 32, 32), "filename": ["a.tif"]}
        )


def test_terratorch_predict_runs_the_task(demo, tmp_path, monkeypatch):
    """``terratorch predict -c`` with ``class_path: terratorch.tasks.EmbeddingGenerationTask``."""
    import yaml

    from terratorch.__main__ import main as terratorch_main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    data = demo.datamodule_kwargs(batch_size=2, num_workers=0, predict_data_root=str(demo.image_dir))
    config = {
        "trainer": {"accelerator": "cpu", "logger": False, "enable_progress_bar": False},
        "data": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": data},
        "model": {
            "class_path": "EmbeddingGenerationTask",  # the short name resolves, as in the reference
            "init_args": {
                "model_args": {"backbone": "prithvi_eo_tiny"},
                "output_dir": str(tmp_path / "emb"),
                "output_format": "parquet_joint",
                "embedding_pooling": "mean",
                "has_cls": True,
            },
        },
    }  # no predict_output_dir: the task writes its own files, so the CLI asks for none
    (tmp_path / "emb.yaml").write_text(yaml.safe_dump(config))
    assert terratorch_main(["predict", "-c", str(tmp_path / "emb.yaml")]) in (0, None)
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "emb" / "layer_00" / "embeddings.parquet").num_rows == N_FILES
    assert not list(tmp_path.rglob("*_pred.tif"))  # the GeoTIFF writer was not attached
