"""The reference's import path of :class:`ReconstructionTask`.

Implemented in :mod:`terratorch.tasks.reconstruction`.
"""

from __future__ import annotations

from terratorch.tasks.reconstruction import ReconstructionTask

__all__ = ["ReconstructionTask"]
