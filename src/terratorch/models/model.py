"""The contracts every model and model factory honours.

Tasks only rely on these: a :class:`Model` is an ``nn.Module`` whose ``forward`` returns a
:class:`ModelOutput`, built by a :class:`ModelFactory` that is registered by class name.
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from torch import Tensor, nn

from terratorch.choices import close_matches
from terratorch.registry import MODEL_FACTORY_REGISTRY

__all__ = [
    "AuxiliaryHead",
    "AuxiliaryHeadWithDecoderWithoutInstantiatedHead",
    "Model",
    "ModelFactory",
    "ModelOutput",
    "ReconstructionOutput",
    "checked_arguments",
    "register_factory",
]

F = TypeVar("F", bound=Callable[..., Any])


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


def checked_arguments(*prefixes: str) -> Callable[[F], F]:
    """Decorate a factory's ``build_model`` so that a call not fitting its signature names the typo.

    Python reports ``model_args: {backbon: ...}`` as "missing argument 'backbone'". When the call does
    not bind, unknown keys are reported first (with a suggestion), then missing ones, before anything
    is built. Keys starting with one of ``prefixes`` are accepted by ``**kwargs``; without prefixes a
    ``**kwargs`` parameter accepts every key. The signature seen by ``inspect`` is unchanged.
    """

    def decorate(build_model: F) -> F:
        signature = inspect.signature(build_model)

        @functools.wraps(build_model)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                signature.bind(self, *args, **kwargs)
            except TypeError as error:
                owner = f"{type(self).__name__}.build_model"
                raise _argument_error(owner, signature, prefixes, len(args) + 1, kwargs, error) from None
            return build_model(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def _argument_error(
    owner: str,
    signature: inspect.Signature,
    prefixes: Sequence[str],
    positional: int,
    kwargs: Mapping[str, Any],
    error: TypeError,
) -> Exception:
    """The error for a call that does not bind: unknown keys win over missing ones."""
    params = list(signature.parameters.values())
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)
    visible = [n for n in named if n != "self"]

    def accepted(key: str) -> bool:
        return key in named or (takes_kwargs and (not prefixes or key.startswith(tuple(prefixes))))

    unknown = [key for key in kwargs if not accepted(key)]
    if unknown:
        notes = []
        for key in unknown:
            tail = key.partition("_")[2]
            candidates = visible + [prefix + tail for prefix in prefixes if tail]
            guess = close_matches(key, candidates, n=1)
            notes.append(f"{key!r} (did you mean {guess[0]!r}?)" if guess else repr(key))
        extra = f", plus keyword arguments starting with {list(prefixes)}" if prefixes else ""
        return ValueError(
            f"Unknown argument(s) for {owner}: {'; '.join(notes)} (model_args in a task config). It takes: "
            f"{', '.join(visible)}{extra}."
        )
    bound = set(named[:positional]) | set(kwargs)
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.name not in bound
    ]
    if missing:
        return TypeError(
            f"{owner} is missing required argument(s) {missing} (model_args.{missing[0]} in a task config)."
        )
    return TypeError(f"{owner}: {error}")


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
