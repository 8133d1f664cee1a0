"""The decoders of segmentation_models_pytorch (smp) over our feature lists (``smp_Unet``, ``smp_FPN``, ...).

``build_smp_decoder(name, channel_list, **kwargs)`` builds the smp model ``name`` around a stub
encoder whose ``out_channels`` is ``channel_list`` and whose depth is ``len(channel_list) - 1``,
then keeps only its decoder, wrapped in :class:`SMPDecoderWrapper` (attribute ``_smp_decoder``).
The features go to the smp decoder unchanged, so smp's conventions apply: entry 0 plays the part
of the encoder's stride-1 input (most decoders ignore it) and each architecture reads the maps it
expects (FPN the last four, DeepLabV3 the last one, ...).

Keyword arguments are the smp model's (``decoder_channels``, ``decoder_use_norm``,
``decoder_pyramid_channels``, ``psp_out_channels``, ``encoder_depth``, ...); ``aux_*`` arguments
become the model's ``aux_params`` (its classification head, which is discarded).
"""

from __future__ import annotations

import inspect
import threading
import warnings
from collections.abc import Sequence
from typing import Any

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.base import SegmentationModel
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from torch import Tensor, nn

from terratorch.choices import close_matches
from terratorch.models.decoders import check_feature_channels
from terratorch.models.utils import extract_prefix_keys
from terratorch.registry.registry import InvalidModelError

__all__ = ["SUPPORTED_DECODERS", "SMPDecoderWrapper", "build_smp_decoder"]

SUPPORTED_DECODERS: list[str] = sorted(
    name
    for name, obj in inspect.getmembers(smp, inspect.isclass)
    if issubclass(obj, SegmentationModel) and obj is not SegmentationModel
)
"""smp architectures (``smp.<name>``) whose decoder can be requested as ``smp_<name>``."""

_STUB_NAME = "_terratorch_decoder_stub"
_STUB_LOCK = threading.Lock()


class _StubEncoder(nn.Module):
    """Stands in for an smp encoder while an smp model is built: it only reports channels and strides."""

    def __init__(self, depth: int, output_stride: int, out_channels: list[int]) -> None:
        super().__init__()
        self._depth = depth
        self._output_stride = output_stride
        self._out_channels = list(out_channels)

    @property
    def out_channels(self) -> list[int]:
        return self._out_channels

    @property
    def output_stride(self) -> int:
        return min(self._output_stride, 2**self._depth)

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """Nothing to adapt: the stub has no input layer."""

    def make_dilated(self, output_stride: int) -> None:
        """Nothing to dilate: the stub has no layers."""

    def forward(self, x: Tensor) -> list[Tensor]:  # pragma: no cover - never called
        raise RuntimeError("the stub encoder of build_smp_decoder is not meant to run")


class SMPDecoderWrapper(nn.Module):
    """An smp decoder (attribute ``_smp_decoder``) with the ``out_channels`` a head needs.

    Args:
        decoder: The smp decoder module.
        out_channels: Channels of its output (not every smp decoder exposes them).
        channel_list: Optional channels of the features it receives; when given, ``forward``
            checks the features against it and names both lists on a mismatch.

    Attributes:
        out_channels: Channels of the decoded map.
    """

    def __init__(
        self, decoder: nn.Module, out_channels: int, *, channel_list: Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self._smp_decoder = decoder
        self.out_channels = out_channels
        self.channel_list = None if channel_list is None else [int(c) for c in channel_list]

    def forward(self, x: list[Tensor]) -> Tensor:
        """Run the smp decoder on the feature list (finest first) as is."""
        if self.channel_list is not None:
            check_feature_channels(type(self._smp_decoder).__name__, self.channel_list, x)
        return self._smp_decoder(x)


def _architecture(name: str) -> type[nn.Module]:
    if name not in SUPPORTED_DECODERS:
        raise InvalidModelError(name, "smp decoders", close_matches(name, SUPPORTED_DECODERS, n=5))
    return getattr(smp, name)


# consumed by smp models from their **kwargs (deprecated spellings)
_SMP_KWARGS_EXTRA = {"decoder_use_batchnorm"}


def _warn_ignored_kwargs(name: str, architecture: type[nn.Module], kwargs: dict[str, Any]) -> None:
    """smp forwards unknown model kwargs to the encoder (here a stub), i.e. ignores them: say so."""
    parameters = inspect.signature(architecture).parameters
    named = [p for p, spec in parameters.items() if spec.kind is not inspect.Parameter.VAR_KEYWORD]
    ignored = sorted(set(kwargs) - set(named) - _SMP_KWARGS_EXTRA)
    if not ignored:
        return
    hints = sorted({m for key in ignored for m in close_matches(key, named, n=3)})
    warnings.warn(
        f"smp_{name}: arguments {ignored} are not parameters of smp.{name}, which passes them to its "
        "encoder; the decoder ignores them."
        + (f" Did you mean: {', '.join(hints)}?" if hints else f" smp.{name} takes: {', '.join(named)}."),
        UserWarning,
        stacklevel=3,
    )


def build_smp_decoder(name: str, out_channels: Sequence[int], **decoder_kwargs: Any) -> SMPDecoderWrapper:
    """Build the decoder of smp architecture ``name`` for features with channels ``out_channels``.

    Args:
        name: smp architecture, e.g. ``"Unet"``, ``"FPN"`` (see :data:`SUPPORTED_DECODERS`).
        out_channels: Channels of the feature maps the decoder receives, finest first (the
            encoder's ``out_channels`` in smp terms).
        **decoder_kwargs: smp model arguments (``aux_*`` ones go to ``aux_params``). Arguments
            that are not parameters of the smp model are ignored, with a warning.

    Returns:
        A :class:`SMPDecoderWrapper` around the smp model's decoder.

    Raises:
        InvalidModelError: ``name`` is not an smp architecture.
        ValueError: The channel list is empty, or smp rejects the configuration.
    """
    architecture = _architecture(name)
    channels = [int(c) for c in out_channels]
    if not channels:
        raise ValueError(f"smp_{name} needs at least one feature map, got an empty channel list.")
    aux_kwargs, decoder_kwargs = extract_prefix_keys(decoder_kwargs, "aux_")
    _warn_ignored_kwargs(name, architecture, decoder_kwargs)
    encoder_depth = len(channels) - 1
    model_args = {
        "encoder_name": _STUB_NAME,
        "encoder_weights": None,
        "in_channels": 1,
        "classes": 1,
        "encoder_depth": encoder_depth,
        **decoder_kwargs,
    }
    with _STUB_LOCK:
        smp_encoders[_STUB_NAME] = {
            "encoder": _StubEncoder,
            "params": {"out_channels": channels, "output_stride": 1},
            "pretrained_settings": {},
        }
        try:
            model = architecture(**model_args, aux_params=aux_kwargs or None)
        except (ValueError, AssertionError, IndexError) as error:
            raise ValueError(
                f"smp_{name} cannot be built for feature channels {channels} (encoder_depth "
                f"{model_args['encoder_depth']}) with {decoder_kwargs}: {error} The smp model sees an "
                "encoder of depth len(channel list) - 1 whose first map is its stride-1 input; size "
                "per-block arguments (e.g. decoder_channels) for that depth."
            ) from error
        finally:
            smp_encoders.pop(_STUB_NAME, None)
    # not every smp decoder has out_channels: read the width the model's segmentation head takes
    width = int(model.segmentation_head[0].in_channels)
    return SMPDecoderWrapper(model.decoder, width, channel_list=channels)
