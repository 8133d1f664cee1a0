"""The contracts every model and model factory honours.

Tasks only rely on these: a :class:`Model` is an ``nn.Module`` whose ``forward`` returns a
:class:`ModelOutput`, built by a :class:`ModelFactory` that is registered by class name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from terratorch.registry import MODEL_FACTORY_REGISTRY

__all__ = [
    "AuxiliaryHead",
    "AuxiliaryHeadWithDecoderWithoutInstantiatedHead",
    "Model",
    "ModelFactory",
    "ModelOutput",
    "register_factory",
]


@dataclass
class ModelOutput:
    """What every model returns.

    Attributes:
        output: The main prediction, e.g. ``(B, num_classes, H, W)`` logits for segmentation.
        auxiliary_heads: Predictions of auxiliary heads by name (used only for auxiliary losses).
    """

    output: Tensor
    auxiliary_heads: dict[str, Tensor] | None = None


class Model(nn.Module, ABC):
    """Abstract model: ``forward`` returns :class:`ModelOutput`; encoder/decoder can be frozen."""

    @abstractmethod
    def forward(self, *args: Any, **kwargs: Any) -> ModelOutput:
        """Run the model."""

    @abstractmethod
    def freeze_encoder(self) -> None:
        """Stop gradients through the encoder (backbone)."""

    @abstractmethod
    def freeze_decoder(self) -> None:
        """Stop gradients through the decoder."""


@runtime_checkable
class ModelFactory(Protocol):
    """Anything with ``build_model(task, ...) -> Model``; subclass it or just match its shape."""

    def build_model(self, task: str, *args: Any, **kwargs: Any) -> Model:
        """Assemble a model for ``task``."""
        ...


register_factory = MODEL_FACTORY_REGISTRY.register
"""Class decorator registering a model factory in ``MODEL_FACTORY_REGISTRY`` by class name."""


@dataclass
class AuxiliaryHead:
    """An extra decoder + head trained with an auxiliary loss.

    Attributes:
        name: Key of its prediction in :attr:`ModelOutput.auxiliary_heads` (and in ``aux_loss``).
        decoder: Decoder registry name.
        decoder_args: Decoder kwargs; ``head_*`` keys configure this head only.
    """

    name: str
    decoder: str
    decoder_args: dict[str, Any] | None = None


@dataclass
class AuxiliaryHeadWithDecoderWithoutInstantiatedHead:
    """An auxiliary decoder already built, whose head is still to be created by the model."""

    name: str
    decoder: nn.Module
    head_kwargs: dict[str, Any]
