"""The historical ``PrithviModelFactory``: bands-aware front end to the encoder-decoder machinery.

Despite its name it takes any backbone: a ``BACKBONE_REGISTRY`` name (Prithvi, or any timm model
with ``backbone_*`` kwargs reaching ``timm.create_model``) or an ``nn.Module`` exposing a timm
``FeatureInfo`` in ``feature_info``. Upstream TerraTorch later removed this factory; we keep it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from terratorch.models.backbone_adapter import PretrainedWeightsNotFoundError, resolve_timm_pretrained
from terratorch.models.encoder_decoder_factory import (
    PREFIXES,
    assemble_model,
    build_backbone,
    check_task,
    parameter_names,
    route_kwargs,
    split_temporal_kwargs,
    wrap_encoder,
)
from terratorch.models.model import AuxiliaryHead, Model, ModelFactory, checked_arguments, register_factory

__all__ = ["PretrainedWeightsNotFoundError", "PrithviModelFactory", "resolve_timm_pretrained"]


@register_factory
class PrithviModelFactory(ModelFactory):
    """Build backbone + decoder + head models from a band list (see :meth:`build_model`)."""

    @checked_arguments(*PREFIXES)
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | nn.Module,
        bands: Sequence[Any],
        in_channels: int | None = None,
        num_classes: int | None = None,
        pretrained: bool = True,
        num_frames: int = 1,
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        aux_decoders: list[AuxiliaryHead] | None = None,
        rescale: bool = True,
        necks: list[dict[str, Any]] | None = None,
        peft_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the model.

        Args:
            task: ``segmentation``, ``regression`` or ``classification``.
            backbone: Registry name or an ``nn.Module`` whose ``feature_info`` is a timm
                ``FeatureInfo`` (only ``num_chs`` is read) and whose ``forward`` returns a list.
            decoder: Decoder registry name or instance.
            bands: Input bands (names or ``HLSBands``); their count is the default ``in_channels``.
            in_channels: Input channels; defaults to ``len(bands)`` (reaches timm as ``in_chans``).
            num_classes: Classes for segmentation/classification.
            pretrained: Load pretrained weights. For timm backbones they must be available offline:
                ``backbone_pretrained_cfg_overlay={"file": path}`` or the local Hugging Face/torch cache.
            num_frames: Time steps per sample (passed to our Prithvi backbones).
            prepare_features_for_image_model: Applied to the backbone output; overrides a method of
                that name on the backbone.
            aux_decoders: Auxiliary decoders.
            rescale: Interpolate pixel-wise outputs to the input size.
            necks: Optional neck configs (as for ``EncoderDecoderFactory``).
            peft_config: Optional LoRA config (as for ``EncoderDecoderFactory``).
            **kwargs: ``backbone_*``, ``decoder_*``, ``head_*`` arguments.

        Raises:
            PretrainedWeightsNotFoundError: ``pretrained=True`` on a timm backbone without local weights.
        """
        task = check_task(task)
        routed = route_kwargs(
            kwargs, known=parameter_names(self.build_model)
        )  # a typo wins over what it hides
        if task in ("segmentation", "classification") and num_classes is None:
            raise ValueError(f"task={task!r} needs num_classes (the number of output classes).")
        if not bands:
            raise ValueError("bands must list the input bands (e.g. ['BLUE', 'GREEN', 'RED']).")
        in_channels = len(bands) if in_channels is None else in_channels
        temporal, backbone_args = split_temporal_kwargs(routed.backbone)
        if isinstance(backbone, str):
            backbone_args = _backbone_args(
                backbone, backbone_args, bands, in_channels, pretrained, num_frames
            )
        encoder = wrap_encoder(build_backbone(backbone, backbone_args), temporal, peft_config)
        return assemble_model(
            task=task,
            encoder=encoder,
            decoder=decoder,
            decoder_kwargs=routed.decoder,
            head_kwargs=routed.head,
            num_classes=num_classes,
            necks=necks,
            aux_decoders=aux_decoders,
            rescale=rescale,
            prepare_features_for_image_model=prepare_features_for_image_model,
        )


def _backbone_args(
    name: str,
    backbone_args: dict[str, Any],
    bands: Sequence[Any],
    in_channels: int,
    pretrained: bool,
    num_frames: int,
) -> dict[str, Any]:
    """Add the factory-level arguments in the form the backbone's source expects."""
    from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

    args = dict(backbone_args)
    source = BACKBONE_REGISTRY.find_registry(name)
    if source is TERRATORCH_BACKBONE_REGISTRY:
        args.setdefault("pretrained", pretrained)
        args.setdefault("bands", list(bands))
        args.setdefault("num_frames", num_frames)
        return args
    # timm: its own argument names; build_backbone makes pretrained=True load from local files only
    args.setdefault("in_chans", in_channels)
    args.setdefault("pretrained", pretrained)
    return args
