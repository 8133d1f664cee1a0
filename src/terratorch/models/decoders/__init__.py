"""Decoders: turn a backbone's list of feature maps into one dense feature map (or logits).

Every decoder takes the channel list of the features it will receive as its first constructor
argument (``embed_dim``), exposes ``out_channels: int`` and maps ``list[Tensor] -> Tensor``.
Decoders that already end in a class projection set ``includes_head = True``.

The classes are re-exported lazily so that importing one decoder module does not import the others
(nor segmentation_models_pytorch).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "FCNDecoder": "terratorch.models.decoders.fcn_decoder",
    "IdentityDecoder": "terratorch.models.decoders.identity_decoder",
    "UperNetDecoder": "terratorch.models.decoders.upernet_decoder",
    "UNetDecoder": "terratorch.models.decoders.unet_decoder",
    "LinearDecoder": "terratorch.models.decoders.linear_decoder",
    "MLPDecoder": "terratorch.models.decoders.mlp_decoder",
    "ASPPModule": "terratorch.models.decoders.aspp_head",
    "ASPPHead": "terratorch.models.decoders.aspp_head",
    "ASPPSegmentationHead": "terratorch.models.decoders.aspp_head",
    "ASPPRegressionHead": "terratorch.models.decoders.aspp_head",
    "ConvModule": "terratorch.models.decoders.utils",
    "SatMAEHead": "terratorch.models.decoders.satmae_head",
    "SatMAEHeadViT": "terratorch.models.decoders.satmae_head",
    "build_smp_decoder": "terratorch.models.decoders.smp_decoders",
    "SMPDecoderWrapper": "terratorch.models.decoders.smp_decoders",
}

__all__ = ["check_feature_channels", "check_index", *sorted(_LAZY)]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


def check_feature_channels(owner: str, expected: Sequence[int], features: Sequence[Tensor]) -> None:
    """Raise a ``ValueError`` unless ``features`` has exactly the channels ``expected``.

    The channel of a feature is its dimension 1 (``(B, C, H, W)`` maps or ``(B, C)`` vectors).
    Decoders call this at the start of ``forward`` so that a decoder built for one channel list
    and fed another fails with both lists instead of a shape error deep inside a convolution.

    Args:
        owner: Name used in the message (usually the decoder class name).
        expected: The channel list the decoder was built with.
        features: The feature tensors received.
    """
    if not isinstance(features, (list, tuple)):
        raise TypeError(
            f"{owner} expects a list of feature tensors, got {type(features).__name__}. Wrap a single "
            "map in a list."
        )
    received = [int(f.shape[1]) if f.dim() >= 2 else -1 for f in features]
    if received == list(expected):
        return
    message = (
        f"{owner} was built for {len(expected)} feature maps with channels {list(expected)} but "
        f"received {len(received)} with channels {received}. Build the decoder with the channel list "
        "of the features it receives (the backbone's out_channels after any necks)."
    )
    if any(f.dim() == 3 for f in features):
        message += (
            " Some inputs are 3-D token sequences (B, L, E): add a ReshapeTokensToImage neck to turn "
            "them into (B, E, H, W) maps."
        )
    raise ValueError(message)


def check_index(owner: str, index: int, channel_list: Sequence[int], argument: str = "out_index") -> int:
    """Validate ``index`` against ``channel_list`` and return it as a non-negative index.

    Raises:
        ValueError: ``index`` is outside ``-len(channel_list) .. len(channel_list) - 1``.
    """
    count = len(channel_list)
    if not -count <= index < count:
        raise ValueError(
            f"{owner}: {argument}={index} is out of range for {count} feature maps (channels "
            f"{list(channel_list)}); valid values are {-count}..{count - 1}."
        )
    return index % count
