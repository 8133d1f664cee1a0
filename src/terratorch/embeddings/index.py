"""Nearest-neighbour search over GeoParquet embeddings, with results as GeoJSON.

:class:`EmbeddingIndex` holds one vector per footprint. Searching uses a FAISS flat index when
``faiss`` is importable and exact numpy search otherwise (``backend`` picks one explicitly); both are
exact, so they return the same neighbours. ``metric="cosine"`` (default) ranks by cosine similarity
(``score``, higher is closer); ``metric="l2"`` by Euclidean distance (``distance``, lower is closer).

A query is an indexed file (its own vector: it comes back first, with score 1) or a geometry (the
mean vector of the indexed footprints it intersects).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terratorch.choices import did_you_mean, unknown_choice

__all__ = ["BACKENDS", "METRICS", "EmbeddingIndex", "faiss_available", "parse_geometry", "search"]

METRICS = ("cosine", "l2")
BACKENDS = ("auto", "faiss", "numpy")


def faiss_available() -> bool:
    """Whether ``faiss`` can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


class EmbeddingIndex:
    """Exact k-nearest-neighbour search over embedding vectors with their footprints.

    Args:
        vectors: ``(n, dim)`` embeddings.
        file_ids: One id per vector (the input file's stem).
        layers: One layer number per vector (default 0).
        geometries: One shapely footprint (or None) per vector, in ``crs``.
        crs: CRS of the footprints (``EPSG:<code>`` or WKT), None when unknown.
        metric: ``"cosine"`` or ``"l2"``.
        backend: ``"auto"`` (FAISS when installed), ``"faiss"`` or ``"numpy"``.

    Raises:
        ValueError: Unknown metric or backend, lengths that disagree, or no vectors.
        ImportError: ``backend="faiss"`` without faiss installed.
    """

    def __init__(
        self,
        vectors: np.ndarray,
        file_ids: Sequence[str],
        layers: Sequence[int] | None = None,
        geometries: Sequence[Any] | None = None,
        crs: str | None = None,
        metric: str = "cosine",
        backend: str = "auto",
    ) -> None:
        if metric not in METRICS:
            raise ValueError(unknown_choice("metric", metric, METRICS))
        if backend not in BACKENDS:
            raise ValueError(unknown_choice("backend", backend, BACKENDS))
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] == 0:
            raise ValueError(f"An index needs (n, dim) vectors with n > 0, got shape {matrix.shape}.")
        n = matrix.shape[0]
        self.file_ids = [str(f) for f in file_ids]
        self.layers = np.zeros(n, int) if layers is None else np.asarray(layers, int)
        self.geometries = list(geometries) if geometries is not None else [None] * n
        if not len(self.file_ids) == len(self.layers) == len(self.geometries) == n:
            raise ValueError(f"file_ids, layers and geometries must each have {n} entries (one per vector).")
        self.crs = crs
        self.metric = metric
        if metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms > 0, norms, 1.0)
        self.vectors = matrix
        if backend == "auto":
            backend = "faiss" if faiss_available() else "numpy"
        if backend == "faiss" and not faiss_available():
            raise ImportError(
                "backend='faiss' needs faiss: pip install 'terratorch[faiss]' (or use backend='numpy')."
            )
        self.backend = backend
        self._rows: dict[str, list[int]] | None = None  # file id -> positions, built on first query
        self._faiss: Any = self._build_faiss() if backend == "faiss" else None

    @classmethod
    def from_parquet(
        cls,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        layer: int | None = None,
        metric: str = "cosine",
        backend: str = "auto",
    ) -> EmbeddingIndex:
        """Index the rows of GeoParquet embedding files, folders or globs.

        Args:
            paths: What :func:`~terratorch.embeddings.geoparquet.read_embeddings` accepts.
            layer: Layer to index; needed when the files hold several.
            metric, backend: See the class.

        Raises:
            FileNotFoundError: Nothing matched ``paths``.
            ValueError: Several layers and no ``layer``, or ``layer`` is not among them.
        """
        from terratorch.embeddings.geoparquet import read_embeddings

        rows = read_embeddings(paths)
        present = sorted({int(v) for v in rows["layer"]})
        if layer is None and len(present) > 1:
            raise ValueError(f"The embeddings hold layers {present}; choose one with layer=... (--layer).")
        if layer is not None and layer not in present:
            raise ValueError(f"layer {layer} is not in the embeddings; they hold layers {present}.")
        if layer is not None and len(present) > 1:
            keep = rows["layer"] == layer
            rows = {
                "file_id": [f for f, k in zip(rows["file_id"], keep, strict=True) if k],
                "layer": rows["layer"][keep],
                "vectors": rows["vectors"][keep],
                "geometry": [g for g, k in zip(rows["geometry"], keep, strict=True) if k],
                "crs": rows["crs"],
            }
        return cls(
            rows["vectors"], rows["file_id"], rows["layer"], rows["geometry"], rows["crs"], metric, backend
        )

    def __len__(self) -> int:
        return self.vectors.shape[0]

    # -- search ------------------------------------------------------------------------------------
    def _build_faiss(self) -> Any:
        import faiss

        index = (
            faiss.IndexFlatIP(self.vectors.shape[1])
            if self.metric == "cosine"
            else faiss.IndexFlatL2(self.vectors.shape[1])
        )
        index.add(self.vectors)
        return index

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query: ``(values, indices)``, each ``(q, min(k, n))``.

        ``values`` are cosine similarities (descending) or Euclidean distances (ascending).
        """
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        matrix = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if matrix.shape[1] != self.vectors.shape[1]:
            raise ValueError(
                f"Query vectors have length {matrix.shape[1]}; the index holds {self.vectors.shape[1]}."
            )
        if self.metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            matrix = matrix / np.where(norms > 0, norms, 1.0)
        k = min(k, len(self))
        if self._faiss is not None:
            values, indices = self._faiss.search(matrix, k)
        else:
            values, indices = self._numpy_search(matrix, k)
        if self.metric == "l2":
            # Both expand |q - v|^2 as |q|^2 + |v|^2 - 2 q.v, which loses precision near 0: recompute
            # the k distances directly (a file's distance to itself is then exactly 0).
            values = np.linalg.norm(self.vectors[indices] - matrix[:, None, :], axis=2)
            order = np.argsort(values, axis=1, kind="stable")
            values, indices = np.take_along_axis(values, order, 1), np.take_along_axis(indices, order, 1)
        return values, indices

    def _numpy_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.metric == "cosine":
            values = queries @ self.vectors.T
            order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        else:
            squared = (
                (queries**2).sum(1, keepdims=True)
                - 2 * queries @ self.vectors.T
                + (self.vectors**2).sum(1)[None]
            )
            values = squared
            order = np.argsort(values, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(values, order, axis=1), order

    # -- queries -----------------------------------------------------------------------------------
    def rows_of(self, file_id: str) -> np.ndarray:
        """Positions of ``file_id`` in the index (its stem also matches a path or a name with suffix).

        Raises:
            KeyError: Unknown id (the message suggests close ids).
        """
        if self._rows is None:
            self._rows = {}
            for i, f in enumerate(self.file_ids):
                self._rows.setdefault(f, []).append(i)
        wanted = str(file_id) if str(file_id) in self._rows else Path(str(file_id)).stem
        hits = self._rows.get(wanted, [])
        if not hits:
            raise KeyError(
                f"--query-file: {file_id!r} is not an indexed file id ({len(self)} ids, e.g. "
                f"{self.file_ids[:3]}).{did_you_mean(wanted, set(self.file_ids))}"
            )
        return np.asarray(hits)

    def query_file(self, file_id: str, k: int = 10) -> dict[str, Any]:
        """The ``k`` footprints most similar to an indexed file, as a GeoJSON FeatureCollection."""
        rows = self.rows_of(file_id)
        query = self.vectors[rows].mean(axis=0) if len(rows) > 1 else self.vectors[rows[0]]
        return self._results(query, k, {"file_id": str(file_id)})

    def query_geometry(self, geometry: Any, k: int = 10, crs: str | None = None) -> dict[str, Any]:
        """The ``k`` footprints most similar to the indexed footprints ``geometry`` intersects.

        Args:
            geometry: A shapely geometry, WKT, GeoJSON text/dict or a path to a GeoJSON file.
            k: Number of results.
            crs: The geometry's CRS when it is not the index's (e.g. ``"EPSG:4326"``).

        Raises:
            ValueError: The geometry cannot be parsed, or intersects no indexed footprint.
        """
        shape = parse_geometry(geometry)
        if crs is not None and self.crs is not None and crs != self.crs:
            from rasterio.warp import transform_geom
            from shapely.geometry import mapping
            from shapely.geometry import shape as to_shape

            shape = to_shape(transform_geom(crs, self.crs, mapping(shape)))
        hits = [i for i, g in enumerate(self.geometries) if g is not None and g.intersects(shape)]
        if not hits:
            known = [g for g in self.geometries if g is not None]
            if not known:
                raise ValueError(
                    "The indexed embeddings have no footprints; query with --query-file instead."
                )
            from shapely import union_all

            raise ValueError(
                f"--query-geometry intersects no indexed footprint; the index covers bounds "
                f"{tuple(round(v, 3) for v in union_all(known).bounds)} in {self.crs or 'an unknown CRS'} "
                "(give the geometry in that CRS, or pass --query-crs)."
            )
        query = self.vectors[hits].mean(axis=0)
        return self._results(query, k, {"geometry_wkt": shape.wkt, "matched_footprints": len(hits)})

    def _results(self, query: np.ndarray, k: int, about: dict[str, Any]) -> dict[str, Any]:
        from shapely.geometry import mapping

        values, indices = self.search(query[None], k)
        key = "score" if self.metric == "cosine" else "distance"
        features = []
        for rank, (value, i) in enumerate(zip(values[0], indices[0], strict=True), start=1):
            geometry = self.geometries[int(i)]
            features.append(
                {
                    "type": "Feature",
                    "geometry": mapping(geometry) if geometry is not None else None,
                    "properties": {
                        "id": self.file_ids[int(i)],
                        "layer": int(self.layers[int(i)]),
                        "rank": rank,
                        key: float(value),
                    },
                }
            )
        collection: dict[str, Any] = {"type": "FeatureCollection", "features": features}
        collection["query"] = {**about, "k": k, "metric": self.metric, "backend": self.backend}
        if self.crs is not None:
            collection["crs"] = {"type": "name", "properties": {"name": self.crs}}
        return collection


def parse_geometry(value: Any) -> Any:
    """A shapely geometry from a geometry, WKT, GeoJSON (text, dict, Feature, FeatureCollection) or file.

    Raises:
        ValueError: Nothing parseable (the message shows the accepted forms).
    """
    from shapely import wkt
    from shapely.geometry import shape as to_shape
    from shapely.geometry.base import BaseGeometry

    if isinstance(value, BaseGeometry):
        return value
    if isinstance(value, str | os.PathLike) and Path(value).suffix.lower() in (".json", ".geojson"):
        if not Path(value).is_file():
            raise ValueError(f"--query-geometry: GeoJSON file {str(value)!r} does not exist.")
        value = json.loads(Path(value).read_text())
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text.startswith("{") else wkt.loads(text)
        except Exception as error:  # shapely raises GEOSException, json JSONDecodeError
            raise ValueError(
                f"--query-geometry: cannot parse {text[:80]!r} ({error}); give WKT (POLYGON ((...))), "
                "GeoJSON text or a .geojson file."
            ) from None
        if isinstance(value, BaseGeometry):
            return value
    if isinstance(value, dict):
        if value.get("type") == "FeatureCollection":
            from shapely import union_all

            return union_all([to_shape(f["geometry"]) for f in value.get("features", [])])
        if value.get("type") == "Feature":
            value = value["geometry"]
        try:
            return to_shape(value)
        except Exception as error:
            raise ValueError(f"--query-geometry: not a GeoJSON geometry ({error}).") from None
    raise ValueError(f"--query-geometry: unsupported value of type {type(value).__name__}.")


def search(
    index: str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | EmbeddingIndex,
    *,
    query_file: str | None = None,
    query_geometry: Any = None,
    k: int = 10,
    layer: int | None = None,
    metric: str = "cosine",
    backend: str = "auto",
    query_crs: str | None = None,
) -> dict[str, Any]:
    """The ``k`` most similar footprints for a query file or geometry, as a GeoJSON FeatureCollection.

    Args:
        index: An :class:`EmbeddingIndex`, or GeoParquet files/folders/globs to index.
        query_file: An indexed file id (or its path): its neighbours, itself first.
        query_geometry: A geometry (see :meth:`EmbeddingIndex.query_geometry`).
        k: Number of results.
        layer, metric, backend: See :meth:`EmbeddingIndex.from_parquet`.
        query_crs: CRS of ``query_geometry`` when not the index's.

    Raises:
        ValueError: Not exactly one of ``query_file`` and ``query_geometry``.
    """
    if (query_file is None) == (query_geometry is None):
        raise ValueError("Give exactly one of query_file and query_geometry.")
    built = (
        index
        if isinstance(index, EmbeddingIndex)
        else EmbeddingIndex.from_parquet(index, layer, metric, backend)
    )
    if query_file is not None:
        return built.query_file(query_file, k)
    return built.query_geometry(query_geometry, k, crs=query_crs)
