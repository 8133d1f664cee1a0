"""The general factory: any registered backbone + necks + any registered decoder + a task head.

Reading guide (config key → code): ``backbone``/``backbone_*`` → :func:`build_backbone`;
``necks`` → ``build_neck_list``; ``decoder``/``decoder_*`` → :func:`build_decoder`; ``head_*`` and
``num_classes`` → the head inside the model; ``aux_decoders`` → :func:`build_aux_decoders`.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from terratorch.choices import close_matches, did_you_mean
from terratorch.models.backbone_adapter import (
    channel_list_of,
    instantiate_spec,
    resolve_timm_pretrained,
)
from terratorch.models.model import (
    AuxiliaryHead,
    AuxiliaryHeadWithDecoderWithoutInstantiatedHead,
    Model,
    ModelFactory,
    checked_arguments,
    register_factory,
)
from terratorch.models.necks import NeckSequential
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
_TEMPORAL_KEYS = (
    "use_temporal",
    "temporal_pooling",
    "temporal_concat",
    "temporal_n_timestamps",
    "temporal_features_permute_op",
    "temporal_subset_lengths",
)


def _reduction_patch(encoder: nn.Module) -> int | None:
    """Ours: for backbones without ``patch_size`` (CNNs), half their largest feature reduction.

    Inputs are padded to twice the patch size, i.e. to the coarsest stride, so pyramid decoders can
    fuse levels of inputs of any size (the reference release does not pad such backbones at all).
    """
    feature_info = getattr(encoder, "feature_info", None)
    reduction = getattr(feature_info, "reduction", None)
    if not callable(reduction):
        return None
    values = [int(r) for r in reduction() if isinstance(r, int) and r > 1]
    return max(values) // 2 if values else None


class UnsupportedTaskError(NotImplementedError, ValueError):
    """An unknown task name (a ``NotImplementedError`` like the reference's, and a ``ValueError``)."""


def check_task(task: str) -> str:
    """Return ``task`` if it is supported, else raise :class:`UnsupportedTaskError` listing the valid ones."""
    if task not in TASKS + EXTRA_TASKS:
        raise UnsupportedTaskError(
            f"Unknown task {task!r}; valid tasks: {list(TASKS + EXTRA_TASKS)}."
            + did_you_mean(str(task), TASKS + EXTRA_TASKS, n=1)
        )
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
    known: Sequence[str] = (),
) -> RoutedKwargs:
    """Merge explicit ``*_kwargs`` dicts with prefixed ``**kwargs`` (``backbone_img_size=...``).

    Args:
        kwargs: The keyword arguments left after the factory's named parameters.
        backbone_kwargs: Explicit backbone arguments.
        decoder_kwargs: Explicit decoder arguments.
        head_kwargs: Explicit head arguments.
        known: The factory's named parameters, offered as suggestions for unprefixed typos.

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
        raise ValueError(_unused_message(rest, known))
    return RoutedKwargs(routed["backbone_"], routed["decoder_"], routed["head_"])


def _unused_message(rest: Mapping[str, Any], known: Sequence[str] = ()) -> str:
    notes = []
    for key in rest:
        first, sep, tail = key.partition("_")
        guess = close_matches(first + "_", PREFIXES, n=1) if sep else []
        if not guess:
            guess = close_matches(key, known, n=1)
            tail = ""
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

    A decoder that includes its head (see :func:`decoder_includes_head`) and takes ``num_classes``
    gets ``num_classes`` unless ``decoder_kwargs`` sets it. ``LinearDecoder`` (whose class declares a
    head but which the reference release still tops with one) gets it too when it is missing.
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
    wants_classes = getattr(constructor, "includes_head", False) and _takes_num_classes(constructor)
    if num_classes is not None and "num_classes" not in kwargs and wants_classes:
        kwargs["num_classes"] = num_classes
    built = DECODER_REGISTRY.build(decoder, list(channel_list), **kwargs)
    _require_out_channels(built)
    return built


#: Decoders whose class declares ``includes_head`` but which the reference release (1.2.x) still tops
#: with a task head, because it reads the flag from the decoder's registry; kept so checkpoints load.
REFERENCE_HEADED_DECODERS = frozenset({"LinearDecoder"})


def decoder_includes_head(decoder: str | nn.Module) -> bool:
    """Whether the model adds no head on top of ``decoder``.

    A registry source with an ``includes_head`` attribute (e.g. mmseg-style sources) decides for its
    decoders; otherwise the decoder class's ``includes_head`` flag, except for
    :data:`REFERENCE_HEADED_DECODERS`.
    """
    if isinstance(decoder, nn.Module):
        return bool(getattr(decoder, "includes_head", False))
    if not isinstance(decoder, str):
        return False
    from terratorch.registry import DECODER_REGISTRY

    constructor = DECODER_REGISTRY.find_class(decoder)
    if not getattr(constructor, "includes_head", False):
        return False
    source = DECODER_REGISTRY.find_registry(decoder)
    if hasattr(source, "includes_head"):
        return bool(source.includes_head)
    name = getattr(constructor, "__name__", decoder)
    return name not in REFERENCE_HEADED_DECODERS and decoder not in REFERENCE_HEADED_DECODERS


def _check_decoder_channels(decoder: nn.Module, channel_list: list[int]) -> None:
    """A decoder instance recording its input channels (``embed_dim``/``channel_list``) must match them."""
    expected = getattr(decoder, "embed_dim", None)
    if isinstance(expected, int) and channel_list and expected != channel_list[-1]:
        raise ValueError(
            f"Decoder {type(decoder).__name__} was built for {expected} input channels, but the backbone "
            f"(after necks) produces {list(channel_list)} (last: {channel_list[-1]}). Build the "
            "decoder for that "
            "channel list, or pass its registry name so the factory builds it."
        )
    if not isinstance(expected, (list, tuple)):
        expected = getattr(decoder, "channel_list", None)
    if isinstance(expected, (list, tuple)) and list(expected) != list(channel_list):
        raise ValueError(
            f"Decoder {type(decoder).__name__} was built for channel list {list(expected)}, but the backbone "
            f"(after necks) produces {list(channel_list)}. Build the decoder for that channel list, or pass "
            "its registry name so the factory builds it."
        )


def _takes_num_classes(constructor: Callable[..., Any]) -> bool:
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


def _head_target(
    task: str, head_kwargs: dict[str, Any], num_classes: int | None, num_outputs: int | None
) -> dict[str, Any]:
    """Add ``num_classes`` / ``num_outputs`` to a head's kwargs as the reference routes them."""
    head_kwargs = dict(head_kwargs)
    if num_outputs is not None:
        head_kwargs.setdefault("num_outputs", num_outputs)
    elif num_classes is not None and task != "regression":
        head_kwargs.setdefault("num_classes", num_classes)
    return head_kwargs


def build_aux_decoders(
    aux_decoders: Sequence[AuxiliaryHead | Mapping[str, Any]] | None,
    channel_list: list[int],
    num_classes: int | None,
    main_head_kwargs: Mapping[str, Any] | None = None,
    task: str = "segmentation",
    num_outputs: int | None = None,
) -> list[AuxiliaryHeadWithDecoderWithoutInstantiatedHead]:
    """Build each auxiliary decoder from its ``decoder_args``.

    ``decoder_*`` keys (and, ours, unprefixed keys) go to its decoder; its head gets the main head's
    arguments updated with its own ``head_*`` keys. (The reference release builds every auxiliary
    head from the main head's arguments only and silently drops the auxiliary ``head_*`` keys; without
    such keys both give the same layout.)
    """
    built = []
    names: set[str] = set()
    for aux in aux_decoders or []:
        if isinstance(aux, Mapping):
            aux = AuxiliaryHead(**aux)
        if aux.name in names:
            raise ValueError(f"Two auxiliary decoders are named {aux.name!r}; names must be unique.")
        names.add(aux.name)
        args = dict(aux.decoder_args or {})
        prefixed, rest = extract_prefix_keys(args, "decoder_")
        own_head, rest = extract_prefix_keys(rest, "head_")
        clash = sorted(set(prefixed) & set(rest))
        if clash:
            raise ValueError(
                f"Auxiliary decoder {aux.name!r}: {clash} given both with and without the 'decoder_' prefix."
            )
        includes_head = decoder_includes_head(aux.decoder)
        if includes_head and own_head:
            raise ValueError(
                f"Auxiliary decoder {aux.name!r} ({aux.decoder}) already includes its head, but "
                "head arguments "
                f"{sorted('head_' + k for k in own_head)} were given; remove them."
            )
        decoder = build_decoder(aux.decoder, channel_list, {**rest, **prefixed}, num_classes)
        head_args = _head_target(task, {**dict(main_head_kwargs or {}), **own_head}, num_classes, num_outputs)
        built.append(
            AuxiliaryHeadWithDecoderWithoutInstantiatedHead(
                aux.name, decoder, {} if includes_head else head_args, includes_head
            )
        )
    return built


def find_patch_size(backbone: nn.Module) -> Any:
    """The first ``patch_size`` attribute among the backbone's modules (None when there is none)."""
    for module in backbone.modules():
        size = getattr(module, "patch_size", None)
        if size is not None and not callable(size):
            return size
    return None


@register_factory
class EncoderDecoderFactory(ModelFactory):
    """Assemble ``backbone → necks → decoder → head`` for segmentation, regression or classification."""

    @checked_arguments(*PREFIXES)
    def build_model(
        self,
        task: str,
        backbone: str | nn.Module,
        decoder: str | nn.Module | None = None,
        backbone_kwargs: dict[str, Any] | None = None,
        decoder_kwargs: dict[str, Any] | None = None,
        head_kwargs: dict[str, Any] | None = None,
        num_classes: int | None = None,
        num_outputs: int | None = None,
        necks: list[dict[str, Any]] | None = None,
        aux_decoders: list[AuxiliaryHead] | None = None,
        rescale: bool = True,
        image_size_out: tuple[int, int] | None = None,
        peft_config: dict[str, Any] | None = None,
        padding: str | None = None,
        prepare_features_for_image_model: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> Model:
        """Build the model.

        Args:
            task: ``segmentation`` (output ``(B, num_classes, H, W)``), ``regression`` (``(B, H, W)``),
                ``classification`` (``(B, num_classes)``) or ``scalar_regression`` (``(B, num_outputs)``).
            backbone: ``BACKBONE_REGISTRY`` name (``prithvi_eo_v2_300``, ``timm_resnet18``, ...) or an
                ``nn.Module`` exposing ``out_channels``.
            decoder: ``DECODER_REGISTRY`` name (``FCNDecoder``, ``smp_Unet``, ...) or an ``nn.Module``
                exposing ``out_channels``.
            backbone_kwargs: Backbone arguments (also as ``backbone_<name>=...``). ``patch_size`` and
                ``padding`` also set the input padding; ``use_temporal``, ``temporal_pooling``,
                ``temporal_concat``, ``temporal_n_timestamps``, ``temporal_features_permute_op`` and
                ``temporal_subset_lengths`` wrap the backbone in a
                :class:`~terratorch.models.utils.TemporalWrapper` instead.
            decoder_kwargs: Decoder arguments (also as ``decoder_<name>=...``).
            head_kwargs: Head arguments (also as ``head_<name>=...``).
            num_classes: Classes (segmentation, classification).
            num_outputs: Outputs per pixel (regression) or per image (scalar regression).
            necks: Neck configs ``[{"name": "SelectIndices", "indices": [...]}, ...]`` applied in order.
            aux_decoders: Auxiliary decoders (``AuxiliaryHead`` or equivalent dicts).
            rescale: Interpolate pixel-wise outputs to the input size.
            image_size_out: Fixed ``(H, W)`` of pixel-wise outputs.
            peft_config: LoRA config for the backbone (see :mod:`terratorch.models.peft`).
            padding: Ours: ``F.pad`` mode for inputs (default ``backbone_padding``, else ``reflect``).
            prepare_features_for_image_model: Ours: callable turning the backbone output into decoder
                input, applied before the necks.
            **kwargs: ``backbone_*``, ``decoder_*`` and ``head_*`` arguments; anything else is an error.

        Raises:
            UnsupportedTaskError: Unknown task (a ``NotImplementedError`` and a ``ValueError``).
            ValueError: Missing ``num_classes``, unused or mistyped kwargs, head args for a decoder that
                includes its head, both ``num_classes`` and ``num_outputs``.
            InvalidModelError: Unknown backbone, neck or decoder name.
        """
        task = check_task(str(task).lower())
        routed = route_kwargs(
            kwargs, backbone_kwargs, decoder_kwargs, head_kwargs, known=parameter_names(self.build_model)
        )
        if decoder is None:
            raise ValueError(f"A decoder must be given for task {task!r} (e.g. decoder='FCNDecoder').")
        if num_classes is not None and num_outputs is not None:
            raise ValueError("Give only one of num_classes and num_outputs.")
        if task in ("segmentation", "classification") and num_classes is None and num_outputs is None:
            raise ValueError(f"task={task!r} needs num_classes (the number of output classes).")
        temporal, backbone_args = split_temporal_kwargs(routed.backbone)
        encoder = build_backbone(backbone, backbone_args)
        patch_size = backbone_args.get("patch_size") or find_patch_size(encoder)
        padding = padding if padding is not None else backbone_args.get("padding", "reflect")
        if peft_config is not None and not backbone_args.get("pretrained", False):
            warnings.warn(
                "peft_config is set but the backbone is not pretrained (backbone_pretrained); fine when a "
                "checkpoint is loaded afterwards, otherwise only random LoRA adapters are trained.",
                stacklevel=3,  # past the @checked_arguments wrapper: points at the caller
            )
        encoder = wrap_encoder(encoder, temporal, peft_config)
        return assemble_model(
            task=task,
            encoder=encoder,
            decoder=decoder,
            decoder_kwargs=routed.decoder,
            head_kwargs=routed.head,
            num_classes=num_classes,
            num_outputs=num_outputs,
            necks=necks,
            aux_decoders=aux_decoders,
            rescale=rescale,
            padding=padding,
            patch_size=patch_size,
            image_size_out=image_size_out,
            prepare_features_for_image_model=prepare_features_for_image_model,
        )


def parameter_names(function: Callable[..., Any]) -> list[str]:
    """Names of the named parameters of ``function`` (for did-you-mean suggestions)."""
    params = inspect.signature(function).parameters.values()
    return [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def split_temporal_kwargs(backbone_kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    temporal = {k: v for k, v in backbone_kwargs.items() if k in _TEMPORAL_KEYS}
    rest = {k: v for k, v in backbone_kwargs.items() if k not in _TEMPORAL_KEYS}
    return temporal, rest


def wrap_encoder(
    encoder: nn.Module, temporal: Mapping[str, Any], peft_config: Mapping[str, Any] | None
) -> nn.Module:
    """Wrap a backbone in the temporal wrapper (``backbone_use_temporal``...), then in LoRA (``peft_config``).

    The order is the reference's: LoRA wraps the temporal wrapper, so state-dict keys read
    ``encoder.base_model.model.encoder.*`` and reference checkpoints load strictly.
    """
    temporal = dict(temporal)
    if temporal.pop("use_temporal", False):
        from terratorch.models.temporal_wrapper import TemporalWrapper

        encoder = TemporalWrapper(
            encoder,
            pooling=temporal.get("temporal_pooling", "mean"),
            concat=temporal.get("temporal_concat"),
            n_timestamps=temporal.get("temporal_n_timestamps"),
            features_permute_op=temporal.get("temporal_features_permute_op"),
            subset_lengths=temporal.get("temporal_subset_lengths"),
        )
    elif temporal:
        raise ValueError(
            f"{['backbone_' + k for k in sorted(temporal)]} only apply with backbone_use_temporal=True; "
            "set it or drop them."
        )
    if peft_config:
        from terratorch.models.peft import apply_peft

        encoder = apply_peft(encoder, peft_config)
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
    padding: str | None = "reflect",
    prepare_features_for_image_model: Callable[[Any], Any] | None = None,
    num_outputs: int | None = None,
    patch_size: Any = None,
    image_size_out: tuple[int, int] | None = None,
) -> Model:
    """Build necks, decoder(s) and head around an already built ``encoder`` (shared by the factories)."""
    channel_list = channel_list_of(encoder)
    neck_modules: list[nn.Module] = []
    if necks:
        from terratorch.models.necks import build_neck_list

        neck_modules, channel_list = build_neck_list(list(necks), channel_list)
    if patch_size is None:
        patch_size = find_patch_size(encoder)
    if patch_size is None:
        patch_size = _reduction_patch(encoder)
    includes_head = decoder_includes_head(decoder)
    head_args = dict(head_kwargs)
    if includes_head and head_args:
        raise ValueError(
            f"Decoder {decoder if isinstance(decoder, str) else type(decoder).__name__} already includes its "
            f"head, but head arguments {sorted('head_' + k for k in head_args)} were given; remove them."
        )
    decoder_num_classes = num_outputs if num_outputs is not None else num_classes
    main_decoder = build_decoder(decoder, channel_list, decoder_kwargs, decoder_num_classes)
    aux = build_aux_decoders(
        aux_decoders, channel_list, num_classes, head_args, task=task, num_outputs=num_outputs
    )
    if not includes_head:
        head_args = _head_target(task, head_args, num_classes, num_outputs)
    model_kwargs: dict[str, Any] = {
        "encoder": encoder,
        "decoder": main_decoder,
        "head_kwargs": head_args,
        "patch_size": patch_size,
        "padding": padding,
        "decoder_includes_head": includes_head,
        "auxiliary_heads": aux,
        "neck": NeckSequential(*neck_modules) if neck_modules else None,
        "prepare_features_for_image_model": prepare_features_for_image_model,
        "channel_list": channel_list,
    }
    if task in ("segmentation", "regression"):
        from terratorch.models.pixel_wise_model import PixelWiseModel

        return PixelWiseModel(task, rescale=rescale, image_size_out=image_size_out, **model_kwargs)
    from terratorch.models.scalar_output_model import ScalarOutputModel

    return ScalarOutputModel(task, **model_kwargs)
