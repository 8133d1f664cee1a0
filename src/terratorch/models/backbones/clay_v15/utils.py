"""Fixed sine/cosine encodings used by Clay v1.5: the same formulas as Clay v1 (the v1.5 weights were
trained with them), so they are shared with :mod:`terratorch.models.backbones.clay_v1.utils`.
"""

from __future__ import annotations

from terratorch.models.backbones.clay_v1.utils import (
    posemb_sincos_1d,
    posemb_sincos_2d,
    posemb_sincos_2d_with_gsd,
)

__all__ = ["posemb_sincos_1d", "posemb_sincos_2d", "posemb_sincos_2d_with_gsd"]
