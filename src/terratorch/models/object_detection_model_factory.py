"""Object detection: any backbone plus necks inside a torchvision detector.

``ObjectDetectionModelFactory().build_model("object_detection", backbone=..., framework=...)`` wraps
the backbone and its necks (usually ending in ``FeaturePyramidNetworkNeck``) as the ``backbone`` of a
torchvision Faster R-CNN, FCOS, RetinaNet or Mask R-CNN and returns an :class:`ObjectDetectionModel`.
Anchor sizes, heads and the RoI poolers are the reference release's, so its checkpoints
(``torchvision_model.*`` keys) load unchanged. Inputs are neither resized nor normalised (normalise in
the datamodule); ``framework_*`` arguments go to the torchvision constructor, ``backbone_*`` ones to
the backbone. No weights are ever downloaded. (This module imports torchvision's detection code;
``import terratorch`` does not import this module.)
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from terratorch.choices import close_matches, did_you_mean
from terratorch.models.backbone_adapter import channel_list_of
from terratorch.models.encoder_decoder_factory import (
    build_backbone,
    split_temporal_kwargs,
    wrap_encoder,
)
from terratorch.models.model import Model, ModelFactory, ModelOutput, checked_arguments, register_factory
from terratorch.models.necks import NeckSequential, build_neck_list
from terratorch.models.utils import extract_prefix_keys

__all__ = [
    "FRAMEWORKS",
    "SUPPORTED_TASKS",
    "BackboneWrapper",
    "ModelOutputObjectDetection",
    "ObjectDetectionModel",
    "ObjectDetectionModelFactory",
    "TerratorchGeneralizedRCNNTransform",
]

SUPPORTED_TASKS = ("object_detection",)
FRAMEWORKS = ("faster-rcnn", "fcos", "retinanet", "mask-rcnn")
#: Frameworks of the reference release that this package does not provide.
UNSUPPORTED_FRAMEWORKS = ("detr", "deformable-detr", "rf-detr")
#: Names the RoI poolers read (the first four pyramid levels), as the reference.
ROI_FEATURE_NAMES = ("feat0", "feat1", "feat2", "feat3")

# Anchor sizes per pyramid level (finest first) and aspect ratios, as in the reference release.
_RCNN_SIZES = ((32,), (64,), (128,), (256,), (512,))
_FCOS_SIZES = ((8,), (16,), (32,), (64,), (128,), (256,))
_RETINANET_SIZES = (
    (16, 20, 25),
    (32, 40, 50),
    (64, 80, 101),
    (128, 161, 203),
    (256, 322, 406),
    (512, 645, 812),
)
_THREE_RATIOS = (0.5, 1.0, 2.0)


@dataclass
class ModelOutputObjectDetection(ModelOutput):
    """What :class:`ObjectDetectionModel` returns.

    Attributes:
        output: torchvision's output: a loss dict in train mode, else one
            ``{"boxes", "labels", "scores"[, "masks"]}`` dict per image.
    """

    output: Any


def _as_feature_dict(features: Any) -> OrderedDict[str, Tensor]:
    """Name the pyramid levels ``feat0, feat1, ...`` (what the anchor generator and RoI poolers read)."""
    if isinstance(features, Mapping):
        return OrderedDict(features)
    if isinstance(features, Tensor):
        features = [features]
    if not isinstance(features, (list, tuple)):
        raise TypeError(
            "The detection backbone (backbone + necks) must return a list of feature maps or a dict of "
            f"them, got {type(features).__name__}."
        )
    return OrderedDict((f"feat{index}", feature) for index, feature in enumerate(features))


class BackboneWrapper(nn.Module):
    """The backbone followed by its necks, shaped as torchvision detectors expect.

    Args:
        backbone: The feature extractor.
        necks: The necks applied to its features (usually ending in ``FeaturePyramidNetworkNeck``).
        channel_list: Channels of each level after the necks.

    Attributes:
        out_channels: Channels of the last level (torchvision heads take one ``in_channels``).
    """

    def __init__(self, backbone: nn.Module, necks: nn.Module, channel_list: Sequence[int]) -> None:
        super().__init__()
        self.backbone = backbone
        self.necks = necks
        self.channel_list = list(channel_list)
        self.out_channels = self.channel_list[-1]

    def forward(self, x: Tensor, **kwargs: Any) -> OrderedDict[str, Tensor]:
        """Return the pyramid levels as ``{"feat0": ..., ...}`` (lists from the necks are named so).

        The necks get ``image_size`` (the batch's ``(H, W)``), so token maps of non-square images
        can be laid out (ours; the reference handles square inputs only).
        """
        features = self.backbone(x, **kwargs)
        features = self.necks(features, image_size=tuple(x.shape[-2:]))
        return _as_feature_dict(features)


class TerratorchGeneralizedRCNNTransform(GeneralizedRCNNTransform):
    """torchvision's detection transform without resizing or normalisation: images are only batched.

    Images of one size are stacked unchanged (as the reference); images of different sizes are
    zero-padded at the bottom/right to the largest (ours: the reference fails on them). Boxes are
    therefore in input pixels, and ``postprocess`` leaves them so.
    """

    def forward(  # type: ignore[override]
        self, images: Sequence[Tensor] | Tensor, targets: list[dict[str, Tensor]] | None = None
    ) -> tuple[ImageList, list[dict[str, Tensor]] | None]:
        """Batch ``images`` into an ``ImageList`` (recording each size); copy the target dicts."""
        images = list(images)
        if not images:
            raise ValueError("The detection model received an empty batch of images.")
        for index, image in enumerate(images):
            if image.dim() != 3:
                raise ValueError(
                    f"Detection images must be (C, H, W) each (or a (B, C, H, W) batch); image {index} "
                    f"has shape {tuple(image.shape)}."
                )
        if targets is not None:
            targets = [dict(target) for target in targets]
        sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        if len(set(sizes)) == 1:
            batch = torch.stack(images)
        else:
            height = max(size[0] for size in sizes)
            width = max(size[1] for size in sizes)
            batch = images[0].new_zeros((len(images), images[0].shape[0], height, width))
            for slot, image in zip(batch, images, strict=True):
                slot[:, : image.shape[-2], : image.shape[-1]].copy_(image)
        return ImageList(batch, sizes), targets


class ObjectDetectionModel(Model):
    """A torchvision detector whose ``forward`` returns :class:`ModelOutputObjectDetection`.

    Args:
        torchvision_model: The detector (its ``backbone`` is a :class:`BackboneWrapper`).
        model_name: The framework it was built as (decides what :meth:`freeze_decoder` freezes).
    """

    def __init__(self, torchvision_model: nn.Module, model_name: str) -> None:
        super().__init__()
        self.torchvision_model = torchvision_model
        self.model_name = model_name

    def forward(self, x: Tensor | list[Tensor], *args: Any, **kwargs: Any) -> ModelOutputObjectDetection:
        """Run the detector on a ``(B, C, H, W)`` batch or a list of ``(C, H, W)`` images.

        In train mode pass the targets (one ``{"boxes", "labels"[, "masks"]}`` dict per image) and get
        the loss dict; in eval mode get the detections.
        """
        return ModelOutputObjectDetection(self.torchvision_model(x, *args, **kwargs))

    def _decoder_parts(self) -> list[nn.Module]:
        detector = self.torchvision_model
        if self.model_name in ("faster-rcnn", "mask-rcnn"):
            return [detector.rpn, detector.roi_heads]
        if self.model_name in ("fcos", "retinanet"):
            return [detector.head]
        raise ValueError(
            f"ObjectDetectionModel: unknown framework {self.model_name!r}; valid: {list(FRAMEWORKS)}."
        )

    def freeze_encoder(self) -> None:
        """Freeze the backbone and its necks (the FPN included), as the reference."""
        for param in self.torchvision_model.backbone.parameters():
            param.requires_grad = False

    def freeze_decoder(self) -> None:
        """Freeze the detection heads: RPN and RoI heads (R-CNNs, masks included), else the head.

        The reference raises for ``mask-rcnn``; ours freezes its RPN and RoI (box and mask) heads.
        """
        for part in self._decoder_parts():
            for param in part.parameters():
                param.requires_grad = False


def _input_channels(in_channels: int | None, backbone_kwargs: Mapping[str, Any]) -> int:
    """The number of input bands (only sizes torchvision's unused ``image_mean``/``image_std``)."""
    if in_channels is not None:
        return int(in_channels)
    for key in ("model_bands", "bands"):
        if backbone_kwargs.get(key) is not None:
            return len(backbone_kwargs[key])
    for key in ("in_chans", "in_channels"):
        if isinstance(backbone_kwargs.get(key), int):
            return int(backbone_kwargs[key])
    return 3


def _check_framework(framework: str) -> str:
    if framework in FRAMEWORKS:
        return framework
    if framework in UNSUPPORTED_FRAMEWORKS:
        raise ValueError(
            f"framework {framework!r} (DETR family) is not provided by this package; valid: "
            f"{list(FRAMEWORKS)}."
        )
    raise ValueError(
        f"Unknown object detection framework {framework!r}; valid: {list(FRAMEWORKS)}."
        + did_you_mean(str(framework), FRAMEWORKS, n=1)
    )


def _check_levels(framework: str, channel_list: list[int], available: int) -> None:
    if len(set(channel_list)) > 1:
        raise ValueError(
            f"{framework}: torchvision detection heads share their weights across pyramid levels, so every "
            f"level needs the same channels, but the backbone (after necks) gives {channel_list}. End the "
            "necks with {'name': 'FeaturePyramidNetworkNeck'}."
        )
    if len(channel_list) > available:
        raise ValueError(
            f"{framework} has anchor sizes for at most {available} feature levels, but the backbone (after "
            f"necks) gives {len(channel_list)}; select fewer levels first, e.g. with "
            "{'name': 'SelectIndices', 'indices': [...]}."
        )


def _framework_parameters(detector: type) -> set[str]:
    """Keyword arguments the torchvision ``detector`` takes (its own and its transform's)."""
    own = {
        name
        for name, param in inspect.signature(detector.__init__).parameters.items()
        if name not in ("self", "backbone", "num_classes") and param.kind is not param.VAR_KEYWORD
    }
    transform = inspect.signature(GeneralizedRCNNTransform.__init__).parameters
    extra = {name for name, p in transform.items() if name != "self" and p.kind is not p.VAR_KEYWORD}
    return own | extra | {"_skip_resize"}


def _check_framework_kwargs(framework: str, detector: type, framework_kwargs: Mapping[str, Any]) -> None:
    valid = _framework_parameters(detector)
    unknown = [key for key in framework_kwargs if key not in valid]
    if unknown:
        notes = []
        for key in unknown:
            guess = close_matches(key, valid, n=1)
            notes.append(f"'framework_{key}'" + (f" (did you mean 'framework_{guess[0]}'?)" if guess else ""))
        raise ValueError(
            f"Unknown {framework} argument(s) {', '.join(notes)}: framework_* keys go to torchvision's "
            f"{detector.__name__}, which takes {sorted(valid)}."
        )


def _build_detector(
    framework: str,
    wrapper: BackboneWrapper,
    num_classes: int,
    in_channels: int,
    framework_kwargs: Mapping[str, Any],
) -> nn.Module:
    """The torchvision detector for ``framework`` with the reference's anchors and heads."""
    import torchvision.models.detection as detection
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    levels = len(wrapper.channel_list)
    channels = wrapper.out_channels
    common: dict[str, Any] = {
        "_skip_resize": True,
        "image_mean": [0.0] * in_channels,
        "image_std": [1.0] * in_channels,
    }

    def roi_pool() -> nn.Module:
        return MultiScaleRoIAlign(featmap_names=list(ROI_FEATURE_NAMES), output_size=7, sampling_ratio=2)

    if framework in ("faster-rcnn", "mask-rcnn"):
        _check_levels(framework, wrapper.channel_list, len(_RCNN_SIZES))
        anchors = AnchorGenerator(sizes=_RCNN_SIZES[:levels], aspect_ratios=(_THREE_RATIOS,) * levels)
        defaults: dict[str, Any] = {"rpn_anchor_generator": anchors, "box_roi_pool": roi_pool()}
        if framework == "faster-rcnn":
            detector: type = detection.FasterRCNN
        else:
            from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, RPNHead
            from torchvision.models.detection.mask_rcnn import MaskRCNNHeads

            detector = detection.MaskRCNN
            hidden = [256, 256, 256, 256]
            defaults.update(
                rpn_head=RPNHead(channels, anchors.num_anchors_per_location()[0], conv_depth=2),
                box_head=FastRCNNConvFCHead((channels, 7, 7), hidden, [1024], norm_layer=nn.BatchNorm2d),
                mask_roi_pool=roi_pool(),
                mask_head=MaskRCNNHeads(channels, hidden, 1, norm_layer=nn.BatchNorm2d),
            )
    elif framework == "fcos":
        _check_levels(framework, wrapper.channel_list, len(_FCOS_SIZES))
        detector = detection.FCOS
        anchors = AnchorGenerator(sizes=_FCOS_SIZES[:levels], aspect_ratios=((1.0,),) * levels)
        defaults = {"anchor_generator": anchors}
    else:
        from torchvision.models.detection.retinanet import RetinaNetHead

        _check_levels(framework, wrapper.channel_list, len(_RETINANET_SIZES))
        detector = detection.RetinaNet
        anchors = AnchorGenerator(_RETINANET_SIZES[:levels], (_THREE_RATIOS,) * levels)
        head = RetinaNetHead(
            channels,
            anchors.num_anchors_per_location()[0],
            num_classes,
            norm_layer=partial(nn.GroupNorm, 32),
        )
        defaults = {"anchor_generator": anchors, "head": head}
    _check_framework_kwargs(framework, detector, framework_kwargs)
    # framework_* arguments override the defaults (ours; the reference fails on duplicates)
    model = detector(wrapper, num_classes, **{**common, **defaults, **framework_kwargs})
    transform = model.transform
    model.transform = TerratorchGeneralizedRCNNTransform(
        transform.min_size,
        transform.max_size,
        transform.image_mean,
        transform.image_std,
        transform.size_divisible,
        transform.fixed_size,
        _skip_resize=transform._skip_resize,
    )
    return model


@register_factory
class ObjectDetectionModelFactory(ModelFactory):
    """Assemble ``backbone -> necks -> torchvision detector`` for the ``object_detection`` task."""

    @checked_arguments("backbone_", "framework_")
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        framework: str,
        num_classes: int | None = None,
        necks: list[dict[str, Any]] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the detector.

        Args:
            task: ``object_detection``.
            backbone: ``BACKBONE_REGISTRY`` name (``timm_resnet50``, ``prithvi_eo_v2_300``, ...) or an
                ``nn.Module`` exposing ``out_channels`` (or a timm ``feature_info``) and returning a list
                of feature maps.
            framework: ``faster-rcnn``, ``fcos``, ``retinanet`` or ``mask-rcnn`` (instance masks).
            num_classes: Number of classes, background included (torchvision's convention).
            necks: Neck configs applied to the backbone features, e.g. ``SelectIndices``,
                ``ReshapeTokensToImage``, ``LearnedInterpolateToPyramidal``, then
                ``FeaturePyramidNetworkNeck`` so that every level has the same channels.
            **kwargs: ``backbone_*`` (to the backbone; ``backbone_use_temporal`` and the
                ``backbone_temporal_*`` keys wrap it in a ``TemporalWrapper``), ``framework_*`` (to
                the torchvision constructor, e.g. ``framework_box_score_thresh``) and ``in_channels``
                (the input bands; only sizes torchvision's unused mean/std).

        Returns:
            An :class:`ObjectDetectionModel`.

        Raises:
            NotImplementedError: Unknown task.
            ValueError: Unknown (or DETR) framework or ``framework_*`` key, other unused kwargs, missing
                ``num_classes``, or feature levels of different channels.
        """
        task = str(task).lower()
        if task not in SUPPORTED_TASKS:
            raise NotImplementedError(
                f"Task {task!r} is not supported by ObjectDetectionModelFactory; valid: "
                f"{list(SUPPORTED_TASKS)}."
            )
        framework = _check_framework(str(framework).lower())
        backbone_kwargs, rest = extract_prefix_keys(kwargs, "backbone_")
        framework_kwargs, rest = extract_prefix_keys(rest, "framework_")
        in_channels = rest.pop("in_channels", None)
        if rest:
            notes = []
            for key in rest:
                guess = close_matches(key, ["in_channels", "num_classes", "necks"], n=1)
                notes.append(f"{key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
            raise ValueError(
                f"Unused argument(s) {', '.join(notes)} for ObjectDetectionModelFactory: extra keyword "
                "arguments must start with 'backbone_' or 'framework_' (or be 'in_channels')."
            )
        if num_classes is None:
            raise ValueError(
                f"ObjectDetectionModelFactory ({framework}) needs num_classes (classes including background)."
            )
        temporal, backbone_args = split_temporal_kwargs(backbone_kwargs)
        encoder = wrap_encoder(build_backbone(backbone, backbone_args), temporal, None)
        neck_list, channel_list = build_neck_list(list(necks or []), channel_list_of(encoder))
        wrapper = BackboneWrapper(encoder, NeckSequential(*neck_list), channel_list)
        channels = _input_channels(in_channels, backbone_args)
        detector = _build_detector(framework, wrapper, int(num_classes), channels, framework_kwargs)
        return ObjectDetectionModel(detector, framework)
