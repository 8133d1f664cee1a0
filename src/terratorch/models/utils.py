"""Small helpers shared by the model factories.

``extract_prefix_keys`` is how factories route ``backbone_*`` / ``decoder_*`` / ``head_*`` keyword
arguments; ``TemporalWrapper`` is re-exported here because user code imports it from this path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from terratorch.models.temporal_wrapper import TemporalWrapper

__all__ = ["TemporalWrapper", "extract_prefix_keys"]


def extract_prefix_keys(d: Mapping[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``d`` into the entries whose key starts with ``prefix`` and the rest.

    Args:
        d: Keyword arguments, e.g. ``{"backbone_img_size": 64, "decoder_channels": 32}``.
        prefix: The prefix to match, e.g. ``"backbone_"``.

    Returns:
        ``(extracted, remaining)``: the matching entries with the prefix removed
        (``{"img_size": 64}``) and the other entries unchanged (``{"decoder_channels": 32}``).
    """
    extracted: dict[str, Any] = {}
    remaining: dict[str, Any] = {}
    for key, value in d.items():
        if key.startswith(prefix):
            extracted[key[len(prefix) :]] = value
        else:
            remaining[key] = value
    return extracted, remaining
