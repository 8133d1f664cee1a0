"""Embedding rows in GeoParquet: written batch by batch, read back as arrays.

A row is one embedding vector: ``file_id`` (the input file's stem), ``layer`` (the encoder layer's
position in the task's ``layers``), ``embedding`` (float32 vector), ``geometry`` (the input's footprint
as WKB, in the input's CRS) and ``crs`` (that CRS as text). Optional columns: ``modality`` (multimodal
inputs), ``time_index`` (one row per time step of temporal inputs).

:class:`GeoParquetWriter` appends one row group per :meth:`~GeoParquetWriter.write_batch` through a
``pyarrow.parquet.ParquetWriter``, so memory is bounded by a batch, and stores the GeoParquet 1.0
``geo`` metadata (WKB encoding, PROJJSON CRS, bounding box) in the footer on :meth:`~GeoParquetWriter.close`.
The files read with ``geopandas.read_parquet`` and DuckDB (``read_parquet``, ``ST_GeomFromWKB``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GeoParquetWriter", "crs_to_projjson", "read_embeddings"]

GEOPARQUET_VERSION = "1.0.0"


def crs_to_projjson(crs: Any) -> dict[str, Any] | None:
    """PROJJSON of ``crs`` (a rasterio/pyproj CRS, ``"EPSG:32633"``, an EPSG int or WKT); None if unknown."""
    if crs is None:
        return None
    from pyproj import CRS

    value = crs.to_wkt() if hasattr(crs, "to_wkt") else crs
    return CRS.from_user_input(value).to_json_dict()


def crs_text(crs: Any) -> str | None:
    """A short text form of ``crs``: ``EPSG:<code>`` when it has one, else WKT (None when unknown)."""
    if crs is None:
        return None
    return _crs_text(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


@functools.lru_cache(maxsize=64)
def _crs_text(value: str | int) -> str:
    """Parsing a CRS takes ~1 ms; rows of one scene share it, so the text form is cached."""
    from pyproj import CRS

    parsed = CRS.from_user_input(value)
    code = parsed.to_epsg()
    return f"EPSG:{code}" if code else parsed.to_wkt()


class GeoParquetWriter:
    """Stream embedding rows to one GeoParquet file, one row group per batch.

    The file is created at the first :meth:`write_batch` (the vector length fixes the schema) and
    finished by :meth:`close` (or leaving the ``with`` block). Footprints in another CRS than the
    file's (the first non-empty one) are reprojected to it; their own CRS stays in the ``crs`` column.

    Args:
        path: Output ``.parquet`` file (parent folders are created).
        crs: CRS of the file's geometries; default: the first batch's.
        extra_columns: Names of optional columns the rows may carry (``modality``, ``time_index``).
    """

    def __init__(
        self, path: str | os.PathLike[str], crs: Any = None, extra_columns: Sequence[str] = ()
    ) -> None:
        self.path = Path(path)
        self.crs_text = crs_text(crs)
        self.extra_columns = list(extra_columns)
        self.rows = 0
        self.batches = 0
        self._writer: Any = None
        self._schema: Any = None
        self._dim: int | None = None
        self._bbox = [np.inf, np.inf, -np.inf, -np.inf]
        self._types: set[str] = set()

    def __enter__(self) -> GeoParquetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_batch(
        self,
        file_ids: Sequence[str],
        layers: Sequence[int] | int,
        embeddings: np.ndarray,
        footprints: Sequence[Any] | None = None,
        crs: Sequence[Any] | Any = None,
        extra: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        """Append ``len(file_ids)`` rows as one row group and flush it to disk.

        Args:
            file_ids: One id per row.
            layers: One layer number per row, or one for all.
            embeddings: ``(rows, dim)`` vectors (cast to float32).
            footprints: One shapely geometry (or None) per row, in ``crs``.
            crs: The footprints' CRS: one per row, or one for all.
            extra: Values of :attr:`extra_columns`, one per row.

        Raises:
            ValueError: Row counts disagree, or the vector length differs from earlier batches.
        """
        import pyarrow as pa

        vectors = np.asarray(embeddings, dtype=np.float32)
        n = len(file_ids)
        if vectors.ndim != 2 or vectors.shape[0] != n:
            raise ValueError(f"embeddings must be (rows, dim) with {n} rows, got shape {vectors.shape}.")
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise ValueError(
                f"{self.path}: embedding length {vectors.shape[1]} differs from the file's {self._dim}; "
                "write different layers or models to different files."
            )
        layer_values = [int(layers)] * n if isinstance(layers, int) else [int(v) for v in layers]
        crs_values = list(crs) if isinstance(crs, list | tuple) else [crs] * n
        row_crs = [crs_text(c) for c in crs_values]
        shapes = list(footprints) if footprints is not None else [None] * n
        if not len(layer_values) == len(row_crs) == len(shapes) == n:
            raise ValueError(f"file_ids, layers, footprints and crs must all have {n} entries.")
        wkb = [self._to_wkb(shape, c) for shape, c in zip(shapes, row_crs, strict=True)]
        columns: dict[str, Any] = {
            "file_id": pa.array([str(f) for f in file_ids], pa.string()),
            "layer": pa.array(layer_values, pa.int32()),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self._dim),
            "geometry": pa.array(wkb, pa.binary()),
            "crs": pa.array(row_crs, pa.string()),
        }
        for name in self.extra_columns:
            values = (extra or {}).get(name)
            columns[name] = pa.array(list(values) if values is not None else [None] * n)
        table = pa.table(columns)
        if self._writer is None:
            self._open(table.schema)
        self._writer.write_table(table.cast(self._schema))
        self.rows += n
        self.batches += 1

    def _open(self, schema: Any) -> None:
        import pyarrow.parquet as pq

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._schema = schema
        self._writer = pq.ParquetWriter(self.path, schema, compression="zstd")

    def _to_wkb(self, shape: Any, shape_crs: str | None) -> bytes | None:
        if shape is None:
            return None
        if self.crs_text is None:
            self.crs_text = shape_crs
        elif shape_crs is not None and shape_crs != self.crs_text:
            from rasterio.warp import transform_geom
            from shapely.geometry import mapping
            from shapely.geometry import shape as to_shape

            shape = to_shape(transform_geom(shape_crs, self.crs_text, mapping(shape)))
        left, bottom, right, top = shape.bounds
        self._bbox = [
            min(self._bbox[0], left),
            min(self._bbox[1], bottom),
            max(self._bbox[2], right),
            max(self._bbox[3], top),
        ]
        self._types.add(shape.geom_type)
        return shape.wkb

    def geo_metadata(self) -> dict[str, Any]:
        """The GeoParquet ``geo`` metadata of what was written so far."""
        column: dict[str, Any] = {"encoding": "WKB", "geometry_types": sorted(self._types)}
        column["crs"] = crs_to_projjson(self.crs_text)
        if np.isfinite(self._bbox).all():
            column["bbox"] = [float(v) for v in self._bbox]
        return {"version": GEOPARQUET_VERSION, "primary_column": "geometry", "columns": {"geometry": column}}

    def close(self) -> None:
        """Write the ``geo`` metadata and the footer; nothing is written when no batch came."""
        if self._writer is None:
            return
        self._writer.add_key_value_metadata({"geo": json.dumps(self.geo_metadata())})
        self._writer.close()
        self._writer = None


def _parquet_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand files, folders (every ``*.parquet`` below) and glob patterns into a sorted file list."""
    import glob

    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files += sorted(path.rglob("*.parquet"))
        elif path.is_file():
            files.append(path)
        else:
            matched = sorted(Path(p) for p in glob.glob(str(item), recursive=True))
            if not matched:
                raise FileNotFoundError(f"--index: no embeddings file or folder {str(item)!r}.")
            files += [m for m in matched if m.is_file()]
    if not files:
        raise FileNotFoundError(f"--index: no .parquet file in {[str(i) for i in items]}.")
    return files


def read_embeddings(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], layer: int | None = None
) -> dict[str, Any]:
    """Read embedding rows from GeoParquet files, folders or globs (ours and the reference's layout).

    Args:
        paths: Files, folders (searched recursively) or glob patterns.
        layer: Keep only this layer (the ``layer`` column, or the ``layer_NN`` folder for files without it).

    Returns:
        ``{"file_id": list[str], "layer": np.ndarray, "vectors": (n, dim) float32, "geometry": list of
        shapely geometries or None, "crs": str | None}``; ``crs`` is the first file's geometry CRS.

    Raises:
        FileNotFoundError: Nothing matched.
        ValueError: A file lacks ``file_id``/``embedding``, or vector lengths differ.
    """
    import pyarrow.parquet as pq
    import shapely

    ids: list[str] = []
    layers: list[int] = []
    vectors: list[np.ndarray] = []
    geometries: list[Any] = []
    crs: str | None = None
    for path in _parquet_files(paths):
        table = pq.read_table(path)
        missing = [c for c in ("file_id", "embedding") if c not in table.column_names]
        if missing:
            raise ValueError(
                f"{path}: not an embeddings file (no {missing} column; has {table.column_names})."
            )
        n = table.num_rows
        if "layer" in table.column_names:
            file_layers = np.asarray(table.column("layer").to_numpy(zero_copy_only=False), dtype=int)
        else:
            file_layers = np.full(n, _layer_from_folder(path), dtype=int)
        keep = np.ones(n, bool) if layer is None else file_layers == layer
        if not keep.any():
            continue
        rows = np.flatnonzero(keep)
        file_ids = table.column("file_id").to_pylist()
        ids += [str(file_ids[i]) for i in rows]
        layers += file_layers[rows].tolist()
        vectors.append(_vectors(table.column("embedding"))[rows])
        if "geometry" in table.column_names:
            wkb = np.asarray(table.column("geometry").to_pylist(), dtype=object)[rows]
            geometries += list(shapely.from_wkb(wkb))  # None stays None
            crs = crs or _file_crs(pq.ParquetFile(path).metadata.metadata)
        else:
            geometries += [None] * len(rows)
    dims = {v.shape[1] for v in vectors}
    if len(dims) > 1:
        raise ValueError(
            f"The embeddings have different lengths {sorted(dims)}; index one model and layer at a time."
        )
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
    return {
        "file_id": ids,
        "layer": np.asarray(layers, int),
        "vectors": matrix,
        "geometry": geometries,
        "crs": crs,
    }


def _vectors(column: Any) -> np.ndarray:
    """``(rows, dim)`` float32 from an ``embedding`` column (fixed-size lists fast, nested lists too)."""
    import pyarrow as pa

    chunk = column.combine_chunks()
    if pa.types.is_fixed_size_list(chunk.type) and chunk.null_count == 0:
        return chunk.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(chunk), -1)
    rows = [np.asarray(v, dtype=np.float32).reshape(-1) for v in chunk.to_pylist()]
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def _layer_from_folder(path: Path) -> int:
    for part in reversed(path.parts):
        if part.startswith("layer_") and part[6:].isdigit():
            return int(part[6:])
    return 0


def _file_crs(metadata: Mapping[bytes, bytes] | None) -> str | None:
    """The geometry CRS recorded in a GeoParquet footer, as ``EPSG:<code>`` or WKT."""
    if not metadata or b"geo" not in metadata:
        return None
    geo = json.loads(metadata[b"geo"])
    column = geo.get("columns", {}).get(geo.get("primary_column", "geometry"), {})
    projjson = column.get("crs")
    if projjson is None:
        return None
    return crs_text(json.dumps(projjson))
