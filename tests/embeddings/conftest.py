"""Synthetic embedding files for the index and search tests (no model: made-up vectors and footprints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CRS = "EPSG:32633"
N, DIM, BATCH = 12, 8, 4


@dataclass
class Embeddings:
    """What the ``embeddings`` fixture wrote."""

    path: Path
    ids: list[str]
    vectors: np.ndarray
    footprints: list[Any]
    crs: str = CRS


def _footprint(i: int) -> Any:
    """Chip ``i``: a 320 m square on a 4-column grid with 10 m gaps (UTM 33N)."""
    from shapely.geometry import box

    x0, y0 = 500_000 + (i % 4) * 330, 4_000_000 - (i // 4) * 330
    return box(x0, y0 - 320, x0 + 320, y0)


@pytest.fixture
def embeddings(tmp_path) -> Embeddings:
    """``layer_00/embeddings.parquet``: N rows written in batches of BATCH."""
    from terratorch.embeddings import GeoParquetWriter

    path = tmp_path / "emb" / "layer_00" / "embeddings.parquet"
    values = np.random.default_rng(0).normal(size=(N, DIM)).astype(np.float32)
    ids = [f"chip_{i:03d}" for i in range(N)]
    shapes = [_footprint(i) for i in range(N)]
    with GeoParquetWriter(path) as writer:
        for start in range(0, N, BATCH):
            part = slice(start, start + BATCH)
            writer.write_batch(ids[part], 0, values[part], shapes[part], CRS)
    return Embeddings(path, ids, values, shapes)
