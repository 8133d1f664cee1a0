"""GeoParquet embedding files and the nearest-neighbour index (FAISS and numpy backends)."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_writer_streams_one_row_group_per_batch(tmp_path):
    """Rows accumulate across batches; each batch reaches the file before the next one is written."""
    import pyarrow.parquet as pq
    from shapely.geometry import box

    from terratorch.embeddings import GeoParquetWriter

    path = tmp_path / "e.parquet"
    sizes = []
    with GeoParquetWriter(path) as writer:
        for batch in range(3):
            ids = [f"f{batch}_{i}" for i in range(4)]
            shapes = [box(i, batch, i + 1, batch + 1) for i in range(4)]
            writer.write_batch(ids, 0, np.full((4, 16), batch, np.float32), shapes, "EPSG:32633")
            sizes.append(path.stat().st_size)
            assert writer.rows == 4 * (batch + 1)
    assert sizes[0] > 0 and sizes[0] < sizes[1] < sizes[2]  # flushed per batch, not held in memory
    parquet = pq.ParquetFile(path)
    assert parquet.metadata.num_row_groups == 3 and parquet.metadata.num_rows == 12
    geo = json.loads(parquet.metadata.metadata[b"geo"])  # the file key-value metadata
    column = geo["columns"]["geometry"]
    assert geo["version"] == "1.0.0" and geo["primary_column"] == "geometry" and column["encoding"] == "WKB"
    assert column["crs"]["id"] == {"authority": "EPSG", "code": 32633}
    assert column["bbox"] == [0.0, 0.0, 4.0, 3.0] and column["geometry_types"] == ["Polygon"]


def test_writer_rejects_a_changing_vector_length(tmp_path):
    from terratorch.embeddings import GeoParquetWriter

    with GeoParquetWriter(tmp_path / "e.parquet") as writer:
        writer.write_batch(["a"], 0, np.zeros((1, 4)))
        with pytest.raises(ValueError, match="embedding length 5 differs from the file's 4"):
            writer.write_batch(["b"], 0, np.zeros((1, 5)))


def test_footprints_in_another_crs_are_reprojected(tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    from terratorch.embeddings import GeoParquetWriter

    path = tmp_path / "e.parquet"
    utm = box(500_000, 4_000_000, 500_320, 4_000_320)
    with GeoParquetWriter(path) as writer:
        writer.write_batch(
            ["a", "b"], 0, np.eye(2), [utm, box(15.0, 36.1, 15.01, 36.11)], ["EPSG:32633", "EPSG:4326"]
        )
    frame = gpd.read_parquet(path)
    assert frame.crs.to_epsg() == 32633 and list(frame["crs"]) == ["EPSG:32633", "EPSG:4326"]
    assert 400_000 < frame.geometry.iloc[1].centroid.x < 600_000  # metres now, not degrees


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_each_indexed_file_returns_itself_first(embeddings, backend, metric):
    from terratorch.embeddings import EmbeddingIndex

    index = EmbeddingIndex.from_parquet(embeddings.path, metric=metric, backend=backend)
    assert index.backend == backend and len(index) == len(embeddings.ids) and index.crs == embeddings.crs
    for file_id in embeddings.ids:
        result = index.query_file(file_id, k=3)
        first = result["features"][0]["properties"]
        assert first["id"] == file_id and first["rank"] == 1
        key = "score" if metric == "cosine" else "distance"
        assert first[key] == pytest.approx(1.0 if metric == "cosine" else 0.0, abs=1e-5)
        assert len(result["features"]) == 3


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_faiss_and_numpy_agree(embeddings, metric):
    from terratorch.embeddings import EmbeddingIndex

    queries = np.random.default_rng(1).normal(size=(5, embeddings.vectors.shape[1]))
    results = [
        EmbeddingIndex.from_parquet(embeddings.path, metric=metric, backend=b).search(queries, k=4)
        for b in ("faiss", "numpy")
    ]
    np.testing.assert_array_equal(results[0][1], results[1][1])
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)


def test_query_geometry_uses_the_footprints_it_intersects(embeddings):
    from terratorch.embeddings import search

    inside = embeddings.footprints[5].buffer(-50)  # strictly inside chip 5 only
    result = search(embeddings.path, query_geometry=inside.wkt, k=2, backend="numpy")
    assert result["query"]["matched_footprints"] == 1
    assert result["features"][0]["properties"]["id"] == embeddings.ids[5]
    geometry = result["features"][0]["geometry"]
    assert geometry["type"] == "Polygon" and result["crs"]["properties"]["name"] == embeddings.crs
    as_geojson = json.dumps({"type": "Feature", "geometry": inside.__geo_interface__, "properties": {}})
    assert (
        search(embeddings.path, query_geometry=as_geojson, k=1)["features"][0]["properties"]["id"]
        == "chip_005"
    )


def test_query_geometry_in_another_crs(embeddings):
    from rasterio.warp import transform_geom

    from terratorch.embeddings import search

    wgs84 = transform_geom(
        embeddings.crs, "EPSG:4326", embeddings.footprints[2].buffer(-50).__geo_interface__
    )
    result = search(embeddings.path, query_geometry=json.dumps(wgs84), query_crs="EPSG:4326", k=1)
    assert result["features"][0]["properties"]["id"] == embeddings.ids[2]


def test_clear_errors(embeddings, tmp_path):
    from shapely.geometry import box

    from terratorch.embeddings import EmbeddingIndex, GeoParquetWriter, search

    index = EmbeddingIndex.from_parquet(embeddings.path, backend="numpy")
    with pytest.raises(KeyError, match=r"'chip_0005' is not an indexed file id.*Did you mean 'chip_005'"):
        index.query_file("chip_0005")
    with pytest.raises(ValueError, match="intersects no indexed footprint"):
        index.query_geometry(box(0, 0, 1, 1))
    with pytest.raises(ValueError, match="cannot parse"):
        index.query_geometry("POLYGON ((0 0, 1")
    with pytest.raises(ValueError, match=r"Unknown metric 'cosin'.*Did you mean 'cosine'"):
        EmbeddingIndex(embeddings.vectors, embeddings.ids, metric="cosin")
    with pytest.raises(FileNotFoundError, match="no embeddings file or folder"):
        search(tmp_path / "missing.parquet", query_file="x")
    with pytest.raises(ValueError, match="exactly one of query_file and query_geometry"):
        search(embeddings.path)
    with GeoParquetWriter(embeddings.path.parent.parent / "layer_01" / "embeddings.parquet") as writer:
        writer.write_batch(["chip_000"], 1, embeddings.vectors[:1])
    with pytest.raises(ValueError, match=r"hold layers \[0, 1\]; choose one"):
        EmbeddingIndex.from_parquet(embeddings.path.parent.parent)
    assert len(EmbeddingIndex.from_parquet(embeddings.path.parent.parent, layer=1)) == 1


def test_numpy_fallback_without_faiss(embeddings, monkeypatch):
    import terratorch.embeddings.index as index_module

    monkeypatch.setattr(index_module, "faiss_available", lambda: False)
    index = index_module.EmbeddingIndex.from_parquet(embeddings.path)
    assert index.backend == "numpy"
    assert index.query_file("chip_000", k=1)["features"][0]["properties"]["id"] == "chip_000"
    with pytest.raises(ImportError, match=r"terratorch\[faiss\]"):
        index_module.EmbeddingIndex.from_parquet(embeddings.path, backend="faiss")
