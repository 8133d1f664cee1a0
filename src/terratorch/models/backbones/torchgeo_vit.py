"""ViT-Small/16 encoders with torchgeo's SSL4EO-S12 / SSL4EO-L weights.

Each registry name (TerraTorch 1.2's, e.g. ``ssl4eos12_vit_small_patch16_224_sentinel2_all_dino``)
builds timm's ``vit_small_patch16_224`` (torchgeo's architecture, so state dicts are the published
files' layout) for ``len(model_bands)`` channels, wrapped in :class:`ViTEncoderWrapper`, which returns
the token maps of the blocks (``[B, 384, H/16, W/16]``). Weights are found and band-fitted as for the
ResNets (:mod:`terratorch.models.backbones.torchgeo_weights`); a position embedding of another grid
(``img_size`` other than 224) is resampled instead of failing to load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from terratorch.models.backbones.torchgeo_weights import load_torchgeo_weights, select_indices
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = ["VIT_VARIANTS", "ViTEncoderWrapper"]

vit_s_meta = {"patch_size": 16, "embed_dim": 384, "depth": 12, "num_heads": 6}

#: Registry name → default torchgeo weights.
VIT_VARIANTS: dict[str, str] = {
    "ssl4eol_vit_small_patch16_224_landsat_tm_toa_moco": "ViTSmall16_Weights.LANDSAT_TM_TOA_MOCO",
    "ssl4eol_vit_small_patch16_224_landsat_tm_toa_simclr": "ViTSmall16_Weights.LANDSAT_TM_TOA_SIMCLR",
    "ssl4eol_vit_small_patch16_224_landsat_etm_toa_moco": "ViTSmall16_Weights.LANDSAT_ETM_TOA_MOCO",
    "ssl4eol_vit_small_patch16_224_landsat_etm_toa_simclr": "ViTSmall16_Weights.LANDSAT_ETM_TOA_SIMCLR",
    "ssl4eol_vit_small_patch16_224_landsat_etm_sr_moco": "ViTSmall16_Weights.LANDSAT_ETM_SR_MOCO",
    "ssl4eol_vit_small_patch16_224_landsat_etm_sr_simclr": "ViTSmall16_Weights.LANDSAT_ETM_SR_SIMCLR",
    "ssl4eol_vit_small_patch16_224_landsat_oli_tirs_toa_simclr": (
        "ViTSmall16_Weights.LANDSAT_OLI_TIRS_TOA_SIMCLR"
    ),
    "ssl4eol_vit_small_patch16_224_landsat_oli_sr_moco": "ViTSmall16_Weights.LANDSAT_OLI_SR_MOCO",
    "ssl4eol_vit_small_patch16_224_landsat_oli_sr_simclr": "ViTSmall16_Weights.LANDSAT_OLI_SR_SIMCLR",
    "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino": "ViTSmall16_Weights.SENTINEL2_ALL_DINO",
    "ssl4eos12_vit_small_patch16_224_sentinel2_all_moco": "ViTSmall16_Weights.SENTINEL2_ALL_MOCO",
}


class ViTEncoderWrapper(nn.Module):
    """A timm ViT returning one ``[B, C, H', W']`` token map per chosen block.

    Args:
        vit_model: The timm ViT (its keys are those of torchgeo's weight files).
        vit_meta: Architecture facts (patch size, width, depth, heads).
        weights: The torchgeo weights it was built for (kept for reference).
        out_indices: Blocks to return; default every block, as TerraTorch 1.2 (which ignored this
            argument) always did.
    """

    def __init__(
        self,
        vit_model: nn.Module,
        vit_meta: dict[str, Any],
        weights: Any = None,
        out_indices: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.vit_model = vit_model
        self.vit_meta = vit_meta
        self.weights = weights
        channels = [info["num_chs"] for info in vit_model.feature_info]
        self.out_indices = select_indices(len(channels), out_indices, range(len(channels)))
        self.out_channels = [channels[i] for i in self.out_indices]

    def forward(self, x: Tensor, **kwargs: Any) -> list[Tensor]:
        """Token maps of ``x`` (``[B, C, H, W]``) after the chosen blocks, prefix tokens dropped."""
        return self.vit_model.forward_intermediates(x, indices=self.out_indices, intermediates_only=True)


def _resample_pos_embed(model: nn.Module) -> Any:
    """A state-dict hook fitting a checkpoint's position embedding to the model's patch grid."""

    def hook(state: dict[str, Tensor]) -> dict[str, Tensor]:
        target = model.state_dict().get("pos_embed")
        given = state.get("pos_embed")
        if target is not None and given is not None and given.shape != target.shape:
            from timm.layers import resample_abs_pos_embed

            prefix = 0 if getattr(model, "no_embed_class", False) else model.num_prefix_tokens
            state["pos_embed"] = resample_abs_pos_embed(
                given, list(model.patch_embed.grid_size), num_prefix_tokens=prefix
            )
        return state

    return hook


def _build_vit(
    name: str,
    model_bands: Sequence[object],
    pretrained: bool,
    ckpt_data: str | None,
    weights: Any,
    out_indices: Sequence[int] | None,
    **kwargs: Any,
) -> ViTEncoderWrapper:
    import timm

    allow_partial = bool(kwargs.pop("allow_partial", False))
    kwargs.setdefault("in_chans", len(model_bands))
    # torchgeo's vit_small_patch16_224(weights=None, **kwargs) is exactly this timm model
    model = timm.create_model("vit_small_patch16_224", **kwargs)
    if pretrained:
        load_torchgeo_weights(
            model,
            model_bands=model_bands,
            ckpt_data=ckpt_data,
            weights=weights,
            first_layer="patch_embed.proj.weight",
            classifier="head.",
            wrapper_attr="vit_model",
            model_name=name,
            allow_partial=allow_partial,
            state_dict_hook=_resample_pos_embed(model),
        )
    return ViTEncoderWrapper(model, dict(vit_s_meta), weights, out_indices)


def _register(name: str, default_weights: str) -> None:
    def build(
        model_bands: Sequence[object],
        pretrained: bool = False,
        ckpt_data: str | None = None,
        weights: Any = default_weights,
        out_indices: Sequence[int] | None = None,
        **kwargs: Any,
    ) -> ViTEncoderWrapper:
        return _build_vit(name, model_bands, pretrained, ckpt_data, weights, out_indices, **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"ViT-Small/16 encoder for torchgeo's ``{default_weights}`` weights.\n\n"
        "Args:\n"
        "    model_bands: Input bands in channel order (TerraTorch or the weights' own names).\n"
        "    pretrained: Load weights: ``ckpt_data``, else the cached file of ``weights``.\n"
        "    ckpt_data: A local weights file (torchgeo layout) or an ``https://hf.co/...`` address.\n"
        "    weights: torchgeo weights (enum member or ``'Enum.MEMBER'``) naming the file and its bands.\n"
        "    out_indices: Blocks to return (default all twelve).\n"
        "    **kwargs: Passed to ``timm.create_model`` (e.g. ``img_size``; ``allow_partial=True``)."
    )
    metadata = {"family": "torchgeo_vit", "arch": "vit_small_patch16_224", "weights": default_weights}
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=metadata)


for _name, _weights in VIT_VARIANTS.items():
    _register(_name, _weights)
