"""The model layer: factories that assemble backbones, necks, decoders and heads into a Model.

Attributes are resolved lazily (PEP 562) so that ``import terratorch.models`` does not import
timm or smp; ``from terratorch.models import EncoderDecoderFactory`` works as usual.
"""

from __future__ import annotations

from terratorch._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "EncoderDecoderFactory": "terratorch.models.encoder_decoder_factory",
    "PrithviModelFactory": "terratorch.models.prithvi_model_factory",
    "SMPModelFactory": "terratorch.models.smp_model_factory",
    "TimmModelFactory": "terratorch.models.timm_model_factory",
    "FullModelFactory": "terratorch.models.full_model_factory",
    "ObjectDetectionModelFactory": "terratorch.models.object_detection_model_factory",
    "ClayModelFactory": "terratorch.models.clay_model_factory",
    "Clay1_5ModelFactory": "terratorch.models.clay1_5_model_factory",
    "PixelWiseModel": "terratorch.models.pixel_wise_model",
    "ScalarOutputModel": "terratorch.models.scalar_output_model",
    "Model": "terratorch.models.model",
    "ModelOutput": "terratorch.models.model",
    "ModelFactory": "terratorch.models.model",
    "AuxiliaryHead": "terratorch.models.model",
    "register_factory": "terratorch.models.model",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
