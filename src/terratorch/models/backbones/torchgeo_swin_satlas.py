"""Swin-V2 Tiny/Base encoders with torchgeo's SatlasPretrain weights (Sentinel-1/2, Landsat, NAIP).

Each registry name (TerraTorch 1.2's, e.g. ``satlas_swin_b_sentinel2_si_ms``) builds torchvision's
``swin_v2_t`` / ``swin_v2_b`` with its patch embedding replaced for ``len(model_bands)`` channels, as
torchgeo does, so state dicts are the published files' layout. :class:`SwinEncoderWrapper` returns
the outputs of the chosen entries of ``features`` (patch embedding, stage, merge, stage, ...) in
torchvision's channels-last layout ``[B, H', W', C]``, as TerraTorch 1.2 did. Weights are found and
band-fitted as for the ResNets (:mod:`terratorch.models.backbones.torchgeo_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from terratorch.models.backbones.torchgeo_weights import load_torchgeo_weights, select_indices
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = ["SWIN_VARIANTS", "SwinEncoderWrapper"]

swin_v2_t_meta = {
    "patch_size": [4, 4],
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": [8, 8],
    "stochastic_depth_prob": 0.2,
}
swin_v2_b_meta = {
    "patch_size": [4, 4],
    "embed_dim": 128,
    "depths": [2, 2, 18, 2],
    "num_heads": [4, 8, 16, 32],
    "window_size": [8, 8],
    "stochastic_depth_prob": 0.5,
}
_META = {"swin_v2_t": swin_v2_t_meta, "swin_v2_b": swin_v2_b_meta}

#: Registry name → default torchgeo weights (TerraTorch 1.2's pairs, ``landsat_mi_rgb`` included).
SWIN_VARIANTS: dict[str, str] = {
    "satlas_swin_t_sentinel2_mi_ms": "Swin_V2_T_Weights.SENTINEL2_MI_MS_SATLAS",
    "satlas_swin_t_sentinel2_mi_rgb": "Swin_V2_T_Weights.SENTINEL2_MI_RGB_SATLAS",
    "satlas_swin_t_sentinel2_si_ms": "Swin_V2_T_Weights.SENTINEL2_SI_MS_SATLAS",
    "satlas_swin_t_sentinel2_si_rgb": "Swin_V2_T_Weights.SENTINEL2_SI_RGB_SATLAS",
    "satlas_swin_b_sentinel2_mi_ms": "Swin_V2_B_Weights.SENTINEL2_MI_MS_SATLAS",
    "satlas_swin_b_sentinel2_mi_rgb": "Swin_V2_B_Weights.SENTINEL2_MI_RGB_SATLAS",
    "satlas_swin_b_sentinel2_si_ms": "Swin_V2_B_Weights.SENTINEL2_SI_MS_SATLAS",
    "satlas_swin_b_sentinel2_si_rgb": "Swin_V2_B_Weights.SENTINEL2_SI_RGB_SATLAS",
    "satlas_swin_b_naip_mi_rgb": "Swin_V2_B_Weights.NAIP_RGB_MI_SATLAS",
    "satlas_swin_b_naip_si_rgb": "Swin_V2_B_Weights.NAIP_RGB_SI_SATLAS",
    "satlas_swin_b_landsat_mi_ms": "Swin_V2_B_Weights.LANDSAT_MI_SATLAS",
    "satlas_swin_b_landsat_mi_rgb": "Swin_V2_B_Weights.LANDSAT_SI_SATLAS",
    "satlas_swin_b_sentinel1_mi": "Swin_V2_B_Weights.SENTINEL1_MI_SATLAS",
    "satlas_swin_b_sentinel1_si": "Swin_V2_B_Weights.SENTINEL1_SI_SATLAS",
}


class SwinEncoderWrapper(nn.Module):
    """A torchvision Swin-V2 returning a tuple of channels-last feature maps.

    Args:
        swin_model: The torchvision model (its keys are those of torchgeo's weight files).
        swin_meta: Architecture facts (``embed_dim``, ``depths``, ...).
        weights: The torchgeo weights it was built for (kept for reference).
        out_indices: Entries of ``swin_model.features`` to return (even: patch embedding / merges,
            odd: stages); default ``[-1]``, the last stage.
    """

    def __init__(
        self,
        swin_model: nn.Module,
        swin_meta: dict[str, Any],
        weights: Any = None,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.swin_model = swin_model
        self.weights = weights
        self.out_indices = list(out_indices) if out_indices else [-1]
        # each stage's width appears twice: after the embedding/merge and after the stage's blocks
        channels = [swin_meta["embed_dim"] * 2**i for i in range(len(swin_meta["depths"])) for _ in range(2)]
        self._selected = select_indices(len(channels), self.out_indices, [-1])
        self.out_channels = [channels[i] for i in self._selected]

    def forward(self, x: Tensor, **kwargs: Any) -> tuple[Tensor, ...]:
        """Channels-last maps of ``x`` (``[B, C, H, W]``) after the chosen ``features`` entries."""
        outs = []
        last = self._selected[-1]
        for i, layer in enumerate(self.swin_model.features):
            x = layer(x)
            if i in self._selected:
                outs.append(x)
            if i == last:
                break
        return tuple(outs)


def _build_swin(
    name: str,
    arch: str,
    model_bands: Sequence[object],
    pretrained: bool,
    ckpt_data: str | None,
    weights: Any,
    out_indices: Sequence[int] | None,
    **kwargs: Any,
) -> SwinEncoderWrapper:
    import torchvision.models

    allow_partial = bool(kwargs.pop("allow_partial", False))
    in_chans = kwargs.pop("in_chans", len(model_bands))
    meta = _META[arch]
    model = getattr(torchvision.models, arch)(**kwargs)
    # torchgeo swaps the patch embedding for one with the weights' channel count
    model.features[0][0] = nn.Conv2d(
        in_chans, meta["embed_dim"], kernel_size=meta["patch_size"], stride=meta["patch_size"]
    )
    if pretrained:
        load_torchgeo_weights(
            model,
            model_bands=model_bands,
            ckpt_data=ckpt_data,
            weights=weights,
            first_layer="features.0.0.weight",
            classifier="head.",
            wrapper_attr="swin_model",
            model_name=name,
            allow_partial=allow_partial,
        )
    return SwinEncoderWrapper(model, dict(meta), weights, out_indices)


def _register(name: str, default_weights: str) -> None:
    arch = "swin_v2_" + default_weights.split("_")[2].lower()

    def build(
        model_bands: Sequence[object],
        pretrained: bool = False,
        ckpt_data: str | None = None,
        weights: Any = default_weights,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> SwinEncoderWrapper:
        return _build_swin(name, arch, model_bands, pretrained, ckpt_data, weights, out_indices, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"torchvision {arch} encoder for torchgeo's ``{default_weights}`` weights.\n\n"
        "Args:\n"
        "    model_bands: Input bands in channel order (TerraTorch or the weights' own names).\n"
        "    pretrained: Load weights: ``ckpt_data``, else the cached file of ``weights``.\n"
        "    ckpt_data: A local weights file (torchgeo layout) or an ``https://hf.co/...`` address.\n"
        "    weights: torchgeo weights (enum member or ``'Enum.MEMBER'``) naming the file and its bands.\n"
        "    out_indices: ``features`` entries to return (0-7; default the last), channels-last.\n"
        "    **kwargs: Passed to torchvision's constructor (``in_chans``; ``allow_partial=True``)."
    )
    metadata = {"family": "torchgeo_swin_satlas", "arch": arch, "weights": default_weights}
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=metadata)


for _name, _weights in SWIN_VARIANTS.items():
    _register(_name, _weights)
