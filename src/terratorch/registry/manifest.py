"""Built-in registry entries: name → module that registers it, plus metadata readable without imports.

Keeping this table separate from the implementations is what lets ``import terratorch.registry``
list every built-in name (and its bands, patch size, ...) without importing torch models.
"""

from __future__ import annotations

from typing import Any

_MODELS = "terratorch.models"

PRITHVI_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]

# Published architecture sizes of the Prithvi EO family (encoder only).
PRITHVI_VARIANTS: dict[str, dict[str, Any]] = {
    "prithvi_eo_tiny": {"embed_dim": 256, "depth": 4, "num_heads": 4, "patch_size": 16, "num_frames": 1},
    "prithvi_eo_v1_100": {"embed_dim": 768, "depth": 12, "num_heads": 12, "patch_size": 16, "num_frames": 3},
    "prithvi_eo_v2_tiny_tl": {
        "embed_dim": 192,
        "depth": 12,
        "num_heads": 3,
        "patch_size": 16,
        "num_frames": 4,
        "coords_encoding": ["time", "location"],
    },
    "prithvi_eo_v2_100_tl": {
        "embed_dim": 768,
        "depth": 12,
        "num_heads": 12,
        "patch_size": 16,
        "num_frames": 4,
        "coords_encoding": ["time", "location"],
    },
    "prithvi_eo_v2_300": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "patch_size": 16, "num_frames": 4},
    "prithvi_eo_v2_300_tl": {
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "patch_size": 16,
        "num_frames": 4,
        "coords_encoding": ["time", "location"],
    },
    "prithvi_eo_v2_600": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "patch_size": 14, "num_frames": 4},
    "prithvi_eo_v2_600_tl": {
        "embed_dim": 1280,
        "depth": 32,
        "num_heads": 16,
        "patch_size": 14,
        "num_frames": 4,
        "coords_encoding": ["time", "location"],
    },
}


def _backbones() -> dict[str, tuple[str, dict[str, Any]]]:
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, arch in PRITHVI_VARIANTS.items():
        meta = {
            "family": "prithvi_vit",
            "bands": list(PRITHVI_BANDS),
            "patch_size": arch["patch_size"],
            "out_channels": [arch["embed_dim"]] * arch["depth"],
            **arch,
        }
        entries[name] = (f"{_MODELS}.backbones.prithvi_vit", meta)
    return entries


BACKBONES = _backbones()

FULL_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{name}_mae": (f"{_MODELS}.backbones.prithvi_mae", {"family": "prithvi_mae", "encoder": name})
    for name in PRITHVI_VARIANTS
}

NECKS: dict[str, str] = {
    name: f"{_MODELS}.necks"
    for name in (
        "SelectIndices",
        "PermuteDims",
        "InterpolateToPyramidal",
        "MaxpoolToPyramidal",
        "ReshapeTokensToImage",
        "LearnedInterpolateToPyramidal",
        "AddBottleneckLayer",
        "AggregateTokens",
    )
}

DECODERS: dict[str, str] = {
    "FCNDecoder": f"{_MODELS}.decoders.fcn_decoder",
    "IdentityDecoder": f"{_MODELS}.decoders.identity_decoder",
    "UperNetDecoder": f"{_MODELS}.decoders.upernet_decoder",
    "UNetDecoder": f"{_MODELS}.decoders.unet_decoder",
    "LinearDecoder": f"{_MODELS}.decoders.linear_decoder",
    "MLPDecoder": f"{_MODELS}.decoders.mlp_decoder",
    "ASPPSegmentationHead": f"{_MODELS}.decoders.aspp_head",
    "ASPPRegressionHead": f"{_MODELS}.decoders.aspp_head",
}

MODEL_FACTORIES: dict[str, str] = {
    "EncoderDecoderFactory": f"{_MODELS}.encoder_decoder_factory",
    "PrithviModelFactory": f"{_MODELS}.prithvi_model_factory",
    "SMPModelFactory": f"{_MODELS}.smp_model_factory",
    "TimmModelFactory": f"{_MODELS}.timm_model_factory",
    "FullModelFactory": f"{_MODELS}.full_model_factory",
}
