"""TerraMind encoders in ``TERRATORCH_BACKBONE_REGISTRY``: ``terramind_v1_{tiny,small,base,large}``
and ``terramind_v01_base``, with the builder options of TerraTorch 1.2.

Each builder returns a :class:`~terratorch.models.backbones.terramind.vit.TerraMindViT` of the
published size (:data:`terramind_cfgs`) and accepts ``modalities``, ``merge_method``, ``bands``,
``pretrained``, ``ckpt_path``, ``pretrained_bands`` and any other :class:`TerraMindViT` argument
(``img_size``, ``patch_size``, ``drop_path_rate``, ``num_register_tokens``, ...).

Weights: a ``ckpt_path`` is loaded whenever given (as in 1.2, also without ``pretrained``); else
``pretrained=True`` reads the published file (:data:`pretrained_weights`) from the local Hugging
Face cache through :func:`terratorch.models.weights.resolve_weights_file`. Then ``bands`` rebuild the
patch embeddings band by band (:func:`select_modality_patch_embed_weights`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from terratorch.models.backbones.terramind.layers import terramind_norm
from terratorch.models.backbones.terramind.modalities import PRETRAINED_BANDS, V01_PRETRAINED_BANDS
from terratorch.models.backbones.terramind.statistics import (
    v01_pretraining_mean,
    v01_pretraining_std,
    v1_pretraining_mean,
    v1_pretraining_std,
)
from terratorch.models.backbones.terramind.vit import TerraMindViT
from terratorch.models.weights import (
    BandMismatchError,
    adapt_state_dict_keys,
    band_key,
    load_state_dict_into,
    read_checkpoint,
    remap_band_channels,
    resolve_weights_file,
)
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

__all__ = [
    "BACKBONE_VARIANTS",
    "PRETRAINED_BANDS",
    "TerraMindViT",
    "backbone_metadata",
    "build_terramind_vit",
    "checkpoint_filter_fn",
    "pretrained_weights",
    "select_modality_patch_embed_weights",
    "terramind_cfgs",
    "terramind_weights_file",
    "v01_pretraining_mean",
    "v01_pretraining_std",
    "v1_pretraining_mean",
    "v1_pretraining_std",
]

logger = logging.getLogger(__name__)


def _size(depth: int, dim: int, heads: int, decoder_depth: int, large_style: bool) -> dict[str, Any]:
    """Architecture of one size; base/large use bias-free SwiGLU blocks, tiny/small biased GELU ones."""
    return {
        "encoder_depth": depth,
        "decoder_depth": decoder_depth,
        "dim": dim,
        "num_heads": heads,
        "mlp_ratio": 4,
        "qkv_bias": not large_style,
        "proj_bias": not large_style,
        "mlp_bias": not large_style,
        "num_register_tokens": 0,
        "act_layer": nn.SiLU if large_style else nn.GELU,
        "gated_mlp": large_style,
    }


#: Published architecture of each variant (``decoder_depth`` is used by the TiM/encoder-decoder models).
terramind_cfgs: dict[str, dict[str, Any]] = {
    "terramind_v1_tiny": _size(12, 192, 3, 4, large_style=False),
    "terramind_v1_small": _size(12, 384, 6, 6, large_style=False),
    "terramind_v1_base": _size(12, 768, 12, 12, large_style=True),
    "terramind_v1_large": _size(24, 1024, 16, 24, large_style=True),
    "terramind_v01_base": _size(12, 768, 12, 12, large_style=True),
}

#: Hugging Face location of each variant's published weights.
pretrained_weights: dict[str, dict[str, str]] = {
    "terramind_v01_base": {
        "hf_hub_id": "FAST-EO/TerraMind-0.1-base",
        "hf_hub_filename": "TerraMind_v01_base.pt",
    },
    "terramind_v1_tiny": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-tiny",
        "hf_hub_filename": "TerraMind_v1_tiny.pt",
    },
    "terramind_v1_small": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-small",
        "hf_hub_filename": "TerraMind_v1_small.pt",
    },
    "terramind_v1_base": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-base",
        "hf_hub_filename": "TerraMind_v1_base.pt",
    },
    "terramind_v1_large": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-large",
        "hf_hub_filename": "TerraMind_v1_large.pt",
    },
}

#: Registered encoder names.
BACKBONE_VARIANTS: tuple[str, ...] = tuple(terramind_cfgs)


def _pretrained_bands(variant: str) -> dict[str, list[str]]:
    return V01_PRETRAINED_BANDS if variant.startswith("terramind_v01") else PRETRAINED_BANDS


def backbone_metadata(variant: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``variant`` (mirrored in ``terratorch.registry.manifest``)."""
    cfg = terramind_cfgs[variant]
    return {
        "family": "terramind",
        "embed_dim": cfg["dim"],
        "depth": cfg["encoder_depth"],
        "num_heads": cfg["num_heads"],
        "patch_size": 16,
        "out_channels": [cfg["dim"]] * cfg["encoder_depth"],
        "modalities": sorted(_pretrained_bands(variant)),
        **pretrained_weights[variant],
    }


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------
def terramind_weights_file(variant: str, ckpt_path: str | Path | None = None) -> Path:
    """The local file to load for ``variant``: ``ckpt_path``, else the published file in the HF cache.

    Raises:
        PretrainedWeightsNotFoundError: Not found; the message names the repository, the file and
            ``ckpt_path``.
    """
    entry = pretrained_weights[variant]
    return resolve_weights_file(
        ckpt_path,
        hf_repo_id=entry["hf_hub_id"],
        hf_filenames=[entry["hf_hub_filename"]],
        model_name=variant,
    )


def checkpoint_filter_fn(state_dict: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Keep the tensors of a published (encoder-decoder) file that ``model`` has, with its shapes.

    Decoder and unused-modality tensors are dropped; a fixed sin-cos ``pos_emb`` of another size is
    replaced by the model's own; other shape mismatches are skipped with a warning (as in 1.2).
    """
    target = model.state_dict()
    clean: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key not in target:
            continue
        if value.shape == target[key].shape:
            clean[key] = value
        elif key.endswith("pos_emb"):
            clean[key] = target[key]
        else:
            warnings.warn(
                f"TerraMind weights: {key} has shape {list(value.shape)} in the file but "
                f"{list(target[key].shape)} in the model; it keeps its fresh initialisation.",
                UserWarning,
                stacklevel=2,
            )
    return clean


def _load(model: TerraMindViT, path: Path, published: bool) -> None:
    state = read_checkpoint(path, weights_only=True)
    if published:
        state = checkpoint_filter_fn(state, model)
    else:  # a fine-tuned file: fit wrapper prefixes (``model.encoder.``), then the sin-cos tables
        target = model.state_dict()
        state = adapt_state_dict_keys(state, target)
        for key, value in state.items():
            if key.endswith("pos_emb") and key in target and value.shape != target[key].shape:
                state[key] = target[key]
    load_state_dict_into(
        model, state, source=repr(str(path)), allow_partial=True, ignore_missing=("tokenizer.",)
    )


def select_modality_patch_embed_weights(
    model: TerraMindViT, bands: Mapping[str, Sequence[object]], pretrained_bands: Mapping[str, Sequence[str]]
) -> TerraMindViT:
    """Rebuild the patch embedding of each modality in ``bands`` for those bands, copying pretrained ones.

    A band found in ``pretrained_bands`` of the modality keeps its pretrained weights (at its new
    position); other bands are new and start from a fresh ``nn.Linear`` initialisation, as in 1.2.
    Modalities without pretrained bands (new or tokenised ones) are left as they are.

    Raises:
        ValueError: A ``bands`` key is not a configured modality.
        BandMismatchError: None of a modality's bands is pretrained (likely misspelt names).
    """
    for name, mod_bands in bands.items():
        user = model._input_name(str(name))
        if user is None:
            raise ValueError(
                f"bands are given for {name!r}, which is not one of this encoder's modalities "
                f"{model.modalities}."
            )
        key = model.mod_name_mapping[user]
        if key not in pretrained_bands:
            logger.info("No pretrained bands for modality %s; its patch embedding is kept.", key)
            continue
        embedding = model.encoder_embeddings[key]
        known = {band_key(b) for b in pretrained_bands[key]}
        if not any(band_key(b) in known for b in mod_bands):
            raise BandMismatchError(
                f"None of the bands {[str(b) for b in mod_bands]} given for {name!r} ({key}) is a pretrained "
                f"band of this modality: {list(pretrained_bands[key])}. Check the names; for entirely new "
                f"data add a new modality instead, e.g. modalities: [{{'my_data': {len(mod_bands)}}}]."
            )
        pixels = embedding.patch_size[0] * embedding.patch_size[1]
        old = embedding.proj.weight.detach()
        proj = nn.Linear(pixels * len(mod_bands), embedding.dim_tokens, bias=False)
        fresh = proj.weight.detach()
        weight = remap_band_channels(
            old.reshape(old.shape[0], pixels, -1),
            fresh.reshape(fresh.shape[0], pixels, len(mod_bands)),
            list(pretrained_bands[key]),
            list(mod_bands),
            dim=2,
            name=f"encoder_embeddings.{key}.proj.weight",
            source="the pretrained weights",
        )
        proj.weight.data.copy_(weight.reshape(fresh.shape))
        embedding.proj = proj.to(old.device)
        embedding.num_channels = len(mod_bands)
    return model


# ----------------------------------------------------------------------------------------------
# builders
# ----------------------------------------------------------------------------------------------
def _tokenizer_factory(name: str) -> Callable[..., nn.Module]:
    def build(pretrained: bool = False) -> nn.Module:
        from terratorch.models.backbones.terramind.tokenizer.register import build_for_terramind

        return build_for_terramind(name, pretrained=pretrained)

    build.__name__ = build.__qualname__ = name
    return build


#: Tokenizers of raw inputs of tokenised modalities in TerraMind v1 models (the reference's
#: ``tokenizer_dict["v1"]`` minus those not provided: S2L2A, S1GRD, S1RTC, DEM (diffusion) and coords).
V1_TOKENIZERS: dict[str, Callable[..., nn.Module]] = {
    "tok_lulc@224": _tokenizer_factory("terramind_v1_tokenizer_lulc"),
    "tok_ndvi@224": _tokenizer_factory("terramind_v1_tokenizer_ndvi"),
}


def build_terramind_vit(
    variant: str,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    bands: Mapping[str, Sequence[object]] | None = None,
    pretrained_bands: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> TerraMindViT:
    """Build the TerraMind encoder ``variant``, load its weights and fit the patch embeddings to ``bands``.

    Args:
        variant: A key of :data:`terramind_cfgs`.
        pretrained: Load the published weights (from the local HF cache) when no ``ckpt_path`` is given.
        ckpt_path: A local weights file (published layout or a fine-tuned encoder); loaded when given.
        bands: ``{modality: [band names]}`` input bands per modality (subsets, reorderings, new bands).
        pretrained_bands: Bands of the weights per canonical modality key (default: the published ones).
        **kwargs: :class:`TerraMindViT` arguments (``modalities``, ``merge_method``, ``img_size``, ...).
    """
    if variant not in terramind_cfgs:
        raise ValueError(f"Unknown TerraMind variant {variant!r}; known: {sorted(terramind_cfgs)}.")
    cfg = {k: v for k, v in terramind_cfgs[variant].items() if k != "decoder_depth"}
    cfg.update(kwargs)
    cfg.setdefault("norm_layer", terramind_norm)
    if variant.startswith("terramind_v1_"):
        cfg.setdefault("tokenizer_dict", V1_TOKENIZERS)
    if bands is not None and not isinstance(bands, Mapping):
        raise TypeError(
            f"TerraMind bands are a dict {{modality: [band names]}}, got {type(bands).__name__}: {bands!r}."
        )
    model = TerraMindViT(pretrained=pretrained, **cfg)
    if ckpt_path is not None:
        _load(model, terramind_weights_file(variant, ckpt_path), published=False)
    elif pretrained:
        if variant.startswith("terramind_v01") and not os.getenv("HF_TOKEN"):
            warnings.warn(
                "TerraMind v0.1 weights need a HF_TOKEN with access to them.", UserWarning, stacklevel=2
            )
        _load(model, terramind_weights_file(variant), published=True)
    if bands is not None:
        select_modality_patch_embed_weights(model, bands, pretrained_bands or _pretrained_bands(variant))
    return model


def _register_backbone(variant: str) -> None:
    def build(
        pretrained: bool = False,
        ckpt_path: str | None = None,
        bands: dict[str, list[str]] | None = None,
        **kwargs: Any,
    ) -> TerraMindViT:
        return build_terramind_vit(variant, pretrained=pretrained, ckpt_path=ckpt_path, bands=bands, **kwargs)

    cfg = terramind_cfgs[variant]
    build.__name__ = build.__qualname__ = variant
    build.__module__ = __name__
    build.__doc__ = (
        f"TerraMind encoder ``{variant}`` (dim {cfg['dim']}, depth {cfg['encoder_depth']}). Options: "
        "``modalities``, ``merge_method``, ``bands``, ``pretrained``, ``ckpt_path`` and any "
        ":class:`TerraMindViT` argument (see :func:`build_terramind_vit`)."
    )
    globals()[variant] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=backbone_metadata(variant))


for _variant in BACKBONE_VARIANTS:
    _register_backbone(_variant)
