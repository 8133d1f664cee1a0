"""Import path of the reference release for the smp decoder wrapper (``SMPDecoderWrapper``).

The wrapper lives with the decoders in :mod:`terratorch.models.decoders.smp_decoders`; the smp
source of the decoder registry is :mod:`terratorch.registry.smp_source`. This module only keeps
``from terratorch.registry.smp_registry import SMPDecoderWrapper`` working.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SMPDecoderWrapper"]


def __getattr__(name: str) -> Any:
    if name == "SMPDecoderWrapper":
        from terratorch.models.decoders.smp_decoders import SMPDecoderWrapper

        return SMPDecoderWrapper
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
