"""Models registered whole in ``FULL_MODEL_REGISTRY`` (e.g. the ``*_mae`` autoencoders), as Models."""

from __future__ import annotations

from typing import Any

from torch import nn

from terratorch.choices import did_you_mean
from terratorch.models.backbone_adapter import instantiate_spec
from terratorch.models.model import Model, ModelFactory, ModelOutput, checked_arguments, register_factory

__all__ = ["FullModelFactory", "FullModelWrapper"]


@register_factory
class FullModelFactory(ModelFactory):
    """Build a complete model by name (or take an instance) and make it return :class:`ModelOutput`."""

    @checked_arguments()
    def build_model(
        self,
        model: str | nn.Module | None = None,
        rescale: bool = True,
        padding: str = "reflect",
        peft_config: dict[str, Any] | None = None,
        task: str | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build ``model`` with ``kwargs`` from ``FULL_MODEL_REGISTRY`` (or wrap the given instance).

        Args:
            task: Any task name; it is recorded on the wrapper but not interpreted (a full model
                decides its own outputs, e.g. ``reconstruction`` for masked autoencoders).
            model: ``FULL_MODEL_REGISTRY`` name, ``class_path`` spec or ``nn.Module``.
            **kwargs: Constructor arguments of the registered model.

        Raises:
            InvalidModelError: Unknown model name.
            ValueError: kwargs given together with an instance.
        """
        if model is None:
            typo = next((key for key in kwargs if did_you_mean(key, ["model"])), None)
            hint = f" Unknown argument {typo!r} (did you mean 'model'?)." if typo else ""
            raise ValueError(
                f"FullModelFactory needs model (a FULL_MODEL_REGISTRY name or an nn.Module).{hint}"
            )
        model = instantiate_spec(model, "model")
        if isinstance(model, nn.Module):
            if kwargs:
                raise ValueError(
                    f"model is an already built {type(model).__name__}; arguments {sorted(kwargs)} cannot be "
                    "applied. Pass the model by name instead, or drop them."
                )
            net = model
        elif isinstance(model, str):
            from terratorch.registry import FULL_MODEL_REGISTRY

            net = FULL_MODEL_REGISTRY.build(model, **kwargs)
        else:
            raise TypeError(
                f"model must be a FULL_MODEL_REGISTRY name or an nn.Module, got {type(model).__name__}."
            )
        if peft_config is not None:
            from terratorch.models.peft import apply_peft

            net = apply_peft(net, peft_config)
        return net if isinstance(net, Model) else FullModelWrapper(net, task=task or "")


class FullModelWrapper(Model):
    """Wrap a module so its output comes as :class:`ModelOutput`.

    A tensor becomes ``ModelOutput(tensor)``; a ``ModelOutput`` passes through; anything else (e.g.
    the ``(loss, reconstruction, mask)`` tuple of a masked autoencoder) is stored unchanged in
    ``output`` for the task to unpack.
    """

    def __init__(self, model: nn.Module, task: str = "") -> None:
        super().__init__()
        # share the wrapped module's parameters, buffers and children: the state_dict keys are the
        # model's own, as the reference release (which returns the bare model) writes them
        object.__setattr__(self, "_inner", model)
        self._parameters = model._parameters
        self._buffers = model._buffers
        self._non_persistent_buffers_set = model._non_persistent_buffers_set
        self._modules = model._modules
        self.task = task

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__["_inner"]
            if name == "model":
                return inner
            return getattr(inner, name)

    def train(self, mode: bool = True) -> FullModelWrapper:
        """Set train/eval mode here and on the wrapped model."""
        super().train(mode)
        self._inner.training = mode
        return self

    def forward(self, *args: Any, **kwargs: Any) -> ModelOutput:
        """Run the wrapped model and wrap its result."""
        out = self._inner(*args, **kwargs)
        return out if isinstance(out, ModelOutput) else ModelOutput(output=out)

    def freeze_encoder(self) -> None:
        """Freeze ``model.encoder`` (or the model's own ``freeze_encoder``); no-op if it has neither."""
        self._freeze_part("encoder")

    def freeze_decoder(self) -> None:
        """Freeze ``model.decoder`` (or the model's own ``freeze_decoder``); no-op if it has neither."""
        self._freeze_part("decoder")

    def freeze_head(self) -> None:
        """Freeze ``model.head`` (or the model's own ``freeze_head``); no-op if it has neither."""
        self._freeze_part("head")

    def _freeze_part(self, part: str) -> None:
        method = getattr(self._inner, f"freeze_{part}", None)
        if callable(method):
            method()
        elif isinstance(getattr(self._inner, part, None), nn.Module):
            for param in getattr(self._inner, part).parameters():
                param.requires_grad_(False)
