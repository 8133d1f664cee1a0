"""Registry source over the decoders of ``segmentation_models_pytorch`` (``smp_Unet``, ...).

Only the decoder part of each smp architecture is built, fed with our backbone's channel list; the
adapter lives in :mod:`terratorch.models.decoders.smp_decoders` and smp is imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from functools import partial
from typing import Any

from terratorch.registry.registry import InvalidModelError, close_matches

_ADAPTER_MODULE = "terratorch.models.decoders.smp_decoders"


class SMPDecoderSource:
    """Names of smp architectures whose decoders can run on an arbitrary channel list."""

    def _adapter(self) -> Any:
        return importlib.import_module(_ADAPTER_MODULE)

    def names(self) -> list[str]:
        """The smp architecture names this source can build."""
        return list(self._adapter().SUPPORTED_DECODERS)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._adapter().SUPPORTED_DECODERS

    def __getitem__(self, name: str) -> Any:
        if name not in self:
            raise InvalidModelError(name, "smp decoders", close_matches(name, self.names()))
        return partial(self.build, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def build(self, name: str, channel_list: list[int], *args: Any, **kwargs: Any) -> Any:
        """Build the decoder of smp architecture ``name`` over ``channel_list``."""
        return self._adapter().build_smp_decoder(name, channel_list, *args, **kwargs)

    def __repr__(self) -> str:
        return "SMPDecoderSource()"
