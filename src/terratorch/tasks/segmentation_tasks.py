"""The reference's import path of :class:`SemanticSegmentationTask`.

Implemented in :mod:`terratorch.tasks.segmentation`.
"""

from __future__ import annotations

from terratorch.tasks.segmentation import SemanticSegmentationTask

__all__ = ["SemanticSegmentationTask"]
