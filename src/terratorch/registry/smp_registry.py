"""Import path of the reference release for the smp decoder wrapper (``SMPDecoderWrapper``).

The wrapper lives with the decoders in :mod:`terratorch.models.decoders.smp_decoders`; the smp
source of the decoder registry is :mod:`terratorch.registry.smp_source`. This module only keeps
``from terratorch.registry.smp_registry import SMPDecoderWrapper`` working.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY = {"SMPDecoderWrapper": "terratorch.models.decoders.smp_decoders"}
__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
