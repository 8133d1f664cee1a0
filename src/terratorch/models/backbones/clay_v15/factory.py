"""Wavelength-conditioned patch embedding of Clay v1.5 (after DOFA, arXiv:2403.15356).

Clay v1.5 keeps Clay v1's dynamic embedding unchanged (module names, shapes and arithmetic), so the
classes are shared with :mod:`terratorch.models.backbones.clay_v1.modules`; this module gives them the
import path TerraTorch 1.2 used for v1.5.
"""

from __future__ import annotations

from terratorch.models.backbones.clay_v1.modules import DynamicEmbedding, FCBlock, WavesTransformer

__all__ = ["DynamicEmbedding", "FCBlock", "WavesTransformer"]
