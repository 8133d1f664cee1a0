"""Embeddings on disk and nearest-neighbour search over them.

* :mod:`~terratorch.embeddings.geoparquet`: :class:`GeoParquetWriter`, which streams embedding rows
  (file id, layer, vector, footprint) to a GeoParquet file batch by batch (used by
  :class:`~terratorch.tasks.EmbeddingGenerationTask`), and :func:`read_embeddings`.
* :mod:`~terratorch.embeddings.index`: :class:`EmbeddingIndex` (FAISS when installed, exact numpy
  otherwise) and :func:`search`, which return GeoJSON FeatureCollections.
* ``terratorch embeddings search`` (:mod:`terratorch.embeddings.__main__`) on the command line.

Attributes resolve lazily (PEP 562): importing this package loads neither pyarrow nor faiss.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "GeoParquetWriter": "terratorch.embeddings.geoparquet",
    "read_embeddings": "terratorch.embeddings.geoparquet",
    "EmbeddingIndex": "terratorch.embeddings.index",
    "search": "terratorch.embeddings.index",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
