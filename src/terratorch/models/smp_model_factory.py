"""Whole ``segmentation_models_pytorch`` models (encoder and decoder both from smp) as TerraTorch models."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from terratorch.choices import close_matches
from terratorch.models.backbone_adapter import pad_to_multiple
from terratorch.models.encoder_decoder_factory import check_task
from terratorch.models.model import Model, ModelFactory, ModelOutput, checked_arguments, register_factory
from terratorch.models.utils import extract_prefix_keys
from terratorch.registry import InvalidModelError

__all__ = ["SMPModelFactory", "SMPModelWrapper"]

SMP_TASKS = ("segmentation", "regression")


@register_factory
class SMPModelFactory(ModelFactory):
    """Build an smp architecture (``Unet``, ``FPN``, ``DeepLabV3Plus``, ...) on an smp encoder."""

    @checked_arguments("smp_", "aux_")
    def build_model(
        self,
        task: str,
        backbone: str,
        model: str,
        bands: Sequence[Any] | None = None,
        in_channels: int | None = None,
        num_classes: int = 1,
        pretrained: str | bool = False,
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        regression_relu: bool = False,
        **kwargs: Any,
    ) -> Model:
        """Build the model.

        Args:
            task: ``segmentation`` (output ``(B, num_classes, H, W)``) or ``regression`` (``(B, H, W)``).
            backbone: smp encoder name (``resnet18``, ``efficientnet-b0``, ``tu-<timm name>``, ...).
            model: smp architecture name (case-insensitive: ``Unet``, ``FPN``, ``DeepLabV3Plus``, ...).
            bands: Input bands; their count is the default ``in_channels``.
            in_channels: Input channels (default ``len(bands)``, else 3).
            num_classes: Output classes (1 for regression).
            pretrained: ``False`` for random init; ``True`` means smp's ``"imagenet"`` weights, a string
                names the weights. smp downloads them unless they are in the local torch/HF cache.
            prepare_features_for_image_model: Not used by whole smp models; accepted for config
                compatibility and rejected when set.
            regression_relu: Apply a ReLU to regression outputs (non-negative targets).
            **kwargs: ``smp_*`` → smp model constructor (e.g. ``smp_decoder_channels``);
                ``aux_*`` → smp ``aux_params`` (an image-level classification head whose output is
                returned as ``ModelOutput.auxiliary_heads["classification"]``).

        Raises:
            ValueError: Unsupported task, unused kwargs, or ``prepare_features_for_image_model`` given.
            InvalidModelError: Unknown smp architecture or encoder name.
        """
        import segmentation_models_pytorch as smp

        check_task(task)
        if task not in SMP_TASKS:
            raise ValueError(f"SMPModelFactory supports tasks {list(SMP_TASKS)}, got {task!r}.")
        if prepare_features_for_image_model is not None:
            raise ValueError(
                "SMPModelFactory builds whole smp models whose encoder output never leaves smp, so "
                "prepare_features_for_image_model cannot be applied; use EncoderDecoderFactory instead."
            )
        smp_kwargs, rest = extract_prefix_keys(kwargs, "smp_")
        aux_params, rest = extract_prefix_keys(rest, "aux_")
        if rest:
            raise ValueError(
                f"Unused argument(s) {sorted(rest)}: SMPModelFactory routes 'smp_*' kwargs to the smp model "
                "and 'aux_*' kwargs to its aux_params."
            )
        architecture = _architecture(smp, model)
        _check_encoder(smp, backbone)
        if in_channels is None:
            in_channels = len(bands) if bands else 3
        weights = ("imagenet" if pretrained is True else pretrained) or None
        net = architecture(
            encoder_name=backbone,
            encoder_weights=weights,
            in_channels=in_channels,
            classes=1 if task == "regression" else num_classes,
            aux_params=aux_params or None,
            **smp_kwargs,
        )
        return SMPModelWrapper(net, task=task, relu=regression_relu and task == "regression")


def _architecture(smp: Any, model: str) -> type[nn.Module]:
    from segmentation_models_pytorch import MODEL_ARCHITECTURES_MAPPING

    found = MODEL_ARCHITECTURES_MAPPING.get(str(model).lower())
    if found is None:
        names = [cls.__name__ for cls in MODEL_ARCHITECTURES_MAPPING.values()]
        raise InvalidModelError(
            str(model), "smp architectures", close_matches(str(model), names, n=5), hint=f"Valid: {names}."
        )
    return found


def _check_encoder(smp: Any, name: str) -> None:
    if name.startswith("tu-"):
        return  # any timm model through smp's timm-universal encoder
    names = smp.encoders.get_encoder_names()
    if name not in names:
        raise InvalidModelError(
            name,
            "smp encoders",
            close_matches(name, names, n=5),
            hint="Use 'tu-<timm model>' for timm encoders.",
        )


class SMPModelWrapper(Model):
    """An smp model returning :class:`ModelOutput`; inputs are padded to the encoder's output stride.

    Args:
        smp_model: The smp segmentation model.
        task: ``segmentation`` or ``regression``.
        relu: Apply ReLU to the output (regression with non-negative targets).
    """

    def __init__(self, smp_model: nn.Module, task: str = "segmentation", relu: bool = False) -> None:
        super().__init__()
        self.smp_model = smp_model
        self.task = task
        self.relu = relu
        encoder = getattr(smp_model, "encoder", None)
        stride = int(getattr(encoder, "output_stride", 32))
        self.patch_size = (stride, stride)

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """``(B, C, H, W)`` → ``(B, classes, H, W)`` (segmentation) or ``(B, H, W)`` (regression)."""
        height, width = x.shape[-2:]
        out = self.smp_model(pad_to_multiple(x, self.patch_size, "reflect"))
        aux = None
        if isinstance(out, (tuple, list)):
            out, label = out
            aux = {"classification": label}
        out = out[..., :height, :width]
        if self.task == "regression":
            out = out.squeeze(1)
            if self.relu:
                out = torch.relu(out)
        return ModelOutput(output=out, auxiliary_heads=aux)

    def freeze_encoder(self) -> None:
        """Stop gradients through the smp encoder."""
        for param in self.smp_model.encoder.parameters():
            param.requires_grad_(False)

    def freeze_decoder(self) -> None:
        """Stop gradients through the smp decoder."""
        for param in self.smp_model.decoder.parameters():
            param.requires_grad_(False)

    def freeze_head(self) -> None:
        """Stop gradients through the segmentation head."""
        for param in self.smp_model.segmentation_head.parameters():
            param.requires_grad_(False)
