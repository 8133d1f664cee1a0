"""The decoders of segmentation_models_pytorch (smp) on our feature lists (``smp_Unet``, ``smp_FPN``, ...).

smp decoders expect the feature list of a depth-``D`` smp encoder: ``D + 1`` maps at strides
1, 2, 4, ..., ``2**D``, the first being the input itself. Our lists are shorter (a 4-level pyramid
at strides 4..32, a 5-level ResNet at 2..32, a single ViT map). The adapter aligns our maps with
the **coarsest** smp slots and fills the finer slots with zero-channel placeholders of the right
size, which smp decoders treat as "no skip connection". Per architecture:

* ``Unet``, ``UnetPlusPlus``, ``MAnet``, ``Linknet``: one decoder block per entry of
  ``decoder_channels`` (``n_blocks`` for Linknet), default 5. The ``N`` maps feed the coarsest
  blocks; every block beyond them doubles the resolution, so the output is at
  ``finest_map_size * 2 ** (blocks + 1 - N)``: input resolution for a stride-4 pyramid with the
  default 5 blocks. Needs ``N <= blocks``.
* ``FPN``: the last 4 maps (needs at least 4); output at the finest of them.
* ``UPerNet``, ``Segformer``: all maps; output at the finest.
* ``PAN``: the last 2..4 maps; output at the finest of them.
* ``DeepLabV3``, ``PSPNet``: the last map; output at its resolution.
* ``DeepLabV3Plus``: ASPP on the last map fused with the finest map; output at the finest map.
  (smp upsamples the ASPP output by a fixed x4 assuming a dilated stride-16 encoder; here it is
  resized to the finest map, whatever the strides.)

Keyword arguments are those of the smp model (``decoder_channels``, ``decoder_use_norm``,
``decoder_interpolation``, ``decoder_pyramid_channels``, ``psp_out_channels``, ...) or of the smp
decoder class (``use_norm``, ``interpolation_mode``, ``pyramid_channels``, ...), and the model names
without their ``decoder_`` prefix (``channels``, ``use_norm``, ...). Defaults are the smp model's.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from segmentation_models_pytorch.decoders.deeplabv3.decoder import DeepLabV3Decoder, DeepLabV3PlusDecoder
from segmentation_models_pytorch.decoders.fpn.decoder import FPNDecoder
from segmentation_models_pytorch.decoders.linknet.decoder import LinknetDecoder
from segmentation_models_pytorch.decoders.manet.decoder import MAnetDecoder
from segmentation_models_pytorch.decoders.pan.decoder import PANDecoder
from segmentation_models_pytorch.decoders.pspnet.decoder import PSPDecoder
from segmentation_models_pytorch.decoders.segformer.decoder import SegformerDecoder
from segmentation_models_pytorch.decoders.unet.decoder import UnetDecoder
from segmentation_models_pytorch.decoders.unetplusplus.decoder import UnetPlusPlusDecoder
from segmentation_models_pytorch.decoders.upernet.decoder import UPerNetDecoder
from torch import Tensor, nn

from terratorch.models.decoders import check_feature_channels
from terratorch.registry.registry import InvalidModelError, close_matches

__all__ = ["SUPPORTED_DECODERS", "SMPDecoderAdapter", "build_smp_decoder"]

# Arguments the adapter sets itself from the channel list.
_STRUCTURAL = {"encoder_channels", "encoder_depth", "n_blocks", "output_stride", "in_channels"}


@dataclass(frozen=True)
class _Arch:
    """How to drive one smp decoder class.

    Attributes:
        decoder: The smp decoder class.
        layout: ``skip`` (U-Net family), ``fpn``, ``pyramid`` (UPerNet, Segformer), ``pan``,
            ``last`` (DeepLabV3, PSPNet) or ``deeplabv3plus``.
        out_param: Decoder parameter holding the output width (its last entry if a sequence);
            None to read ``decoder.out_channels``.
        model_names: Decoder parameter → smp model argument, where not ``"decoder_" + param``.
        tunable_depth: The decoder's ``n_blocks`` is a user argument (Linknet).
    """

    decoder: type[nn.Module]
    layout: str
    out_param: str | None
    model_names: dict[str, str] = field(default_factory=dict)
    tunable_depth: bool = False


_ARCHS: dict[str, _Arch] = {
    "Unet": _Arch(UnetDecoder, "skip", "decoder_channels"),
    "UnetPlusPlus": _Arch(UnetPlusPlusDecoder, "skip", "decoder_channels"),
    "MAnet": _Arch(MAnetDecoder, "skip", "decoder_channels"),
    "Linknet": _Arch(
        LinknetDecoder, "skip", "prefinal_channels", {"n_blocks": "encoder_depth"}, tunable_depth=True
    ),
    "FPN": _Arch(FPNDecoder, "fpn", None),
    "DeepLabV3": _Arch(DeepLabV3Decoder, "last", "out_channels", {"out_channels": "decoder_channels"}),
    "DeepLabV3Plus": _Arch(
        DeepLabV3PlusDecoder, "deeplabv3plus", "out_channels", {"out_channels": "decoder_channels"}
    ),
    "PSPNet": _Arch(
        PSPDecoder, "last", "out_channels", {"out_channels": "psp_out_channels", "dropout": "psp_dropout"}
    ),
    "PAN": _Arch(PANDecoder, "pan", "decoder_channels"),
    "UPerNet": _Arch(UPerNetDecoder, "pyramid", "decoder_channels"),
    "Segformer": _Arch(SegformerDecoder, "pyramid", "segmentation_channels"),
}

SUPPORTED_DECODERS: list[str] = list(_ARCHS)
"""smp architectures whose decoder can be built over our feature lists."""


def _model_name(arch: _Arch, param: str) -> str:
    if param in arch.model_names:
        return arch.model_names[param]
    if param == "interpolation_mode":
        return "decoder_interpolation"
    return param if param.startswith("decoder_") else f"decoder_{param}"


def _parameters(name: str) -> dict[str, tuple[set[str], Any]]:
    """Decoder parameter → (accepted keyword names, default) for smp architecture ``name``."""
    arch = _ARCHS[name]
    model_params = inspect.signature(getattr(smp, name)).parameters
    result: dict[str, tuple[set[str], Any]] = {}
    for param, spec in inspect.signature(arch.decoder).parameters.items():
        if param in _STRUCTURAL and not (arch.tunable_depth and param == "n_blocks"):
            continue
        aliases = {param, param.removeprefix("decoder_")}
        model_name = _model_name(arch, param)
        default = spec.default
        if model_name in model_params:
            aliases |= {model_name, model_name.removeprefix("decoder_")}
            default = model_params[model_name].default
        result[param] = (aliases, default)
    return result


def _resolve_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Map user keyword names to smp decoder parameters, filling smp model defaults."""
    parameters = _parameters(name)
    resolved: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in kwargs.items():
        param = next((p for p, (aliases, _) in parameters.items() if key in aliases), None)
        if param is None:
            valid = sorted(a for aliases, _ in parameters.values() for a in aliases)
            hint = close_matches(key, valid, n=3)
            raise TypeError(
                f"smp_{name} got an unexpected keyword argument {key!r}."
                + (f" Did you mean: {', '.join(hint)}?" if hint else "")
                + f" Valid: {', '.join(valid)}."
            )
        if param in given:
            raise TypeError(f"smp_{name}: {key!r} and {given[param]!r} set the same argument {param!r}.")
        given[param] = key
        resolved[param] = value
    for param, (_, default) in parameters.items():
        if param not in resolved and default is not inspect.Parameter.empty:
            resolved[param] = default
    return resolved


# A plan: (smp encoder channels, number of placeholder slots, number of our maps used, extra kwargs).
_Plan = tuple[list[int], int, int, dict[str, Any]]


def _plan_skip(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """U-Net family: our maps fill the coarsest slots of a depth-``blocks`` encoder."""
    depth = len(params["decoder_channels"]) if "decoder_channels" in params else int(params.pop("n_blocks"))
    count = len(channels)
    if count > depth:
        raise ValueError(
            f"smp_{name} with {depth} decoder blocks can use at most {depth} feature maps, got {count} "
            f"(channels {channels}). Use at least {count} blocks (entries of decoder_channels; n_blocks "
            "for Linknet) or select fewer maps with a SelectIndices neck."
        )
    pad = depth + 1 - count
    return [0] * pad + channels, pad, count, {"n_blocks": depth}


def _plan_fpn(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """FPN: the last 4 maps."""
    if len(channels) < 4:
        raise ValueError(
            f"smp_{name} needs at least 4 feature maps (a pyramid), got {len(channels)} (channels "
            f"{channels}). Add a neck such as LearnedInterpolateToPyramidal or InterpolateToPyramidal."
        )
    return channels[-4:], 0, 4, {"encoder_depth": 3}


def _plan_pyramid(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """UPerNet, Segformer: every map, behind the two (unused) stride-1 and stride-2 slots."""
    return [0, 0, *channels], 2, len(channels), {"encoder_depth": max(3, len(channels) + 1)}


def _plan_pan(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """PAN: the last 2 to 4 maps."""
    used = min(len(channels), 4)
    if used < 2:
        raise ValueError(
            f"smp_{name} needs at least 2 feature maps, got {len(channels)} (channels {channels})."
        )
    return [0, 0, *channels[-used:]], 2, used, {"encoder_depth": used + 1}


def _plan_deeplabv3plus(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """DeepLabV3+: smp reads the high-resolution map at index 2 and the ASPP input at index -1."""
    return [0, 0, channels[0], channels[-1]], 0, len(channels), {"encoder_depth": 5, "output_stride": 16}


def _plan_last(name: str, channels: list[int], params: dict[str, Any]) -> _Plan:
    """DeepLabV3, PSPNet: the last map only."""
    extra = {"in_channels": channels[-1]} if name == "DeepLabV3" else {}
    return list(channels), 0, len(channels), extra


_PLANS = {
    "skip": _plan_skip,
    "fpn": _plan_fpn,
    "pyramid": _plan_pyramid,
    "pan": _plan_pan,
    "deeplabv3plus": _plan_deeplabv3plus,
    "last": _plan_last,
}


class SMPDecoderAdapter(nn.Module):
    """An smp decoder fed with our feature list (see the module docstring for the alignment).

    Args:
        name: smp architecture name (one of :data:`SUPPORTED_DECODERS`).
        decoder: The smp decoder module.
        channel_list: Channels of the features this adapter receives.
        placeholders: Number of zero-channel maps prepended before calling smp.
        used: How many of the last features smp receives.
        out_channels: Channels of the output.

    Attributes:
        out_channels: Channels of the decoded map.
    """

    def __init__(
        self,
        name: str,
        decoder: nn.Module,
        channel_list: Sequence[int],
        placeholders: int,
        used: int,
        out_channels: int,
    ) -> None:
        super().__init__()
        self.name = name
        self.decoder = decoder
        self.channel_list = list(channel_list)
        self.placeholders = placeholders
        self.used = used
        self.out_channels: int = out_channels

    def _placeholder_maps(self, finest: Tensor) -> list[Tensor]:
        batch, _, height, width = finest.shape
        return [
            finest.new_zeros(
                batch, 0, height * 2 ** (self.placeholders - slot), width * 2 ** (self.placeholders - slot)
            )
            for slot in range(self.placeholders)
        ]

    def forward(self, features: list[Tensor]) -> Tensor:
        """Decode ``[(B, C_i, H_i, W_i)]`` (finest first) into ``(B, out_channels, H, W)``."""
        check_feature_channels(f"smp_{self.name}", self.channel_list, features)
        if _ARCHS[self.name].layout == "deeplabv3plus":
            return _deeplabv3plus_forward(self.decoder, features[0], features[-1])
        maps = list(features[-self.used :])
        return self.decoder(self._placeholder_maps(maps[0]) + maps)


def _deeplabv3plus_forward(decoder: nn.Module, finest: Tensor, coarsest: Tensor) -> Tensor:
    """smp's DeepLabV3+ fusion with the ASPP output resized to the finest map instead of a fixed x4."""
    context = decoder.aspp(coarsest)
    context = F.interpolate(context, size=finest.shape[-2:], mode="bilinear", align_corners=True)
    return decoder.block2(torch.cat([context, decoder.block1(finest)], dim=1))


def build_smp_decoder(name: str, channel_list: Sequence[int], **kwargs: Any) -> SMPDecoderAdapter:
    """Build the decoder of smp architecture ``name`` for features with channels ``channel_list``.

    Args:
        name: smp architecture, e.g. ``"Unet"``, ``"FPN"`` (see :data:`SUPPORTED_DECODERS`).
        channel_list: Channels of the feature maps, finest first.
        **kwargs: smp decoder arguments (see the module docstring for accepted names).

    Returns:
        A module mapping the feature list to ``(B, out_channels, H, W)``, with ``out_channels``.

    Raises:
        InvalidModelError: ``name`` is not a supported smp architecture.
        TypeError: An unknown keyword argument (the message lists valid ones).
        ValueError: The channel list does not suit the architecture (too few or too many maps).
    """
    if name not in SUPPORTED_DECODERS:
        raise InvalidModelError(name, "smp decoders", close_matches(name, SUPPORTED_DECODERS))
    channels = [int(c) for c in channel_list]
    if not channels:
        raise ValueError(f"smp_{name} needs at least one feature map, got an empty channel list.")
    params = _resolve_kwargs(name, kwargs)
    smp_channels, placeholders, used, extra = _PLANS[_ARCHS[name].layout](name, channels, params)
    arch = _ARCHS[name]
    decoder_kwargs = {**params, **extra}
    if "encoder_channels" in inspect.signature(arch.decoder).parameters:
        decoder_kwargs["encoder_channels"] = smp_channels
    decoder = arch.decoder(**decoder_kwargs)
    return SMPDecoderAdapter(
        name, decoder, channels, placeholders, used, _out_channels(arch, params, decoder)
    )


def _out_channels(arch: _Arch, params: dict[str, Any], decoder: nn.Module) -> int:
    if arch.out_param is None:
        return int(decoder.out_channels)
    value = params[arch.out_param]
    return int(value[-1]) if isinstance(value, (list, tuple)) else int(value)
