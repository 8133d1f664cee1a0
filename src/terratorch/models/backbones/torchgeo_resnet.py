"""ResNet-18/50/152 encoders with torchgeo's remote-sensing weights (SSL4EO-S12/L, SeCo, fMoW, Satlas).

Each registry name (TerraTorch 1.2's, e.g. ``ssl4eos12_resnet50_sentinel2_all_moco``) builds timm's
ResNet (the architecture torchgeo uses, so state dicts are the published files' layout) for
``len(model_bands)`` input channels and wraps it in :class:`ResNetEncoderWrapper`, which returns the
feature maps chosen by ``out_indices`` (0: stem at stride 2, 1-4: the four stages).

``pretrained=True`` loads ``ckpt_data`` (a local file or ``https://hf.co/...`` address), else the
default ``weights``' file from the local torch hub / Hugging Face caches; the first convolution is
rebuilt for ``model_bands`` (see :mod:`terratorch.models.backbones.torchgeo_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from terratorch.models.backbones.torchgeo_weights import load_torchgeo_weights, select_indices
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = ["RESNET_VARIANTS", "ResNetEncoderWrapper"]

resnet18_meta = {"layers": (2, 2, 2, 2)}
resnet50_meta = {"layers": (3, 4, 6, 3)}
resnet152_meta = {"layers": (3, 8, 36, 3)}
_META = {"resnet18": resnet18_meta, "resnet50": resnet50_meta, "resnet152": resnet152_meta}

#: Registry name → default torchgeo weights (the architecture is the enum's: ``ResNet50_Weights``).
RESNET_VARIANTS: dict[str, str] = {
    "ssl4eol_resnet18_landsat_tm_toa_moco": "ResNet18_Weights.LANDSAT_TM_TOA_MOCO",
    "ssl4eol_resnet18_landsat_tm_toa_simclr": "ResNet18_Weights.LANDSAT_TM_TOA_SIMCLR",
    "ssl4eol_resnet18_landsat_etm_toa_moco": "ResNet18_Weights.LANDSAT_ETM_TOA_MOCO",
    "ssl4eol_resnet18_landsat_etm_toa_simclr": "ResNet18_Weights.LANDSAT_ETM_TOA_SIMCLR",
    "ssl4eol_resnet18_landsat_etm_sr_moco": "ResNet18_Weights.LANDSAT_ETM_SR_MOCO",
    "ssl4eol_resnet18_landsat_etm_sr_simclr": "ResNet18_Weights.LANDSAT_ETM_SR_SIMCLR",
    "ssl4eol_resnet18_landsat_oli_tirs_toa_moco": "ResNet18_Weights.LANDSAT_OLI_TIRS_TOA_MOCO",
    "ssl4eol_resnet18_landsat_oli_tirs_toa_simclr": "ResNet18_Weights.LANDSAT_OLI_TIRS_TOA_SIMCLR",
    "ssl4eol_resnet18_landsat_oli_sr_moco": "ResNet18_Weights.LANDSAT_OLI_SR_MOCO",
    "ssl4eol_resnet18_landsat_oli_sr_simclr": "ResNet18_Weights.LANDSAT_OLI_SR_SIMCLR",
    "ssl4eos12_resnet18_sentinel2_all_moco": "ResNet18_Weights.SENTINEL2_ALL_MOCO",
    "ssl4eos12_resnet18_sentinel2_rgb_moco": "ResNet18_Weights.SENTINEL2_RGB_MOCO",
    "seco_resnet18_sentinel2_rgb_seco": "ResNet18_Weights.SENTINEL2_RGB_SECO",
    "fmow_resnet50_fmow_rgb_gassl": "ResNet50_Weights.FMOW_RGB_GASSL",
    "ssl4eol_resnet50_landsat_tm_toa_moco": "ResNet50_Weights.LANDSAT_TM_TOA_MOCO",
    "ssl4eol_resnet50_landsat_tm_toa_simclr": "ResNet50_Weights.LANDSAT_TM_TOA_SIMCLR",
    "ssl4eol_resnet50_landsat_etm_toa_moco": "ResNet50_Weights.LANDSAT_ETM_TOA_MOCO",
    "ssl4eol_resnet50_landsat_etm_toa_simclr": "ResNet50_Weights.LANDSAT_ETM_TOA_SIMCLR",
    "ssl4eol_resnet50_landsat_etm_sr_moco": "ResNet50_Weights.LANDSAT_ETM_SR_MOCO",
    "ssl4eol_resnet50_landsat_etm_sr_simclr": "ResNet50_Weights.LANDSAT_ETM_SR_SIMCLR",
    "ssl4eol_resnet50_landsat_oli_tirs_toa_moco": "ResNet50_Weights.LANDSAT_OLI_TIRS_TOA_MOCO",
    "ssl4eol_resnet50_landsat_oli_tirs_toa_simclr": "ResNet50_Weights.LANDSAT_OLI_TIRS_TOA_SIMCLR",
    "ssl4eol_resnet50_landsat_oli_sr_moco": "ResNet50_Weights.LANDSAT_OLI_SR_MOCO",
    "ssl4eol_resnet50_landsat_oli_sr_simclr": "ResNet50_Weights.LANDSAT_OLI_SR_SIMCLR",
    "ssl4eos12_resnet50_sentinel1_all_decur": "ResNet50_Weights.SENTINEL1_ALL_DECUR",
    "ssl4eos12_resnet50_sentinel1_all_moco": "ResNet50_Weights.SENTINEL1_ALL_MOCO",
    "ssl4eos12_resnet50_sentinel2_all_decur": "ResNet50_Weights.SENTINEL2_ALL_DECUR",
    "ssl4eos12_resnet50_sentinel2_all_dino": "ResNet50_Weights.SENTINEL2_ALL_DINO",
    "ssl4eos12_resnet50_sentinel2_all_moco": "ResNet50_Weights.SENTINEL2_ALL_MOCO",
    "ssl4eos12_resnet50_sentinel2_all_softcon": "ResNet50_Weights.SENTINEL2_ALL_SOFTCON",
    "ssl4eos12_resnet50_sentinel2_rgb_moco": "ResNet50_Weights.SENTINEL2_RGB_MOCO",
    "seco_resnet50_sentinel2_rgb_seco": "ResNet50_Weights.SENTINEL2_RGB_SECO",
    "satlas_resnet50_sentinel2_mi_ms_satlas": "ResNet50_Weights.SENTINEL2_MI_MS_SATLAS",
    "satlas_resnet50_sentinel2_mi_rgb_satlas": "ResNet50_Weights.SENTINEL2_MI_RGB_SATLAS",
    "satlas_resnet50_sentinel2_si_ms_satlas": "ResNet50_Weights.SENTINEL2_SI_MS_SATLAS",
    "satlas_resnet50_sentinel2_si_rgb_satlas": "ResNet50_Weights.SENTINEL2_SI_RGB_SATLAS",
    "satlas_resnet152_sentinel2_mi_ms": "ResNet152_Weights.SENTINEL2_MI_MS_SATLAS",
    "satlas_resnet152_sentinel2_mi_rgb": "ResNet152_Weights.SENTINEL2_MI_RGB_SATLAS",
    "satlas_resnet152_sentinel2_si_ms_satlas": "ResNet152_Weights.SENTINEL2_SI_MS_SATLAS",
    "satlas_resnet152_sentinel2_si_rgb_satlas": "ResNet152_Weights.SENTINEL2_SI_RGB_SATLAS",
}


class ResNetEncoderWrapper(nn.Module):
    """A timm ResNet returning a list of feature maps (NCHW), in stage order.

    Args:
        resnet_model: The timm ResNet (its keys are those of torchgeo's weight files).
        resnet_meta: Architecture facts (``layers``); ``original_out_channels`` is added.
        weights: The torchgeo weights it was built for (kept for reference).
        out_indices: Features to return among the stem (0) and the four stages (1-4); default
            ``[-1]``, the last. Negative indices count from the end (TerraTorch 1.2 only knew ``-1``).
    """

    def __init__(
        self,
        resnet_model: nn.Module,
        resnet_meta: dict[str, Any],
        weights: Any = None,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.resnet_model = resnet_model
        self.resnet_meta = resnet_meta
        self.weights = weights
        channels = [info["num_chs"] for info in resnet_model.feature_info]
        self.resnet_meta["original_out_channels"] = channels
        self.out_indices = list(out_indices) if out_indices else [-1]
        self._selected = select_indices(len(channels), self.out_indices, [-1])
        self.out_channels = [channels[i] for i in self._selected]

    def forward(self, x: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        """Feature maps of ``x`` (``[B, C, H, W]``) at the chosen positions."""
        features = self.resnet_model.forward_intermediates(x, intermediates_only=True)
        return [features[i] for i in self._selected]


def _build_resnet(
    name: str,
    arch: str,
    model_bands: Sequence[object],
    pretrained: bool,
    ckpt_data: str | None,
    weights: Any,
    out_indices: Sequence[int] | None,
    **kwargs: Any,
) -> ResNetEncoderWrapper:
    import timm

    allow_partial = bool(kwargs.pop("allow_partial", False))
    kwargs.setdefault("in_chans", len(model_bands))
    # torchgeo's resnet18/50/152(weights=None, **kwargs) is exactly this timm model
    model = timm.create_model(arch, **kwargs)
    if pretrained:
        load_torchgeo_weights(
            model,
            model_bands=model_bands,
            ckpt_data=ckpt_data,
            weights=weights,
            first_layer="conv1.weight",
            classifier="fc.",
            wrapper_attr="resnet_model",
            model_name=name,
            allow_partial=allow_partial,
        )
    return ResNetEncoderWrapper(model, dict(_META[arch]), weights, out_indices)


def _register(name: str, default_weights: str) -> None:
    arch = "resnet" + default_weights.split("_", 1)[0].removeprefix("ResNet")

    def build(
        model_bands: Sequence[object],
        pretrained: bool = False,
        ckpt_data: str | None = None,
        weights: Any = default_weights,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> ResNetEncoderWrapper:
        return _build_resnet(name, arch, model_bands, pretrained, ckpt_data, weights, out_indices, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"{arch} encoder for torchgeo's ``{default_weights}`` weights.\n\n"
        "Args:\n"
        "    model_bands: Input bands in channel order (TerraTorch names such as ``RED``, or the\n"
        "        weights' own names such as ``B04``); ``in_chans`` defaults to their number.\n"
        "    pretrained: Load weights: ``ckpt_data``, else the cached file of ``weights``.\n"
        "    ckpt_data: A local weights file (torchgeo layout) or an ``https://hf.co/...`` address.\n"
        "    weights: torchgeo weights (enum member or ``'Enum.MEMBER'``) naming the file and its bands.\n"
        "    out_indices: Features to return (0 stem, 1-4 stages; default the last).\n"
        "    **kwargs: Passed to ``timm.create_model`` (``allow_partial=True`` tolerates missing keys)."
    )
    metadata = {"family": "torchgeo_resnet", "arch": arch, "weights": default_weights}
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=metadata)


for _name, _weights in RESNET_VARIANTS.items():
    _register(_name, _weights)
