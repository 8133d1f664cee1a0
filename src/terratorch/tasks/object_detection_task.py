"""The reference's import path of :class:`ObjectDetectionTask`.

Implemented in :mod:`terratorch.tasks.object_detection`.
"""

from __future__ import annotations

from terratorch.tasks.object_detection import ObjectDetectionTask

__all__ = ["ObjectDetectionTask"]
