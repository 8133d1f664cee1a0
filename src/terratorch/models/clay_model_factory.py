"""``ClayModelFactory``: segmentation, regression and classification models on a Clay encoder.

The backbone is a ``BACKBONE_REGISTRY`` name containing ``clay`` (``clay_v1_base``, ``clay_v15_*``)
or a built Clay backbone; the decoder gets the backbone's channel list, the head follows the task, and
inputs are padded (``reflect`` by default) to multiples of the patch size, as in TerraTorch 1.2.

Differences from 1.2 (its spelling keeps working): a backbone name that fails to build raises (1.2
printed the error and went on to a ``NameError``); ``prepare_features_for_image_model`` is applied
(1.2 dropped it); ``checkpoint_path`` loads into the named backbone or into a given one (1.2 ignored
it for names and, given a module, discarded that module and built a fresh ``clay_v1_base`` from the
file); keyword arguments without a ``backbone_``/``decoder_``/``head_`` prefix are an error (1.2
dropped them silently).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from terratorch.models.encoder_decoder_factory import (
    UnsupportedTaskError,
    assemble_model,
    check_task,
    find_patch_size,
    parameter_names,
    route_kwargs,
)
from terratorch.models.model import AuxiliaryHead, Model, ModelFactory, checked_arguments, register_factory

__all__ = ["PIXEL_WISE_TASKS", "SCALAR_TASKS", "SUPPORTED_TASKS", "ClayModelFactory", "build_clay_model"]

PIXEL_WISE_TASKS = ["segmentation", "regression"]
SCALAR_TASKS = ["classification", "scalar_regression"]
SUPPORTED_TASKS = PIXEL_WISE_TASKS + SCALAR_TASKS

_PREFIXES = ("backbone_", "decoder_", "head_")


def _clay_backbone(
    owner: str,
    backbone: str | nn.Module,
    backbone_kwargs: dict[str, Any],
    bands: Sequence[Any],
    pretrained: bool,
    num_frames: int,
    checkpoint_path: str | Path | None,
) -> nn.Module:
    """Build (or take) the Clay backbone; ``checkpoint_path`` becomes its ``ckpt_path``."""
    if isinstance(backbone, nn.Module):
        if checkpoint_path:
            loader = getattr(backbone, "load_clay_weights", None)
            if loader is None:
                raise TypeError(
                    f"{owner}: checkpoint_path given with a {type(backbone).__name__} backbone, which has no "
                    "load_clay_weights method; load the weights into it, or pass a Clay backbone name."
                )
            loader(checkpoint_path)
        return backbone
    if not isinstance(backbone, str) or "clay" not in backbone:
        raise NotImplementedError(
            f"{owner} only builds models on Clay encoders (e.g. 'clay_v1_base', 'clay_v15_large'), got "
            f"{backbone!r}; use EncoderDecoderFactory for other backbones."
        )
    from terratorch.registry import BACKBONE_REGISTRY

    kwargs = dict(backbone_kwargs)
    kwargs.setdefault("pretrained", pretrained)
    kwargs.setdefault("num_frames", num_frames)
    if bands:
        kwargs.setdefault("bands", list(bands))
    if checkpoint_path and not kwargs.get("ckpt_path"):
        kwargs["ckpt_path"] = checkpoint_path
    return BACKBONE_REGISTRY.build(backbone, **kwargs)


def build_clay_model(
    owner: str,
    *,
    task: str,
    backbone: str | nn.Module,
    decoder: str | nn.Module,
    bands: Sequence[Any],
    num_classes: int | None,
    pretrained: bool,
    num_frames: int,
    prepare_features_for_image_model: Callable[[Any], Any] | None,
    aux_decoders: list[AuxiliaryHead] | None,
    rescale: bool,
    checkpoint_path: str | Path | None,
    kwargs: dict[str, Any],
    known: Sequence[str] = (),
) -> Model:
    """Assemble backbone, decoder and head for ``task`` (shared by both Clay factories).

    Raises:
        UnsupportedTaskError: ``task`` is not one of :data:`SUPPORTED_TASKS`.
        NotImplementedError: ``backbone`` is a name without ``clay`` in it.
        ValueError: A keyword argument lacks a ``backbone_``/``decoder_``/``head_`` prefix.
    """
    task = check_task(task.lower() if isinstance(task, str) else task)
    if task not in SUPPORTED_TASKS:  # pragma: no cover - check_task knows exactly these
        raise UnsupportedTaskError(f"{owner}: task {task!r} not supported; valid: {SUPPORTED_TASKS}.")
    routed = route_kwargs(kwargs, known=known)
    backbone_kwargs = dict(routed.backbone)
    padding = backbone_kwargs.pop("padding", "reflect")
    encoder = _clay_backbone(owner, backbone, backbone_kwargs, bands, pretrained, num_frames, checkpoint_path)
    patch_size = backbone_kwargs.get("patch_size") or find_patch_size(encoder)
    return assemble_model(
        task=task,
        encoder=encoder,
        decoder=decoder,
        decoder_kwargs=routed.decoder,
        head_kwargs=routed.head,
        num_classes=num_classes,
        necks=None,
        aux_decoders=aux_decoders,
        rescale=rescale,
        padding=padding,
        patch_size=patch_size,
        prepare_features_for_image_model=prepare_features_for_image_model,
    )


@register_factory
class ClayModelFactory(ModelFactory):
    """Build a Clay-encoder model (``PixelWiseModel`` or ``ScalarOutputModel``, forward → ``ModelOutput``)."""

    @checked_arguments(*_PREFIXES)
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | nn.Module,
        in_channels: int,
        bands: Sequence[Any] = (),
        num_classes: int | None = None,
        pretrained: bool = True,
        num_frames: int = 1,
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        aux_decoders: list[AuxiliaryHead] | None = None,
        rescale: bool = True,
        checkpoint_path: str | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the model.

        Args:
            task: ``segmentation``, ``regression``, ``classification`` or ``scalar_regression``.
            backbone: A Clay backbone name (``clay_v1_base``, ``clay_v15_large``, ...) or a built one.
            decoder: Decoder registry name (``FCNDecoder``, ``UperNetDecoder``, ...) or instance.
            in_channels: Input channels (the Clay encoders read ``bands`` instead; kept for configs).
            bands: Input bands (Clay names such as ``blue``/``nir``, HLS names, or µm floats); empty: the
                backbone's default bands.
            num_classes: Classes (segmentation, classification).
            pretrained: Load the published backbone weights from the local Hugging Face cache.
            num_frames: Frames per sample.
            prepare_features_for_image_model: Applied to the backbone output instead of the backbone's
                own ``prepare_features_for_image_model``.
            aux_decoders: Auxiliary decoders.
            rescale: Interpolate pixel-wise outputs to the input size.
            checkpoint_path: Weights file for the backbone (its ``ckpt_path``).
            **kwargs: ``backbone_*`` (``backbone_padding`` picks the padding mode), ``decoder_*`` and
                ``head_*`` arguments.
        """
        return build_clay_model(
            type(self).__name__,
            task=task,
            backbone=backbone,
            decoder=decoder,
            bands=bands,
            num_classes=num_classes,
            pretrained=pretrained,
            num_frames=num_frames,
            prepare_features_for_image_model=prepare_features_for_image_model,
            aux_decoders=aux_decoders,
            rescale=rescale,
            checkpoint_path=checkpoint_path,
            kwargs=kwargs,
            known=parameter_names(self.build_model),
        )
