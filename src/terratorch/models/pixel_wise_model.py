"""Encoder → necks → decoder → head models with one prediction per pixel (segmentation, regression)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from terratorch.models.backbone_adapter import accepted_kwargs, check_feature_channels
from terratorch.models.model import AuxiliaryHeadWithDecoderWithoutInstantiatedHead, Model, ModelOutput
from terratorch.models.utils import center_crop, get_image_size, pad_images

__all__ = ["EncoderDecoderModel", "PixelWiseModel", "build_head", "freeze_module"]

PIXEL_TASKS = ("segmentation", "regression")


def freeze_module(module: nn.Module) -> None:
    """Stop gradients through every parameter of ``module``."""
    for param in module.parameters():
        param.requires_grad_(False)


def build_head(task: str, in_channels: int, head_kwargs: dict[str, Any]) -> nn.Module:
    """Build the task head on top of a decoder with ``in_channels`` output channels.

    ``head_kwargs`` holds the head's own arguments plus ``num_classes`` (segmentation,
    classification) or ``num_outputs`` (regression, scalar regression).
    """
    from terratorch.models import heads

    kwargs = dict(head_kwargs)
    if task == "segmentation":
        if "num_classes" not in kwargs:
            raise ValueError("task='segmentation' needs num_classes for its head (set num_classes).")
        return heads.SegmentationHead(in_channels, **kwargs)
    if task == "regression":
        if kwargs.get("num_classes") is not None and "num_outputs" not in kwargs:
            kwargs["num_outputs"] = kwargs.pop("num_classes")  # ours: tolerated spelling
        kwargs.pop("num_classes", None)
        return heads.RegressionHead(in_channels, **kwargs)
    if task in ("classification", "scalar_regression"):
        if task == "classification" and "num_classes" not in kwargs and "num_outputs" not in kwargs:
            raise ValueError("task='classification' needs num_classes for its head (set num_classes).")
        if task == "scalar_regression" and "num_classes" not in kwargs:
            kwargs.setdefault("num_outputs", 1)
        return heads.ScalarHead(in_channels, **kwargs)
    raise ValueError(
        f"No head for task {task!r}; valid tasks: segmentation, regression, classification, "
        "scalar_regression."
    )


class EncoderDecoderModel(Model):
    """Shared plumbing of :class:`PixelWiseModel` and :class:`ScalarOutputModel`.

    Holds ``encoder``, ``neck`` (a :class:`~terratorch.models.necks.NeckSequential` or None),
    ``decoder``, ``head`` and ``aux_heads`` (``{name: Sequential(decoder, head)}``), as the reference
    release names them, so its checkpoints load unchanged.
    """

    def __init__(
        self,
        task: str,
        encoder: nn.Module,
        decoder: nn.Module,
        head_kwargs: dict[str, Any],
        patch_size: int | Sequence[int] | None = None,
        padding: str | None = None,
        decoder_includes_head: bool = False,
        auxiliary_heads: Sequence[AuxiliaryHeadWithDecoderWithoutInstantiatedHead] | None = None,
        neck: nn.Module | Sequence[nn.Module] | None = None,
        prepare_features_for_image_model: Callable[[Any], list[Tensor]] | None = None,
        channel_list: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.task = task
        self.encoder = encoder
        self.decoder = decoder
        decoder_channels = getattr(decoder, "out_channels", None)
        self.head = (
            nn.Identity() if decoder_includes_head else build_head(task, int(decoder_channels), head_kwargs)
        )
        aux_heads: dict[str, nn.Module] = {}
        for aux in auxiliary_heads or []:
            if aux.decoder_includes_head:
                aux_head: nn.Module = nn.Identity()
            else:
                aux_head = build_head(task, int(aux.decoder.out_channels), aux.head_args or {})
            aux_heads[aux.name] = nn.Sequential(aux.decoder, aux_head)
        self.aux_heads = nn.ModuleDict(aux_heads)
        if neck is not None and not isinstance(neck, nn.Module):
            from terratorch.models.necks import NeckSequential

            neck = NeckSequential(*neck) if len(neck) else None
        self.neck = neck
        self.patch_size = patch_size
        self.padding = padding
        self.prepare_features = prepare_features_for_image_model
        self.channel_list = list(channel_list) if channel_list is not None else None
        self._encoder_kwargs = accepted_kwargs(encoder)
        self._checked = False

    def features(self, x: Any, **kwargs: Any) -> list[Tensor]:
        """Encoder features after ``prepare_features_for_image_model`` (or the necks)."""
        image_size = get_image_size(x)
        if self._encoder_kwargs is not None:
            kwargs = {k: v for k, v in kwargs.items() if k in self._encoder_kwargs}
        features = self.encoder(x, **kwargs)
        if isinstance(features, Tensor):
            features = [features]
        if self.prepare_features is not None:
            features = self.prepare_features(features)
        if self.neck is not None:
            features = self.neck(list(features), image_size=image_size)
        elif self.prepare_features is None and hasattr(self.encoder, "prepare_features_for_image_model"):
            features = self.encoder.prepare_features_for_image_model(features)
        features = list(features) if isinstance(features, (list, tuple)) else features
        if not self._checked and self.channel_list is not None and isinstance(features, list):
            check_feature_channels(features, self.channel_list, type(self).__name__)
            self._checked = True
        return features

    def pad(self, x: Any) -> Any:
        """Pad ``x`` for the backbone when ``patch_size`` and ``padding`` are set."""
        if self.patch_size and self.padding is not None:
            multiple = math.lcm(2, int(getattr(self.neck, "input_multiple", 1)))
            return pad_images(x, self.patch_size, self.padding, multiple)
        return x

    def freeze_encoder(self) -> None:
        """Stop gradients through the backbone (its own ``freeze`` when it has one)."""
        if hasattr(self.encoder, "freeze"):
            self.encoder.freeze()
        else:
            freeze_module(self.encoder)

    def freeze_decoder(self) -> None:
        """Stop gradients through the decoder."""
        freeze_module(self.decoder)

    def freeze_head(self) -> None:
        """Stop gradients through the main head."""
        freeze_module(self.head)

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:  # pragma: no cover - subclasses
        """Run the model; implemented by subclasses."""
        raise NotImplementedError


def _clones(features: Any, reused: bool) -> Any:
    """Copies of ``features`` when another decoder still reads them (decoders may work in place)."""
    if not reused or not isinstance(features, list):
        return features
    return [f.clone() for f in features]


class PixelWiseModel(EncoderDecoderModel):
    """Segmentation / pixel-wise regression model.

    ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` (or ``(B, C, T, H, W)``, or a dict of
    modalities) returns :class:`ModelOutput` whose ``output`` is ``(B, num_classes, H, W)`` logits
    (segmentation) or ``(B, H, W)`` values (single-output regression: a single channel is squeezed).
    When ``patch_size`` and ``padding`` are set, H and W are padded evenly on both sides to multiples
    of twice the patch size (more when a neck declares a larger ``input_multiple``); with ``rescale``
    the head output is resized (bilinear) to the padded size; finally the centre ``image_size_out``
    (default: the ``image_size`` keyword, else the input size) is cropped. Auxiliary heads are
    treated the same and returned by name.

    Args:
        task: ``segmentation`` or ``regression``.
        encoder: Backbone returning a list of features.
        decoder: Module mapping the feature list to one ``(B, out_channels, h, w)`` map.
        head_kwargs: Head arguments (``num_classes`` for segmentation, ``dropout``, ...).
        patch_size: Backbone patch size used for padding (None: no padding).
        padding: ``F.pad`` mode (``reflect``, ``replicate``, ``constant``); None: no padding.
        decoder_includes_head: The decoder already ends in the class projection; no head is added.
        auxiliary_heads: Extra decoders whose heads are built here.
        neck: Module (or list of necks) applied to the features before the decoder; without one the
            encoder's ``prepare_features_for_image_model`` is applied when it has it.
        rescale: Interpolate the output to the (padded) input size.
        image_size_out: Fixed ``(H, W)`` of the output.
        prepare_features_for_image_model: Ours: callable applied to the encoder output before the necks.
        channel_list: Ours: channels the decoder was built for; checked against the features once.
    """

    def __init__(
        self,
        task: str,
        encoder: nn.Module,
        decoder: nn.Module,
        head_kwargs: dict[str, Any],
        patch_size: int | Sequence[int] | None = None,
        padding: str | None = None,
        decoder_includes_head: bool = False,
        auxiliary_heads: Sequence[AuxiliaryHeadWithDecoderWithoutInstantiatedHead] | None = None,
        neck: nn.Module | None = None,
        rescale: bool = True,
        image_size_out: tuple[int, int] | None = None,
        prepare_features_for_image_model: Callable[[Any], list[Tensor]] | None = None,
        channel_list: list[int] | None = None,
    ) -> None:
        if task not in PIXEL_TASKS:
            raise ValueError(f"PixelWiseModel task must be one of {list(PIXEL_TASKS)}, got {task!r}.")
        super().__init__(
            task,
            encoder,
            decoder,
            head_kwargs,
            patch_size=patch_size,
            padding=padding,
            decoder_includes_head=decoder_includes_head,
            auxiliary_heads=auxiliary_heads,
            neck=neck,
            prepare_features_for_image_model=prepare_features_for_image_model,
            channel_list=channel_list,
        )
        self.rescale = rescale
        self.image_size_out = image_size_out

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        """Predict per pixel; see the class docstring for shapes."""
        out_size = self.image_size_out or kwargs.pop("image_size", None) or get_image_size(x)
        x = self.pad(x)
        input_size = tuple(get_image_size(x))
        features = self.features(x, **kwargs)
        decoded = self.decoder(_clones(features, bool(self.aux_heads)))
        output = self._finish(self.head(decoded), input_size, out_size)
        aux = {
            name: self._finish(module(_clones(features, True)), input_size, out_size)
            for name, module in self.aux_heads.items()
        }
        return ModelOutput(output=output, auxiliary_heads=aux)

    def _finish(self, out: Tensor, input_size: tuple[int, int], out_size: Any) -> Tensor:
        if self.rescale and tuple(out.shape[-2:]) != input_size:
            out = F.interpolate(out, size=input_size, mode="bilinear")
        if out.shape[1] == 1:
            out = out.squeeze(1)
        return center_crop(out, out_size)
