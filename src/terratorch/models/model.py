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
    "ReconstructionOutput",
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
        decoder_args: ``decoder_*`` keys go to the decoder, ``head_*`` keys to this head (on top of
            the main head's arguments); unprefixed keys also reach the decoder (ours).
    """

    name: str
    decoder: str
    decoder_args: dict[str, Any] | None = None


@dataclass
class AuxiliaryHeadWithDecoderWithoutInstantiatedHead:
    """An auxiliary decoder already built, whose head is still to be created by the model.

    Attributes:
        name: Key of its prediction in :attr:`ModelOutput.auxiliary_heads`.
        decoder: The built decoder.
        head_args: Arguments of its head.
        decoder_includes_head: The decoder already ends in the output projection (no head is added).
    """

    name: str
    decoder: nn.Module
    head_args: dict[str, Any] | None
    decoder_includes_head: bool = False

    @property
    def head_kwargs(self) -> dict[str, Any]:
        """Alias of ``head_args`` (this package's earlier name)."""
        return self.head_args or {}


@dataclass
class ReconstructionOutput:
    """What reconstruction models (e.g. masked autoencoders) return.

    Attributes:
        loss: Losses by name; must include ``"loss"``.
        pred: Reconstruction ``(B, C, H, W)`` / ``(B, C, T, H, W)``, or one per modality.
        mask: Masked pixels (1 = masked), ``(B, H, W)`` / ``(B, T, H, W)``, or one per modality.
    """

    loss: dict[str, Tensor]
    pred: Tensor | dict[str, Tensor]
    mask: Tensor | dict[str, Tensor] | None
