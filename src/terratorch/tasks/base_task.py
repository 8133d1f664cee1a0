"""The reference's import path of :class:`TerraTorchTask`.

Implemented in :mod:`terratorch.tasks.base`.
"""

from __future__ import annotations

from terratorch.tasks.base import TerraTorchTask

__all__ = ["TerraTorchTask"]
