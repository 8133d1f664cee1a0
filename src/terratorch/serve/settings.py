"""Default serving limits, shared by the app and the command line (no heavy imports, for ``--help``)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_UPLOAD_MB", "DEFAULT_MAX_WAIT_MS"]

DEFAULT_MAX_BATCH = 8
"""Most requests run in one forward pass."""
DEFAULT_MAX_WAIT_MS = 10.0
"""Longest time the first request of a batch waits for others."""
DEFAULT_MAX_UPLOAD_MB = 256.0
"""Largest accepted request body, in MiB."""
