"""Whole timm classifiers as TerraTorch classification models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from terratorch.choices import close_matches
from terratorch.models.encoder_decoder_factory import check_task, parameter_names
from terratorch.models.model import Model, ModelFactory, ModelOutput, checked_arguments, register_factory
from terratorch.models.utils import extract_prefix_keys

__all__ = ["TimmModelFactory", "TimmModelWrapper"]


@register_factory
class TimmModelFactory(ModelFactory):
    """Build ``timm.create_model(backbone, num_classes=..., in_chans=..., **backbone_kwargs)``."""

    @checked_arguments("backbone_")
    def build_model(
        self,
        task: str,
        backbone: str,
        in_channels: int | None = None,
        num_classes: int | None = None,
        pretrained: bool = False,
        bands: Sequence[Any] | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the classifier.

        Args:
            task: ``classification`` (output ``(B, num_classes)``).
            backbone: timm model name (``resnet18``, ``convnext_atto``, ``timm_resnet18``, ...).
            num_classes: Output classes.
            bands: Input bands; their count is the default ``in_channels``.
            in_channels: Input channels (default ``len(bands)``, else 3); passed as ``in_chans``.
            pretrained: Load pretrained weights; like ``PrithviModelFactory`` they must be available
                offline (``backbone_pretrained_cfg_overlay={"file": ...}`` or the local cache).
            backbone_kwargs: Extra ``timm.create_model`` arguments (also as ``backbone_<name>=...``).

        Raises:
            ValueError: Task other than classification, or unused kwargs.
            InvalidModelError: Unknown timm model name.
        """
        import timm

        extracted, rest = extract_prefix_keys(kwargs, "backbone_")
        if rest:  # checked first: a typo (num_clases) must not be reported as what it hides
            named = parameter_names(self.build_model)
            guesses = [repr(m[0]) for key in sorted(rest) if (m := close_matches(key, named, n=1))]
            hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
            raise ValueError(
                f"Unused argument(s) {sorted(rest)}{hint}: TimmModelFactory passes only 'backbone_*' kwargs "
                "(to timm.create_model)."
            )
        if num_classes is None:
            raise ValueError("TimmModelFactory needs num_classes (the number of output classes).")
        check_task(task)
        if task != "classification":
            raise ValueError(
                f"TimmModelFactory builds classifiers: task must be 'classification', got {task!r}."
            )
        name = backbone.partition("_")[2] if backbone.startswith("timm_") else backbone
        if not timm.is_model(name):
            from terratorch.registry import InvalidModelError

            raise InvalidModelError(backbone, "timm models", close_matches(name, timm.list_models(), n=5))
        timm_kwargs = {**(backbone_kwargs or {}), **extracted}
        if in_channels is None:
            in_channels = len(bands) if bands else 3
        if pretrained:
            from terratorch.models.backbone_adapter import resolve_timm_pretrained

            overlay = timm_kwargs.get("pretrained_cfg_overlay")
            timm_kwargs["pretrained_cfg_overlay"] = resolve_timm_pretrained(name, overlay)
        net = timm.create_model(
            name, pretrained=bool(pretrained), num_classes=num_classes, in_chans=in_channels, **timm_kwargs
        )
        return TimmModelWrapper(net)


class TimmModelWrapper(Model):
    """A timm classifier returning :class:`ModelOutput` with ``(B, num_classes)`` logits."""

    def __init__(self, timm_model: nn.Module) -> None:
        super().__init__()
        self.timm_model = timm_model

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """``(B, C, H, W)`` → ``(B, num_classes)``; extra batch keys are ignored."""
        return ModelOutput(output=self.timm_model(x))

    def freeze_encoder(self) -> None:
        """Freeze everything except the classifier layer (timm's ``get_classifier()``)."""
        classifier = {id(p) for p in self.timm_model.get_classifier().parameters()}
        for param in self.timm_model.parameters():
            if id(param) not in classifier:
                param.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Freeze the classifier layer (a timm classifier has no separate decoder)."""
        self.freeze_head()

    def freeze_head(self) -> None:
        """Freeze the classifier layer (timm's ``get_classifier()``)."""
        for param in self.timm_model.get_classifier().parameters():
            param.requires_grad_(False)
