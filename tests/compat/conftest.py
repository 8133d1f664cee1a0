"""Golden tests against fixtures written by the reference release (``tools/reference/``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(ROOT / "tools" / "reference"))


def load_manifest(part: str) -> dict[str, Any]:
    """The manifest of one golden part; fails (not skips) when the fixtures are missing."""
    path = GOLDEN / part / "manifest.json"
    if not path.exists():
        pytest.fail(f"golden fixtures missing: {path}; run tools/reference/make_golden.py --only {part}")
    return json.loads(path.read_text())


def layout_diff(expected: dict[str, list[int]], actual: dict[str, list[int]], limit: int = 6) -> str:
    """A short description of how two state-dict layouts differ ('' when equal)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    shapes = sorted(k for k in set(expected) & set(actual) if list(expected[k]) != list(actual[k]))
    parts = []
    if missing:
        parts.append(f"{len(missing)} reference keys missing in ours, first: {missing[:limit]}")
    if extra:
        parts.append(f"{len(extra)} keys only in ours, first: {extra[:limit]}")
    if shapes:
        parts.append(
            f"{len(shapes)} shapes differ, first: "
            + ", ".join(f"{k}: ref {expected[k]} ours {actual[k]}" for k in shapes[:limit])
        )
    return "; ".join(parts)
