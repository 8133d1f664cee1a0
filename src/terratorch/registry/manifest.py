"""Built-in registry entries: name → module that registers it, plus metadata readable without imports.

Keeping this table separate from the implementations is what lets ``import terratorch.registry``
list every built-in name (and its bands, patch size, ...) without importing torch models.
"""

from __future__ import annotations

from typing import Any

_MODELS = "terratorch.models"

PRITHVI_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]

# Published normalisation of Prithvi EO 2.0 inputs (HLS reflectance x 10000), per PRITHVI_BANDS.
PRITHVI_V2_MEAN = [1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0]
PRITHVI_V2_STD = [2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0]

_TL = {"coords_encoding": ["time", "location"]}

# Published architecture sizes of the Prithvi EO family (encoder only). ``num_frames`` is the number
# of frames the published weights were pretrained with; the backbones default to one frame.
PRITHVI_VARIANTS: dict[str, dict[str, Any]] = {
    "prithvi_eo_tiny": {"embed_dim": 256, "depth": 4, "num_heads": 4, "patch_size": 16, "num_frames": 1},
    "prithvi_eo_v1_100": {"embed_dim": 768, "depth": 12, "num_heads": 12, "patch_size": 16, "num_frames": 3},
    "prithvi_eo_v2_tiny_tl": {
        "embed_dim": 192,
        "depth": 12,
        "num_heads": 3,
        "patch_size": 16,
        "num_frames": 4,
        **_TL,
    },
    "prithvi_eo_v2_100_tl": {
        "embed_dim": 768,
        "depth": 12,
        "num_heads": 12,
        "patch_size": 16,
        "num_frames": 4,
        **_TL,
    },
    "prithvi_eo_v2_300": {"embed_dim": 1024, "depth": 24, "num_heads": 16, "patch_size": 16, "num_frames": 4},
    "prithvi_eo_v2_300_tl": {
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "patch_size": 16,
        "num_frames": 4,
        **_TL,
    },
    "prithvi_eo_v2_600": {"embed_dim": 1280, "depth": 32, "num_heads": 16, "patch_size": 14, "num_frames": 4},
    "prithvi_eo_v2_600_tl": {
        "embed_dim": 1280,
        "depth": 32,
        "num_heads": 16,
        "patch_size": 14,
        "num_frames": 4,
        **_TL,
    },
}

# Masked-autoencoder decoder sizes (decoder_embed_dim, decoder_depth, decoder_num_heads).
PRITHVI_MAE_DECODERS: dict[str, tuple[int, int, int]] = {
    name: (128, 4, 4) if name == "prithvi_eo_tiny" else (512, 8, 16) for name in PRITHVI_VARIANTS
}

# Hugging Face repo and file of each variant's published weights (looked up in the local cache only
# when pretrained=True; nothing is downloaded offline). prithvi_eo_tiny has no published weights.
PRITHVI_HF_WEIGHTS: dict[str, tuple[str, str]] = {
    "prithvi_eo_v1_100": ("ibm-nasa-geospatial/Prithvi-EO-1.0-100M", "Prithvi_EO_V1_100M.pt"),
    "prithvi_eo_v2_tiny_tl": ("ibm-nasa-geospatial/Prithvi-EO-2.0-tiny-TL", "Prithvi_EO_V2_tiny_TL.pt"),
    "prithvi_eo_v2_100_tl": ("ibm-nasa-geospatial/Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt"),
    "prithvi_eo_v2_300": ("ibm-nasa-geospatial/Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"),
    "prithvi_eo_v2_300_tl": ("ibm-nasa-geospatial/Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt"),
    "prithvi_eo_v2_600": ("ibm-nasa-geospatial/Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt"),
    "prithvi_eo_v2_600_tl": ("ibm-nasa-geospatial/Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt"),
}


def _backbones() -> dict[str, tuple[str, dict[str, Any]]]:
    entries: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, arch in PRITHVI_VARIANTS.items():
        meta: dict[str, Any] = {
            "family": "prithvi_vit",
            "bands": list(PRITHVI_BANDS),
            # one feature per block, E channels each at the default num_frames=1
            "out_channels": [arch["embed_dim"]] * arch["depth"],
            "pretrained_num_frames": arch["num_frames"],
            **{k: v for k, v in arch.items() if k != "num_frames"},
        }
        if name in PRITHVI_HF_WEIGHTS:
            meta["hf_hub_id"], meta["hf_hub_filename"] = PRITHVI_HF_WEIGHTS[name]
        if name.startswith("prithvi_eo_v2"):
            meta["mean"], meta["std"] = list(PRITHVI_V2_MEAN), list(PRITHVI_V2_STD)
        entries[name] = (f"{_MODELS}.backbones.prithvi_vit", meta)
    return entries


BACKBONES = _backbones()

FULL_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{name}_mae": (
        f"{_MODELS}.backbones.prithvi_vit",
        {"family": "prithvi_mae", "encoder": name, "bands": list(PRITHVI_BANDS)},
    )
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
    "ASPPHead": f"{_MODELS}.decoders.aspp_head",
    "ASPPModule": f"{_MODELS}.decoders.aspp_head",
    "SatMAEHead": f"{_MODELS}.decoders.satmae_head",
}

MODEL_FACTORIES: dict[str, str] = {
    "EncoderDecoderFactory": f"{_MODELS}.encoder_decoder_factory",
    "PrithviModelFactory": f"{_MODELS}.prithvi_model_factory",
    "SMPModelFactory": f"{_MODELS}.smp_model_factory",
    "TimmModelFactory": f"{_MODELS}.timm_model_factory",
    "FullModelFactory": f"{_MODELS}.full_model_factory",
}
