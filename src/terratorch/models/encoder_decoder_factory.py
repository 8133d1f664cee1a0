"""The general factory: any registered backbone + necks + any registered decoder + a task head.

Reading guide (config key → code): ``backbone``/``backbone_*`` → :func:`build_backbone`;
``necks`` → ``build_neck_list``; ``decoder``/``decoder_*`` → :func:`build_decoder`; ``head_*`` and
``num_classes`` → the head inside the model; ``aux_decoders`` → :func:`build_aux_decoders`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from terratorch.models.backbone_adapter import (
    channel_list_of,
    instantiate_spec,
    patch_size_of,
    resolve_timm_pretrained,
)
from terratorch.models.model import (
    AuxiliaryHead,
    AuxiliaryHeadWithDecoderWithoutInstantiatedHead,
    Model,
    ModelFactory,
    register_factory,
)
from terratorch.models.utils import extract_prefix_keys

__all__ = [
    "PREFIXES",
    "TASKS",
    "EncoderDecoderFactory",
    "RoutedKwargs",
    "build_aux_decoders",
    "build_backbone",
    "build_decoder",
    "check_task",
    "route_kwargs",
]

TASKS = ("segmentation", "regression", "classification")
#: Ours, beyond the documented three: a ScalarOutputModel with one output, ``(B,)`` predictions.
EXTRA_TASKS = ("scalar_regression",)
PREFIXES = ("backbone_", "decoder_", "head_")
_TEMPORAL_KEYS = ("use_temporal", "temporal_pooling", "temporal_n_timestamps")


def check_task(task: str) -> str:
    """Return ``task`` if it is supported, else raise ``ValueError`` listing the valid tasks."""
    if task not in TASKS + EXTRA_TASKS:
        from terratorch.registry.registry import close_matches

        hint = close_matches(str(task), TASKS + EXTRA_TASKS)
        suggestion = f" Did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"Unknown task {task!r}; valid tasks: {list(TASKS + EXTRA_TASKS)}.{suggestion}")
    return task


@dataclass
class RoutedKwargs:
    """Keyword arguments split by destination."""

    backbone: dict[str, Any]
    decoder: dict[str, Any]
    head: dict[str, Any]


def route_kwargs(
    kwargs: Mapping[str, Any],
    backbone_kwargs: Mapping[str, Any] | None = None,
    decoder_kwargs: Mapping[str, Any] | None = None,
    head_kwargs: Mapping[str, Any] | None = None,
) -> RoutedKwargs:
    """Merge explicit ``*_kwargs`` dicts with prefixed ``**kwargs`` (``backbone_img_size=...``).

    Raises:
        ValueError: A kwarg has none of the prefixes (the message names it, the valid prefixes and
            the closest spelling), or the same key is given both ways.
    """
    rest = dict(kwargs)
    explicit = {"backbone_": backbone_kwargs, "decoder_": decoder_kwargs, "head_": head_kwargs}
    routed: dict[str, dict[str, Any]] = {}
    for prefix in PREFIXES:
        extracted, rest = extract_prefix_keys(rest, prefix)
        base = dict(explicit[prefix] or {})
        clash = sorted(set(base) & set(extracted))
        if clash:
            raise ValueError(
                f"{[prefix + k for k in clash]} given both in {prefix}kwargs and as {prefix}* keyword "
                "arguments; give each only once."
            )
        routed[prefix] = {**base, **extracted}
    if rest:
        raise ValueError(_unused_message(rest))
    return RoutedKwargs(routed["backbone_"], routed["decoder_"], routed["head_"])


def _unused_message(rest: Mapping[str, Any]) -> str:
    from terratorch.registry.registry import close_matches

    notes = []
    for key in rest:
        first, sep, tail = key.partition("_")
        guess = close_matches(first + "_", PREFIXES, n=1) if sep else []
        notes.append(f"{key!r} (did you mean {guess[0] + tail!r}?)" if guess else repr(key))
    return (
        f"Unused argument(s) {', '.join(notes)}: extra keyword arguments must start with one of "
        f"{list(PREFIXES)} to reach the backbone, decoder or head."
    )


def build_backbone(
    backbone: str | nn.Module | Mapping[str, Any], backbone_kwargs: Mapping[str, Any]
) -> nn.Module:
    """A backbone from a ``BACKBONE_REGISTRY`` name (built with the kwargs), a spec or an instance.

    For timm names, ``pretrained=True`` never downloads: the weights come from
    ``pretrained_cfg_overlay["file"]`` or the local Hugging Face / torch hub cache, else
    :class:`~terratorch.models.backbone_adapter.PretrainedWeightsNotFoundError` is raised.
    """
    backbone = instantiate_spec(backbone, "backbone")
    if isinstance(backbone, nn.Module):
        if backbone_kwargs:
            raise ValueError(
                f"backbone is an already built {type(backbone).__name__}, so backbone arguments "
                f"{sorted(backbone_kwargs)} cannot be applied; pass the backbone by name, or drop them."
            )
        return backbone
    if not isinstance(backbone, str):
        raise TypeError(f"backbone must be a registry name or an nn.Module, got {type(backbone).__name__}.")
    from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

    kwargs = dict(backbone_kwargs)
    if (
        kwargs.get("pretrained")
        and BACKBONE_REGISTRY.find_registry(backbone) is not TERRATORCH_BACKBONE_REGISTRY
    ):
        # timm would download missing weights; we load them from local files or fail clearly
        timm_name = backbone.partition("_")[2] if backbone.startswith("timm_") else backbone
        kwargs["pretrained_cfg_overlay"] = resolve_timm_pretrained(
            timm_name, kwargs.get("pretrained_cfg_overlay")
        )
    return BACKBONE_REGISTRY.build(backbone, **kwargs)


def build_decoder(
    decoder: str | nn.Module | Mapping[str, Any],
    channel_list: list[int],
    decoder_kwargs: Mapping[str, Any],
    num_classes: int | None = None,
) -> nn.Module:
    """A decoder from a ``DECODER_REGISTRY`` name, built over ``channel_list``, or an instance.

    Decoders that declare ``includes_head = True`` on their class and take ``num_classes`` get
    ``num_classes`` unless ``decoder_kwargs`` sets it.
    """
    decoder = instantiate_spec(decoder, "decoder")
    if isinstance(decoder, nn.Module):
        if decoder_kwargs:
            raise ValueError(
                f"decoder is an already built {type(decoder).__name__}, so decoder arguments "
                f"{sorted(decoder_kwargs)} cannot be applied; pass the decoder by name instead, or drop them."
            )
        _require_out_channels(decoder)
        _check_decoder_channels(decoder, channel_list)
        return decoder
    if not isinstance(decoder, str):
        raise TypeError(f"decoder must be a registry name or an nn.Module, got {type(decoder).__name__}.")
    from terratorch.registry import DECODER_REGISTRY

    kwargs = dict(decoder_kwargs)
    constructor = DECODER_REGISTRY.find_class(decoder)
    if num_classes is not None and "num_classes" not in kwargs and _includes_head(constructor):
        kwargs["num_classes"] = num_classes
    built = DECODER_REGISTRY.build(decoder, list(channel_list), **kwargs)
    _require_out_channels(built)
    return built


def _check_decoder_channels(decoder: nn.Module, channel_list: list[int]) -> None:
    """A decoder instance recording its input channels (``embed_dim``/``channel_list``) must match them."""
    expected = getattr(decoder, "embed_dim", None)
    if not isinstance(expected, (list, tuple)):
        expected = getattr(decoder, "channel_list", None)
    if isinstance(expected, (list, tuple)) and list(expected) != list(channel_list):
        raise ValueError(
            f"Decoder {type(decoder).__name__} was built for channel list {list(expected)}, but the backbone "
            f"(after necks) produces {list(channel_list)}. Build the decoder for that channel list, or pass "
            "its registry name so the factory builds it."
        )


def _includes_head(constructor: Callable[..., Any]) -> bool:
    if not getattr(constructor, "includes_head", False):
        return False
    try:
        return "num_classes" in inspect.signature(constructor).parameters
    except (TypeError, ValueError):
        return False


def _require_out_channels(decoder: nn.Module) -> None:
    if not isinstance(getattr(decoder, "out_channels", None), int):
        raise TypeError(
            f"Decoder {type(decoder).__name__} must expose `out_channels` (int: channels of its output) so "
            "a head can be built on it."
        )


def build_aux_decoders(
    aux_decoders: Sequence[AuxiliaryHead | Mapping[str, Any]] | None,
    channel_list: list[int],
    num_classes: int | None,
) -> list[AuxiliaryHeadWithDecoderWithoutInstantiatedHead]:
    """Build each auxiliary decoder; its ``head_*`` decoder_args configure *its own* head only.

    Upstream TerraTorch gave every auxiliary head the main head's arguments; here each auxiliary
    head gets only ``num_classes`` plus its own ``head_*`` entries.
    """
    built = []
    names: set[str] = set()
    for aux in aux_decoders or []:
        if isinstance(aux, Mapping):
            aux = AuxiliaryHead(**aux)
        if aux.name in names:
            raise ValueError(f"Two auxiliary decoders are named {aux.name!r}; names must be unique.")
        names.add(aux.name)
        head_kwargs, decoder_kwargs = extract_prefix_keys(dict(aux.decoder_args or {}), "head_")
        decoder = build_decoder(aux.decoder, channel_list, decoder_kwargs, num_classes)
        if num_classes is not None:
            head_kwargs.setdefault("num_classes", num_classes)
        built.append(AuxiliaryHeadWithDecoderWithoutInstantiatedHead(aux.name, decoder, head_kwargs))
    return built


@register_factory
class EncoderDecoderFactory(ModelFactory):
    """Assemble ``backbone → necks → decoder → head`` for segmentation, regression or classification."""

    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | nn.Module,
        backbone_kwargs: dict[str, Any] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        head_kwargs: dict[str, Any] | None = None,
        num_classes: int | None = None,
        necks: list[dict[str, Any]] | None = None,
        aux_decoders: list[AuxiliaryHead] | None = None,
        rescale: bool = True,
        peft_config: dict[str, Any] | None = None,
        padding: str = "reflect",
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the model.

        Args:
            task: ``segmentation`` (output ``(B, num_classes, H, W)``), ``regression`` (``(B, H, W)``),
                ``classification`` (``(B, num_classes)``) or ``scalar_regression`` (``(B,)``).
            backbone: ``BACKBONE_REGISTRY`` name (``resnet18``, ``timm_resnet18``, ...) or an ``nn.Module``.
            decoder: ``DECODER_REGISTRY`` name (``FCNDecoder``, ``smp_Unet``, ...) or an ``nn.Module``
                exposing ``out_channels``.
            backbone_kwargs: Arguments of the backbone builder (also as ``backbone_<name>=...``).
                ``use_temporal``, ``temporal_pooling``, ``temporal_n_timestamps`` wrap the backbone in
                :class:`~terratorch.models.utils.TemporalWrapper` instead.
            decoder_kwargs: Decoder arguments (also as ``decoder_<name>=...``).
            head_kwargs: Head arguments (also as ``head_<name>=...``).
            num_classes: Classes; required for segmentation and classification.
            necks: Neck configs ``[{"name": "SelectIndices", "indices": [...]}, ...]`` applied in order.
            aux_decoders: Auxiliary decoders (``AuxiliaryHead`` or equivalent dicts).
            rescale: Interpolate pixel-wise outputs to the input size.
            peft_config: LoRA config for the backbone (see :mod:`terratorch.models.peft`).
            padding: ``F.pad`` mode used to pad inputs to the backbone's patch size.
            prepare_features_for_image_model: Callable turning the backbone output into decoder input
                (overrides a method of that name on the backbone).
            **kwargs: ``backbone_*``, ``decoder_*`` and ``head_*`` arguments; anything else is an error.

        Raises:
            ValueError: Unknown task, missing ``num_classes``, unused or mistyped kwargs.
            InvalidModelError: Unknown backbone, neck or decoder name.
            TypeError: A backbone without ``out_channels``/``feature_info``.
        """
        task = check_task(task)
        routed = route_kwargs(kwargs, backbone_kwargs, decoder_kwargs, head_kwargs)
        if task in ("segmentation", "classification") and num_classes is None:
            raise ValueError(f"task={task!r} needs num_classes (the number of output classes).")
        temporal, backbone_args = split_temporal_kwargs(routed.backbone)
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
            padding=padding,
            prepare_features_for_image_model=prepare_features_for_image_model,
        )


def neck_downsampling(neck: nn.Module) -> int:
    """How many times coarser than its input the coarsest map a neck produces is (1 if not coarser).

    Read from a neck's ``input_multiple`` attribute when it declares one; known pyramid necks are
    derived from their arguments. Inputs are padded so that this extra downsampling is exact.
    """
    declared = getattr(neck, "input_multiple", None)
    if isinstance(declared, int) and declared > 0:
        return declared
    kind = type(neck).__name__
    count = len(getattr(neck, "channel_list", []) or [])
    if kind in ("LearnedInterpolateToPyramidal", "AddBottleneckLayer"):
        return 2
    if kind == "InterpolateToPyramidal" and count >= 2:
        return max(1, int(getattr(neck, "scale_factor", 1)))
    if kind == "MaxpoolToPyramidal" and count >= 2:
        return max(1, int(getattr(neck, "kernel_size", 1))) ** (count - 1)
    return 1


def _input_multiple(encoder: nn.Module, necks: Sequence[nn.Module]) -> tuple[int, int] | None:
    """The backbone's pad multiple times the extra downsampling of the necks."""
    multiple = patch_size_of(encoder)
    factor = 1
    for neck in necks:
        factor *= neck_downsampling(neck)
    if multiple is None:
        return None
    return (multiple[0] * factor, multiple[1] * factor)


def split_temporal_kwargs(backbone_kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    temporal = {k: v for k, v in backbone_kwargs.items() if k in _TEMPORAL_KEYS}
    rest = {k: v for k, v in backbone_kwargs.items() if k not in _TEMPORAL_KEYS}
    return temporal, rest


def wrap_encoder(
    encoder: nn.Module, temporal: Mapping[str, Any], peft_config: Mapping[str, Any] | None
) -> nn.Module:
    """Apply LoRA (``peft_config``) and the temporal wrapper (``backbone_use_temporal``...) to a backbone."""
    temporal = dict(temporal)
    if peft_config:
        from terratorch.models.peft import apply_peft

        encoder = apply_peft(encoder, peft_config)
    if temporal.pop("use_temporal", False):
        from terratorch.models.temporal_wrapper import TemporalWrapper

        return TemporalWrapper(
            encoder,
            pooling=temporal.get("temporal_pooling", "mean"),
            n_timestamps=temporal.get("temporal_n_timestamps"),
        )
    if temporal:
        raise ValueError(
            f"{['backbone_' + k for k in sorted(temporal)]} only apply with backbone_use_temporal=True; "
            "set it or drop them."
        )
    return encoder


def assemble_model(
    *,
    task: str,
    encoder: nn.Module,
    decoder: str | nn.Module,
    decoder_kwargs: Mapping[str, Any],
    head_kwargs: Mapping[str, Any],
    num_classes: int | None,
    necks: list[dict[str, Any]] | None,
    aux_decoders: Sequence[AuxiliaryHead | Mapping[str, Any]] | None,
    rescale: bool,
    padding: str = "reflect",
    prepare_features_for_image_model: Callable[[Any], Any] | None = None,
) -> Model:
    """Build necks, decoder(s) and head around an already built ``encoder`` (shared by the factories)."""
    channel_list = channel_list_of(encoder)
    neck_modules: list[nn.Module] = []
    if necks:
        from terratorch.models.necks import build_neck_list

        neck_modules, channel_list = build_neck_list(list(necks), channel_list)
    pad_multiple = _input_multiple(encoder, neck_modules)
    if task == "scalar_regression":
        num_classes = 1  # one output value per image
    main_decoder = build_decoder(decoder, channel_list, decoder_kwargs, num_classes)
    aux = build_aux_decoders(aux_decoders, channel_list, num_classes)
    head_args = dict(head_kwargs)
    if num_classes is not None and task != "regression":
        head_args.setdefault("num_classes", num_classes)
    model_kwargs: dict[str, Any] = {
        "encoder": encoder,
        "decoder": main_decoder,
        "head_kwargs": head_args,
        "patch_size": pad_multiple,
        "padding": padding,
        "decoder_includes_head": bool(getattr(main_decoder, "includes_head", False)),
        "auxiliary_heads": aux,
        "neck": neck_modules or None,
        "rescale": rescale,
        "prepare_features_for_image_model": prepare_features_for_image_model,
        "channel_list": channel_list,
    }
    if task in ("segmentation", "regression"):
        from terratorch.models.pixel_wise_model import PixelWiseModel

        return PixelWiseModel(task, **model_kwargs)
    from terratorch.models.scalar_output_model import ScalarOutputModel

    return ScalarOutputModel(task, **model_kwargs)
