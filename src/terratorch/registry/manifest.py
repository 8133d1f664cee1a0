"""Built-in registry entries: name → module that registers it, plus a copy of their listing metadata.

The tables of each architecture (sizes, bands, normalisation, published weight files) live next to
the model, e.g. ``prithvi_cfgs`` in :mod:`terratorch.models.backbones.prithvi_vit`, which registers
every builder with its metadata. This manifest repeats only what a listing needs, so
``import terratorch.registry`` and ``list_backbones()`` work without importing torch models; once a
module is imported, the metadata it registers replaces the copy. ``tests/registry/test_manifest.py``
imports every model module and fails, printing the entry to paste here, when the two disagree or a
registered name is missing.
"""

from __future__ import annotations

from typing import Any

_MODELS = "terratorch.models"
_PRITHVI_VIT = f"{_MODELS}.backbones.prithvi_vit"

_HLS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
_V1_NORM = {
    "mean": [775.0, 1081.0, 1229.0, 2497.0, 2204.0, 1611.0],
    "std": [1282.0, 1270.0, 1399.0, 1368.0, 1292.0, 1155.0],
}
_V2_NORM = {
    "mean": [1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0],
    "std": [2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0],
}
_TL = {"coords_encoding": ["time", "location"]}
_HF = "ibm-nasa-geospatial/"
_TERRAMIND = f"{_MODELS}.backbones.terramind.register"
_TM_V1_MODALITIES = [
    "untok_dem@224",
    "untok_sen1grd@224",
    "untok_sen1rtc@224",
    "untok_sen2l1c@224",
    "untok_sen2l2a@224",
    "untok_sen2rgb@224",
]


def _vit(
    embed_dim: int, depth: int, num_heads: int, patch_size: int, frames: int, **extra: Any
) -> dict[str, Any]:
    return {
        "family": "prithvi_vit",
        "bands": list(_HLS),
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": num_heads,
        "patch_size": patch_size,
        "out_channels": [embed_dim] * depth,
        "pretrained_num_frames": frames,
        **extra,
    }


def _weights(repo: str, filename: str) -> dict[str, str]:
    return {"hf_hub_id": _HF + repo, "hf_hub_filename": filename}


def _terramind(
    dim: int, depth: int, heads: int, repo: str, filename: str, v01: bool = False
) -> dict[str, Any]:
    return {
        "family": "terramind",
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "patch_size": 16,
        "out_channels": [dim] * depth,
        "modalities": ["untok_sen2l2a@224"] if v01 else list(_TM_V1_MODALITIES),
        "hf_hub_id": repo,
        "hf_hub_filename": filename,
    }


_TM_HF = "ibm-esa-geospatial/TerraMind-1.0-"
_TERRAMIND_TIM = f"{_MODELS}.backbones.terramind.register_tim"


def _terramind_tim(
    dim: int, depth: int, decoder_depth: int, heads: int, repo: str, filename: str, v01: bool = False
) -> dict[str, Any]:
    return {
        **_terramind(dim, depth, heads, repo, filename, v01=v01),
        "family": "terramind_tim",
        "decoder_depth": decoder_depth,
        "tim_modalities": ["LULC"],
    }


def _terramind_encdec(
    dim: int, depth: int, decoder_depth: int, heads: int, repo: str, filename: str
) -> dict[str, Any]:
    return {
        "family": "terramind_encdec",
        "embed_dim": dim,
        "depth": depth,
        "decoder_depth": decoder_depth,
        "num_heads": heads,
        "patch_size": 16,
        "hf_hub_id": repo,
        "hf_hub_filename": filename,
    }


#: name → (module, metadata) of ``TERRATORCH_BACKBONE_REGISTRY``.
BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "prithvi_eo_tiny": (_PRITHVI_VIT, _vit(256, 4, 4, 16, 1, **_V2_NORM)),
    "prithvi_eo_v1_100": (
        _PRITHVI_VIT,
        _vit(768, 12, 12, 16, 3, **_V1_NORM, **_weights("Prithvi-EO-1.0-100M", "Prithvi_EO_V1_100M.pt")),
    ),
    "prithvi_eo_v2_tiny_tl": (
        _PRITHVI_VIT,
        _vit(
            192,
            12,
            3,
            16,
            1,
            **_V2_NORM,
            **_TL,
            **_weights("Prithvi-EO-2.0-tiny-TL", "Prithvi_EO_V2_tiny_TL.pt"),
        ),
    ),
    "prithvi_eo_v2_100_tl": (
        _PRITHVI_VIT,
        _vit(
            768,
            12,
            12,
            16,
            4,
            **_V2_NORM,
            **_TL,
            **_weights("Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt"),
        ),
    ),
    "prithvi_eo_v2_300": (
        _PRITHVI_VIT,
        _vit(1024, 24, 16, 16, 4, **_V2_NORM, **_weights("Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt")),
    ),
    "prithvi_eo_v2_300_tl": (
        _PRITHVI_VIT,
        _vit(
            1024,
            24,
            16,
            16,
            4,
            **_V2_NORM,
            **_TL,
            **_weights("Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt"),
        ),
    ),
    "prithvi_eo_v2_600": (
        _PRITHVI_VIT,
        _vit(1280, 32, 16, 14, 4, **_V2_NORM, **_weights("Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt")),
    ),
    "prithvi_eo_v2_600_tl": (
        _PRITHVI_VIT,
        _vit(
            1280,
            32,
            16,
            14,
            4,
            **_V2_NORM,
            **_TL,
            **_weights("Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt"),
        ),
    ),
    "terramind_v1_tiny": (_TERRAMIND, _terramind(192, 12, 3, _TM_HF + "tiny", "TerraMind_v1_tiny.pt")),
    "terramind_v1_small": (_TERRAMIND, _terramind(384, 12, 6, _TM_HF + "small", "TerraMind_v1_small.pt")),
    "terramind_v1_base": (_TERRAMIND, _terramind(768, 12, 12, _TM_HF + "base", "TerraMind_v1_base.pt")),
    "terramind_v1_large": (_TERRAMIND, _terramind(1024, 24, 16, _TM_HF + "large", "TerraMind_v1_large.pt")),
    "terramind_v01_base": (
        _TERRAMIND,
        _terramind(768, 12, 12, "FAST-EO/TerraMind-0.1-base", "TerraMind_v01_base.pt", v01=True),
    ),
    "terramind_v1_tiny_tim": (
        _TERRAMIND_TIM,
        _terramind_tim(192, 12, 4, 3, _TM_HF + "tiny", "TerraMind_v1_tiny.pt"),
    ),
    "terramind_v1_small_tim": (
        _TERRAMIND_TIM,
        _terramind_tim(384, 12, 6, 6, _TM_HF + "small", "TerraMind_v1_small.pt"),
    ),
    "terramind_v1_base_tim": (
        _TERRAMIND_TIM,
        _terramind_tim(768, 12, 12, 12, _TM_HF + "base", "TerraMind_v1_base.pt"),
    ),
    "terramind_v1_large_tim": (
        _TERRAMIND_TIM,
        _terramind_tim(1024, 24, 24, 16, _TM_HF + "large", "TerraMind_v1_large.pt"),
    ),
    "terramind_v01_base_tim": (
        _TERRAMIND_TIM,
        _terramind_tim(768, 12, 12, 12, "FAST-EO/TerraMind-0.1-base", "TerraMind_v01_base.pt", v01=True),
    ),
    "clay_v1_base": (
        f"{_MODELS}.backbones.clay_v1.embedder",
        {
            "family": "clay_v1",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "embed_dim": 768,
            "depth": 12,
            "num_heads": 12,
            "patch_size": 8,
            "out_channels": [768] * 12,
            "hf_hub_id": "made-with-clay/Clay-legacy",
            "hf_hub_filename": "v1/clay-v1-base.ckpt",
        },
    ),
    "clay_v15_tiny": (
        f"{_MODELS}.backbones.clay_v15.embedder",
        {
            "family": "clay_v15",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "embed_dim": 192,
            "depth": 6,
            "num_heads": 4,
            "patch_size": 8,
            "out_channels": [192] * 6,
        },
    ),
    "clay_v15_small": (
        f"{_MODELS}.backbones.clay_v15.embedder",
        {
            "family": "clay_v15",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "embed_dim": 384,
            "depth": 6,
            "num_heads": 6,
            "patch_size": 8,
            "out_channels": [384] * 6,
        },
    ),
    "clay_v15_base": (
        f"{_MODELS}.backbones.clay_v15.embedder",
        {
            "family": "clay_v15",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "embed_dim": 768,
            "depth": 12,
            "num_heads": 12,
            "patch_size": 8,
            "out_channels": [768] * 12,
        },
    ),
    "clay_v15_large": (
        f"{_MODELS}.backbones.clay_v15.embedder",
        {
            "family": "clay_v15",
            "bands": ["blue", "green", "red", "nir", "swir16", "swir22"],
            "embed_dim": 1024,
            "depth": 24,
            "num_heads": 16,
            "patch_size": 8,
            "out_channels": [1024] * 24,
            "hf_hub_id": "made-with-clay/Clay",
            "hf_hub_filename": "v1.5/clay-v1.5.ckpt",
        },
    ),
}

_DOFA_URL = "https://hf.co/torchgeo/dofa/resolve/b8db318b64a90b9e085ec04ba8851233c5893666/"
BACKBONES.update(
    {
        f"dofa_{size}_patch16_224": (
            f"{_MODELS}.backbones.dofa_vit",
            {
                "family": "dofa",
                "embed_dim": dim,
                "depth": depth,
                "num_heads": heads,
                "patch_size": 16,
                "out_channels": [dim],
                **({"url": f"{_DOFA_URL}dofa_{size}_patch16_224-{digest}.pth"} if digest else {}),
            },
        )
        for size, (dim, depth, heads, digest) in {
            "small": (384, 12, 6, ""),
            "base": (768, 12, 12, "a0275954"),
            "large": (1024, 24, 16, "0ff904d3"),
        }.items()
    }
)
BACKBONES.update(
    {
        f"scalemae_{size}_patch{patch}": (
            f"{_MODELS}.backbones.scalemae",
            {
                "family": "scalemae",
                "bands": ["RED", "GREEN", "BLUE"],
                "patch_size": patch,
                "embed_dim": dim,
                "depth": depth,
                "num_heads": heads,
                "out_channels": [dim],
                **({"url": url} if url else {}),
            },
        )
        for size, (patch, dim, depth, heads, url) in {
            "base": (16, 768, 12, 12, ""),
            "large": (
                16,
                1024,
                24,
                16,
                "https://hf.co/isaaccorley/vit_large_patch16_224_fmow_rgb_scalemae/resolve/"
                "9dc7f569424baeb780698352cf6e87638c882123/vit_large_patch16_224_fmow_rgb_scalemae-98ed9821.pth",
            ),
            "huge": (14, 1280, 32, 16, ""),
        }.items()
    }
)

_TORCHGEO = f"{_MODELS}.backbones.torchgeo_"


def _torchgeo(module: str, enum: str, members: dict[str, str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Entries of torchgeo-weight backbones: name -> member of ``enum``; ``arch`` follows from ``enum``."""
    if module == "resnet":
        arch = "resnet" + enum.split("_")[0].removeprefix("ResNet")
    elif module == "vit":
        arch = "vit_small_patch16_224"
    else:
        arch = "swin_v2_" + enum.split("_")[2].lower()
    return {
        name: (
            _TORCHGEO + module,
            {"family": "torchgeo_" + module, "arch": arch, "weights": f"{enum}.{member}"},
        )
        for name, member in members.items()
    }


BACKBONES.update(
    _torchgeo(
        "resnet",
        "ResNet18_Weights",
        {
            "ssl4eol_resnet18_landsat_tm_toa_moco": "LANDSAT_TM_TOA_MOCO",
            "ssl4eol_resnet18_landsat_tm_toa_simclr": "LANDSAT_TM_TOA_SIMCLR",
            "ssl4eol_resnet18_landsat_etm_toa_moco": "LANDSAT_ETM_TOA_MOCO",
            "ssl4eol_resnet18_landsat_etm_toa_simclr": "LANDSAT_ETM_TOA_SIMCLR",
            "ssl4eol_resnet18_landsat_etm_sr_moco": "LANDSAT_ETM_SR_MOCO",
            "ssl4eol_resnet18_landsat_etm_sr_simclr": "LANDSAT_ETM_SR_SIMCLR",
            "ssl4eol_resnet18_landsat_oli_tirs_toa_moco": "LANDSAT_OLI_TIRS_TOA_MOCO",
            "ssl4eol_resnet18_landsat_oli_tirs_toa_simclr": "LANDSAT_OLI_TIRS_TOA_SIMCLR",
            "ssl4eol_resnet18_landsat_oli_sr_moco": "LANDSAT_OLI_SR_MOCO",
            "ssl4eol_resnet18_landsat_oli_sr_simclr": "LANDSAT_OLI_SR_SIMCLR",
            "ssl4eos12_resnet18_sentinel2_all_moco": "SENTINEL2_ALL_MOCO",
            "ssl4eos12_resnet18_sentinel2_rgb_moco": "SENTINEL2_RGB_MOCO",
            "seco_resnet18_sentinel2_rgb_seco": "SENTINEL2_RGB_SECO",
        },
    )
)
BACKBONES.update(
    _torchgeo(
        "resnet",
        "ResNet50_Weights",
        {
            "fmow_resnet50_fmow_rgb_gassl": "FMOW_RGB_GASSL",
            "ssl4eol_resnet50_landsat_tm_toa_moco": "LANDSAT_TM_TOA_MOCO",
            "ssl4eol_resnet50_landsat_tm_toa_simclr": "LANDSAT_TM_TOA_SIMCLR",
            "ssl4eol_resnet50_landsat_etm_toa_moco": "LANDSAT_ETM_TOA_MOCO",
            "ssl4eol_resnet50_landsat_etm_toa_simclr": "LANDSAT_ETM_TOA_SIMCLR",
            "ssl4eol_resnet50_landsat_etm_sr_moco": "LANDSAT_ETM_SR_MOCO",
            "ssl4eol_resnet50_landsat_etm_sr_simclr": "LANDSAT_ETM_SR_SIMCLR",
            "ssl4eol_resnet50_landsat_oli_tirs_toa_moco": "LANDSAT_OLI_TIRS_TOA_MOCO",
            "ssl4eol_resnet50_landsat_oli_tirs_toa_simclr": "LANDSAT_OLI_TIRS_TOA_SIMCLR",
            "ssl4eol_resnet50_landsat_oli_sr_moco": "LANDSAT_OLI_SR_MOCO",
            "ssl4eol_resnet50_landsat_oli_sr_simclr": "LANDSAT_OLI_SR_SIMCLR",
            "ssl4eos12_resnet50_sentinel1_all_decur": "SENTINEL1_ALL_DECUR",
            "ssl4eos12_resnet50_sentinel1_all_moco": "SENTINEL1_ALL_MOCO",
            "ssl4eos12_resnet50_sentinel2_all_decur": "SENTINEL2_ALL_DECUR",
            "ssl4eos12_resnet50_sentinel2_all_dino": "SENTINEL2_ALL_DINO",
            "ssl4eos12_resnet50_sentinel2_all_moco": "SENTINEL2_ALL_MOCO",
            "ssl4eos12_resnet50_sentinel2_all_softcon": "SENTINEL2_ALL_SOFTCON",
            "ssl4eos12_resnet50_sentinel2_rgb_moco": "SENTINEL2_RGB_MOCO",
            "seco_resnet50_sentinel2_rgb_seco": "SENTINEL2_RGB_SECO",
            "satlas_resnet50_sentinel2_mi_ms_satlas": "SENTINEL2_MI_MS_SATLAS",
            "satlas_resnet50_sentinel2_mi_rgb_satlas": "SENTINEL2_MI_RGB_SATLAS",
            "satlas_resnet50_sentinel2_si_ms_satlas": "SENTINEL2_SI_MS_SATLAS",
            "satlas_resnet50_sentinel2_si_rgb_satlas": "SENTINEL2_SI_RGB_SATLAS",
        },
    )
)
BACKBONES.update(
    _torchgeo(
        "resnet",
        "ResNet152_Weights",
        {
            "satlas_resnet152_sentinel2_mi_ms": "SENTINEL2_MI_MS_SATLAS",
            "satlas_resnet152_sentinel2_mi_rgb": "SENTINEL2_MI_RGB_SATLAS",
            "satlas_resnet152_sentinel2_si_ms_satlas": "SENTINEL2_SI_MS_SATLAS",
            "satlas_resnet152_sentinel2_si_rgb_satlas": "SENTINEL2_SI_RGB_SATLAS",
        },
    )
)
BACKBONES.update(
    _torchgeo(
        "vit",
        "ViTSmall16_Weights",
        {
            "ssl4eol_vit_small_patch16_224_landsat_tm_toa_moco": "LANDSAT_TM_TOA_MOCO",
            "ssl4eol_vit_small_patch16_224_landsat_tm_toa_simclr": "LANDSAT_TM_TOA_SIMCLR",
            "ssl4eol_vit_small_patch16_224_landsat_etm_toa_moco": "LANDSAT_ETM_TOA_MOCO",
            "ssl4eol_vit_small_patch16_224_landsat_etm_toa_simclr": "LANDSAT_ETM_TOA_SIMCLR",
            "ssl4eol_vit_small_patch16_224_landsat_etm_sr_moco": "LANDSAT_ETM_SR_MOCO",
            "ssl4eol_vit_small_patch16_224_landsat_etm_sr_simclr": "LANDSAT_ETM_SR_SIMCLR",
            "ssl4eol_vit_small_patch16_224_landsat_oli_tirs_toa_simclr": "LANDSAT_OLI_TIRS_TOA_SIMCLR",
            "ssl4eol_vit_small_patch16_224_landsat_oli_sr_moco": "LANDSAT_OLI_SR_MOCO",
            "ssl4eol_vit_small_patch16_224_landsat_oli_sr_simclr": "LANDSAT_OLI_SR_SIMCLR",
            "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino": "SENTINEL2_ALL_DINO",
            "ssl4eos12_vit_small_patch16_224_sentinel2_all_moco": "SENTINEL2_ALL_MOCO",
        },
    )
)
BACKBONES.update(
    _torchgeo(
        "swin_satlas",
        "Swin_V2_T_Weights",
        {
            "satlas_swin_t_sentinel2_mi_ms": "SENTINEL2_MI_MS_SATLAS",
            "satlas_swin_t_sentinel2_mi_rgb": "SENTINEL2_MI_RGB_SATLAS",
            "satlas_swin_t_sentinel2_si_ms": "SENTINEL2_SI_MS_SATLAS",
            "satlas_swin_t_sentinel2_si_rgb": "SENTINEL2_SI_RGB_SATLAS",
        },
    )
)
BACKBONES.update(
    _torchgeo(
        "swin_satlas",
        "Swin_V2_B_Weights",
        {
            "satlas_swin_b_sentinel2_mi_ms": "SENTINEL2_MI_MS_SATLAS",
            "satlas_swin_b_sentinel2_mi_rgb": "SENTINEL2_MI_RGB_SATLAS",
            "satlas_swin_b_sentinel2_si_ms": "SENTINEL2_SI_MS_SATLAS",
            "satlas_swin_b_sentinel2_si_rgb": "SENTINEL2_SI_RGB_SATLAS",
            "satlas_swin_b_naip_mi_rgb": "NAIP_RGB_MI_SATLAS",
            "satlas_swin_b_naip_si_rgb": "NAIP_RGB_SI_SATLAS",
            "satlas_swin_b_landsat_mi_ms": "LANDSAT_MI_SATLAS",
            "satlas_swin_b_landsat_mi_rgb": "LANDSAT_SI_SATLAS",
            "satlas_swin_b_sentinel1_mi": "SENTINEL1_MI_SATLAS",
            "satlas_swin_b_sentinel1_si": "SENTINEL1_SI_SATLAS",
        },
    )
)

#: name → (module, metadata) of ``TERRATORCH_FULL_MODEL_REGISTRY``.
FULL_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    f"{encoder}_mae": (_PRITHVI_VIT, {"family": "prithvi_mae", "encoder": encoder, "bands": list(_HLS)})
    for encoder, (module, _) in BACKBONES.items()
    if module == _PRITHVI_VIT
}
FULL_MODELS.update(
    {
        f"terramind_v1_{size}_encdec": (
            _TERRAMIND_TIM,
            _terramind_encdec(dim, depth, decoder_depth, heads, _TM_HF + size, f"TerraMind_v1_{size}.pt"),
        )
        for size, (dim, depth, decoder_depth, heads) in {
            "tiny": (192, 12, 4, 3),
            "small": (384, 12, 6, 6),
            "base": (768, 12, 12, 12),
            "large": (1024, 24, 24, 16),
        }.items()
    }
)

_TERRAMIND_TOKENIZER = f"{_MODELS}.backbones.terramind.tokenizer.register"
FULL_MODELS.update(
    {
        f"terramind_v1_tokenizer_{name}": (
            _TERRAMIND_TOKENIZER,
            {
                "family": "terramind_tokenizer",
                "in_channels": channels,
                "patch_size": 16,
                "codebook_size": levels,
                "decoder": decoder,
                "hf_hub_id": _TM_HF + "Tokenizer-" + name.upper(),
                "hf_hub_filename": f"TerraMind_Tokenizer_{name.upper()}.pt",
            },
        )
        for name, (channels, levels, decoder) in {
            "lulc": (10, "7-5-5-5-5", True),
            "ndvi": (1, "8-8-8-6-5", False),
        }.items()
    }
)

#: name → module of ``TERRATORCH_NECK_REGISTRY``.
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
        "FeaturePyramidNetworkNeck",
        "AggregateTokens",
    )
}

#: name → module of ``TERRATORCH_DECODER_REGISTRY``.
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

#: name → module of ``MODEL_FACTORY_REGISTRY``.
MODEL_FACTORIES: dict[str, str] = {
    "EncoderDecoderFactory": f"{_MODELS}.encoder_decoder_factory",
    "PrithviModelFactory": f"{_MODELS}.prithvi_model_factory",
    "SMPModelFactory": f"{_MODELS}.smp_model_factory",
    "TimmModelFactory": f"{_MODELS}.timm_model_factory",
    "FullModelFactory": f"{_MODELS}.full_model_factory",
    "ObjectDetectionModelFactory": f"{_MODELS}.object_detection_model_factory",
    "ClayModelFactory": f"{_MODELS}.clay_model_factory",
    "Clay1_5ModelFactory": f"{_MODELS}.clay1_5_model_factory",
}
