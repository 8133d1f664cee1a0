"""Prithvi EO backbones and masked autoencoders as registry builders (NASA/IBM).

``prithvi_eo_tiny``, ``prithvi_eo_v1_100``, ``prithvi_eo_v2_{tiny_tl,100_tl,300,300_tl,600,600_tl}`` are
registered in ``TERRATORCH_BACKBONE_REGISTRY`` and return a :class:`PrithviViT` whose ``forward``
returns the block outputs picked by ``out_indices``; the ``<variant>_mae`` builders in
``TERRATORCH_FULL_MODEL_REGISTRY`` return the whole :class:`PrithviMAE`. Builders take the options
of TerraTorch 1.2 (``pretrained``, ``bands``, ``ckpt_path``, ``pretrained_bands``, ``num_frames``,
``encoder_only``, plus any :class:`PrithviViT` option such as ``img_size``, ``drop_path``,
``coords_encoding``, ``out_indices``).

Weights load from a local ``ckpt_path`` (with ``pretrained=True``) or, for ``pretrained=True``
alone, from the published file in the local Hugging Face cache. Both published layouts are read:
the flat encoder/decoder keys of Prithvi EO 1.0 and the ``encoder.``/``decoder.`` keys of 2.0.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from terratorch.datasets.bands import HLSBands
from terratorch.models.backbones.prithvi_mae import PrithviMAE, PrithviViT
from terratorch.models.backbones.select_patch_embed_weights import select_patch_embed_weights
from terratorch.models.weights import (
    CheckpointMismatchError,
    load_state_dict_into,
    read_checkpoint,
    remap_band_channels,
    resolve_weights_file,
)
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY, TERRATORCH_FULL_MODEL_REGISTRY

__all__ = [
    "PRETRAINED_BANDS",
    "PRITHVI_V1_MEAN",
    "PRITHVI_V1_STD",
    "PRITHVI_V2_MEAN",
    "PRITHVI_V2_STD",
    "PrithviMAE",
    "PrithviViT",
    "backbone_metadata",
    "checkpoint_filter_fn_mae",
    "checkpoint_filter_fn_vit",
    "checkpoint_filter_fn_vit_adapter",
    "pretrained_weights",
    "prithvi_adapter_cfgs",
    "prithvi_cfgs",
]

logger = logging.getLogger(__name__)

#: Bands (in channel order) the published checkpoints were trained on.
PRETRAINED_BANDS: list[HLSBands] = [
    HLSBands.BLUE,
    HLSBands.GREEN,
    HLSBands.RED,
    HLSBands.NIR_NARROW,
    HLSBands.SWIR_1,
    HLSBands.SWIR_2,
]

PRITHVI_V1_MEAN = [775.0, 1081.0, 1229.0, 2497.0, 2204.0, 1611.0]
PRITHVI_V1_STD = [1282.0, 1270.0, 1399.0, 1368.0, 1292.0, 1155.0]
PRITHVI_V2_MEAN = [1087.0, 1342.0, 1433.0, 2734.0, 1958.0, 1363.0]
PRITHVI_V2_STD = [2248.0, 2179.0, 2178.0, 1850.0, 1242.0, 1049.0]


def _cfg(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "img_size": 224,
        "num_frames": 4,
        "patch_size": [1, 16, 16],
        "in_chans": 6,
        "embed_dim": 768,
        "depth": 12,
        "num_heads": 12,
        "decoder_embed_dim": 512,
        "decoder_depth": 8,
        "decoder_num_heads": 16,
        "mlp_ratio": 4,
        "mean": PRITHVI_V2_MEAN,
        "std": PRITHVI_V2_STD,
        "coords_encoding": [],
        "coords_scale_learn": False,
        "bands": PRETRAINED_BANDS,
        "mask_ratio": 0.75,
        "norm_pix_loss": False,
    }
    base.update(overrides)
    return base


_TL = {"coords_encoding": ["time", "location"], "coords_scale_learn": True}

#: Published architecture of each variant (PrithviMAE arguments; the encoder ignores decoder ones).
prithvi_cfgs: dict[str, dict[str, Any]] = {
    "prithvi_eo_tiny": _cfg(
        num_frames=1,
        embed_dim=256,
        depth=4,
        num_heads=4,
        decoder_embed_dim=128,
        decoder_depth=4,
        decoder_num_heads=4,
    ),
    "prithvi_eo_v1_100": _cfg(num_frames=3, mean=PRITHVI_V1_MEAN, std=PRITHVI_V1_STD),
    "prithvi_eo_v2_tiny_tl": _cfg(num_frames=1, embed_dim=192, depth=12, num_heads=3, **_TL),
    "prithvi_eo_v2_100": _cfg(),
    "prithvi_eo_v2_100_tl": _cfg(**_TL),
    "prithvi_eo_v2_300": _cfg(embed_dim=1024, depth=24, num_heads=16),
    "prithvi_eo_v2_300_tl": _cfg(embed_dim=1024, depth=24, num_heads=16, **_TL),
    "prithvi_eo_v2_600": _cfg(embed_dim=1280, depth=32, num_heads=16, patch_size=[1, 14, 14]),
    "prithvi_eo_v2_600_tl": _cfg(embed_dim=1280, depth=32, num_heads=16, patch_size=[1, 14, 14], **_TL),
}


def _hf(repo: str, filename: str) -> dict[str, str]:
    return {"hf_hub_id": f"ibm-nasa-geospatial/{repo}", "hf_hub_filename": filename}


#: Hugging Face location of each variant's published weights (``prithvi_eo_tiny`` has none). They are
#: read from the local cache; see :func:`terratorch.models.weights.resolve_weights_file`.
pretrained_weights: dict[str, dict[str, str]] = {
    "prithvi_eo_v1_100": _hf("Prithvi-EO-1.0-100M", "Prithvi_EO_V1_100M.pt"),
    "prithvi_eo_v2_tiny_tl": _hf("Prithvi-EO-2.0-tiny-TL", "Prithvi_EO_V2_tiny_TL.pt"),
    "prithvi_eo_v2_100_tl": _hf("Prithvi-EO-2.0-100M-TL", "Prithvi_EO_V2_100M_TL.pt"),
    "prithvi_eo_v2_300": _hf("Prithvi-EO-2.0-300M", "Prithvi_EO_V2_300M.pt"),
    "prithvi_eo_v2_300_tl": _hf("Prithvi-EO-2.0-300M-TL", "Prithvi_EO_V2_300M_TL.pt"),
    "prithvi_eo_v2_600": _hf("Prithvi-EO-2.0-600M", "Prithvi_EO_V2_600M.pt"),
    "prithvi_eo_v2_600_tl": _hf("Prithvi-EO-2.0-600M-TL", "Prithvi_EO_V2_600M_TL.pt"),
}


def _adapter_cfg(interaction_indexes: list[list[int]], deform_num_heads: int) -> dict[str, Any]:
    return {
        "interaction_indexes": interaction_indexes,
        "conv_inplane": 64,
        "add_vit_feature": True,
        "deform_num_heads": deform_num_heads,
        "n_points": 4,
        "init_values": 0,
        "with_cffn": False,
        "cffn_ratio": 0.25,
        "deform_ratio": 0.5,
        "use_extra_extractor": True,
        "with_cp": False,
    }


_V2_300_INTERACTIONS = [[0, 5], [6, 11], [12, 17], [18, 23]]

#: ViT-adapter settings (``PrithviViTAdapter`` arguments) of the variants that support ``vit_adapter``.
prithvi_adapter_cfgs: dict[str, dict[str, Any]] = {
    "prithvi_eo_v1_100": _adapter_cfg([[0, 2], [3, 5], [6, 8], [9, 11]], deform_num_heads=12),
    "prithvi_eo_v2_300": _adapter_cfg(_V2_300_INTERACTIONS, deform_num_heads=16),
    "prithvi_eo_v2_300_tl": _adapter_cfg(_V2_300_INTERACTIONS, deform_num_heads=16),
}

#: State-dict prefixes of the layers a ViT adapter adds on top of the encoder (never in a Prithvi
#: checkpoint, so they keep the model's own initial values when loading one).
ADAPTER_EXTRA_LAYERS: tuple[str, ...] = (
    "level_embed",
    "spm",
    "interactions",
    "up",
    "norm1",
    "norm2",
    "norm3",
    "norm4",
)

#: Registered backbones (``prithvi_eo_v2_100`` has a config but, as in TerraTorch 1.2, no builder).
BACKBONE_VARIANTS = (
    "prithvi_eo_tiny",
    "prithvi_eo_v1_100",
    "prithvi_eo_v2_tiny_tl",
    "prithvi_eo_v2_100_tl",
    "prithvi_eo_v2_300",
    "prithvi_eo_v2_300_tl",
    "prithvi_eo_v2_600",
    "prithvi_eo_v2_600_tl",
)
#: Variants with a ``<variant>_mae`` full model (``prithvi_eo_tiny_mae`` is an addition of ours).
MAE_VARIANTS = BACKBONE_VARIANTS


def backbone_metadata(variant: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``variant``, derived from :data:`prithvi_cfgs`.

    Registered with the builder; ``terratorch.registry.manifest`` holds a copy so the listing needs no
    import of this module (``tests/registry/test_manifest.py`` checks that the two agree).
    """
    cfg = prithvi_cfgs[variant]
    meta: dict[str, Any] = {
        "family": "prithvi_vit",
        "bands": [str(band) for band in cfg["bands"]],
        "embed_dim": cfg["embed_dim"],
        "depth": cfg["depth"],
        "num_heads": cfg["num_heads"],
        "patch_size": cfg["patch_size"][-1],
        # one feature per block, embed_dim channels each at the default num_frames=1
        "out_channels": [cfg["embed_dim"]] * cfg["depth"],
        "pretrained_num_frames": cfg["num_frames"],
        "mean": list(cfg["mean"]),
        "std": list(cfg["std"]),
    }
    if cfg["coords_encoding"]:
        meta["coords_encoding"] = list(cfg["coords_encoding"])
    meta.update(pretrained_weights.get(variant, {}))
    return meta


def mae_metadata(variant: str) -> dict[str, Any]:
    """What the full-model registry lists for ``<variant>_mae`` (mirrored in the manifest)."""
    return {
        "family": "prithvi_mae",
        "encoder": variant,
        "bands": [str(band) for band in prithvi_cfgs[variant]["bands"]],
    }


# ----------------------------------------------------------------------------------------------
# checkpoint filters
# ----------------------------------------------------------------------------------------------
def _is_decoder_key(key: str) -> bool:
    return "decoder" in key or "_dec" in key or key == "mask_token"


def checkpoint_filter_fn_vit(
    state_dict: Mapping[str, Tensor],
    model: PrithviViT,
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
) -> dict[str, Tensor]:
    """Fit a Prithvi checkpoint (either published layout, or a fine-tuned encoder) to an encoder.

    Decoder keys are dropped, the ``encoder.`` prefix of MAE checkpoints is removed, stored position
    tables are replaced by the model's own (they depend on ``num_frames``/``img_size``), coordinate
    encoders the model does not have are dropped, and the patch embedding is rebuilt for
    ``model_bands`` (see :func:`select_patch_embed_weights`).
    """
    clean: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        key = key.replace("_timm_module.", "")
        if "pos_embed" in key:
            value = model.pos_embed
        if _is_decoder_key(key):
            continue
        if not model.temporal_encoding and "temporal_embed" in key:
            continue
        if not model.location_encoding and "location_embed" in key:
            continue
        clean[key.removeprefix("encoder.")] = value
    for key, value in model.state_dict().items():
        if "vpt_prompt_embeddings" in key:
            clean[key] = value
    return select_patch_embed_weights(clean, model, pretrained_bands, model_bands, encoder_only=True)


def checkpoint_filter_fn_mae(
    state_dict: Mapping[str, Tensor],
    model: PrithviMAE,
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
) -> dict[str, Tensor]:
    """Fit a Prithvi checkpoint to a :class:`PrithviMAE`: flat 1.0 keys get their ``encoder.`` or
    ``decoder.`` prefix, position tables are the model's own, the patch embedding is band-remapped.
    """
    clean: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        key = key.replace("_timm_module.", "")
        if "decoder_pos_embed" in key:
            value = model.decoder.decoder_pos_embed
        elif "pos_embed" in key:
            value = model.encoder.pos_embed
        if not model.encoder.temporal_encoding and "temporal_embed" in key:
            continue
        if not model.encoder.location_encoding and "location_embed" in key:
            continue
        if key.startswith(("encoder.", "decoder.")):
            clean[key] = value
        elif _is_decoder_key(key):
            clean["decoder." + key] = value
        else:
            clean["encoder." + key] = value
    clean = select_patch_embed_weights(clean, model, pretrained_bands, model_bands, encoder_only=False)
    return _remap_decoder_pred(clean, model, pretrained_bands, model_bands)


def checkpoint_filter_fn_vit_adapter(
    state_dict: Mapping[str, Tensor],
    model: nn.Module,
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
) -> dict[str, Tensor]:
    """Fit a Prithvi checkpoint to a ViT-adapter encoder (a :class:`PrithviViT` with adapter layers).

    Does what :func:`checkpoint_filter_fn_vit` does, then drops the class token and the final
    ``norm.`` layer (an adapter has neither) and takes the adapter's own layers (the prefixes in the
    model's ``extra_layers``, default :data:`ADAPTER_EXTRA_LAYERS`) from ``model``, so the result loads
    strictly.
    """
    state = checkpoint_filter_fn_vit(state_dict, model, pretrained_bands, model_bands)
    clean = {k: v for k, v in state.items() if "cls_token" not in k and "norm." not in k}
    prefixes = tuple(getattr(type(model), "extra_layers", None) or ADAPTER_EXTRA_LAYERS)
    for key, value in model.state_dict().items():
        if key.startswith(prefixes):
            clean[key] = value
    return clean


class _MAEOutIndicesError(ValueError, AssertionError):
    """``out_indices`` given for a masked autoencoder (TerraTorch 1.2 raised ``AssertionError``)."""


def _remap_decoder_pred(
    state: dict[str, Tensor],
    model: PrithviMAE,
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
) -> dict[str, Tensor]:
    """Select the pixel head's band outputs (innermost in each tubelet pixel) like the patch embedding.

    An addition: TerraTorch 1.2 could not load a full checkpoint into an MAE with other bands.
    """
    ours = model.state_dict()
    n_ckpt, n_model = len(pretrained_bands), len(model_bands)
    for suffix in ("weight", "bias"):
        key = f"decoder.decoder_pred.{suffix}"
        if key not in state or state[key].shape == ours[key].shape or state[key].shape[0] % n_ckpt:
            continue
        stored, fresh = state[key], ours[key]
        pixels = stored.shape[0] // n_ckpt
        if pixels * n_model != fresh.shape[0]:
            continue  # another patch size: reported as a shape mismatch
        remapped = remap_band_channels(
            stored.reshape(pixels, n_ckpt, *stored.shape[1:]),
            fresh.reshape(pixels, n_model, *fresh.shape[1:]),
            list(pretrained_bands),
            list(model_bands),
            dim=1,
            name=key,
            allow_no_match=True,
        )
        state[key] = remapped.reshape(fresh.shape)
    return state


def prithvi_weights_file(variant: str, ckpt_path: str | Path | None = None) -> Path:
    """The local file to load for ``variant``: ``ckpt_path``, else the published file in the HF cache."""
    entry = pretrained_weights.get(variant.removesuffix("_mae"), {})
    return resolve_weights_file(
        ckpt_path,
        hf_repo_id=entry.get("hf_hub_id"),
        hf_filenames=[entry["hf_hub_filename"]] if entry else [],
        model_name=variant,
    )


def _load_weights(
    model: nn.Module,
    path: Path,
    filter_fn: Callable[..., dict[str, Tensor]],
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
    strict: bool,
    weights_only: bool = True,
) -> None:
    """Read, filter and load ``path``; ``strict=False`` warns about what stays random instead of raising."""
    state = filter_fn(read_checkpoint(path, weights_only=weights_only), model, pretrained_bands, model_bands)
    target = model.state_dict()
    mismatched = [
        f"{k} (checkpoint {tuple(v.shape)}, model {tuple(target[k].shape)})"
        for k, v in state.items()
        if k in target and v.shape != target[k].shape
    ]
    if mismatched:
        raise CheckpointMismatchError(
            f"{str(path)!r} has tensors of another shape than {type(model).__name__} needs (another model "
            f"size?): {len(mismatched)}, first: {mismatched[:3]}."
        )
    load_state_dict_into(model, state, source=repr(str(path)), allow_partial=not strict)


def _expand_bands(bands: Sequence[object]) -> list[object]:
    """Band names to :class:`HLSBands` where possible; ``(start, end)`` tuples to inclusive int ranges."""
    out: list[object] = []
    for band in bands:
        if isinstance(band, tuple):
            if len(band) != 2:
                raise ValueError(f"A band interval is (start, end), inclusive; got {band!r}.")
            out.extend(range(int(band[0]), int(band[1]) + 1))
        else:
            out.append(HLSBands.try_convert_to_hls_bands_enum(band))
    return out


def _create_prithvi(
    variant: str,
    pretrained: bool = False,
    model_bands: Sequence[object] | None = None,
    ckpt_path: str | Path | None = None,
    pretrained_bands: Sequence[object] | None = None,
    num_frames: int = 1,
    encoder_only: bool = True,
    vit_adapter: bool = False,
    weights_only: bool = True,
    **kwargs: Any,
) -> PrithviViT | PrithviMAE:
    """Build the encoder (``encoder_only``) or the whole MAE of ``variant`` and load its weights.

    ``in_chans`` always follows the number of bands (as in TerraTorch 1.2). With ``pretrained`` a
    ``ckpt_path`` is loaded leniently (missing/unexpected keys are logged), the published file
    strictly; ``ckpt_path`` without ``pretrained`` is ignored with a warning. ``weights_only=False``
    (an addition) allows checkpoints that pickle Python objects next to the tensors. An encoder's
    ``out_channels`` has one entry per ``out_indices`` block (1.2: one per block of the model).
    ``vit_adapter=True`` is validated as in 1.2 and then raises ``ImportError``: ``PrithviViTAdapter``
    and its compiled deformable attention are not part of this build.
    """
    if variant not in prithvi_cfgs:
        raise ValueError(f"Unknown Prithvi variant {variant!r}; known: {sorted(prithvi_cfgs)}.")
    if vit_adapter:
        if variant not in prithvi_adapter_cfgs:
            raise ValueError(
                f"ViT Adapter not available for variant {variant}. Available variants: "
                f"{list(prithvi_adapter_cfgs)}."
            )
        if not encoder_only:
            raise ValueError("PrithviViTAdapter only supports encoder_only=True; use the plain MAE instead.")
        raise ImportError(
            "vit_adapter=True needs PrithviViTAdapter, whose deformable attention is the compiled "
            "MultiScaleDeformableAttention extension; this TerraTorch build does not provide it. Build "
            "the backbone with vit_adapter=False."
        )
    if "pretrained_cfg_overlay" in kwargs:
        raise ValueError("pretrained_cfg_overlay was removed, use ckpt_path=<file path> instead.")
    if not encoder_only and "out_indices" in kwargs:
        raise _MAEOutIndicesError(
            "out_indices provided for a MAE model: out_indices selects encoder features; build the "
            "encoder (encoder_only=True) to use it."
        )
    args = dict(prithvi_cfgs[variant])
    pretrained_bands = list(pretrained_bands or args.get("bands", PRETRAINED_BANDS))
    if model_bands is None:
        model_bands = pretrained_bands
        logger.info("No bands given for %s: assuming the pretrained bands %s.", variant, pretrained_bands)
    else:
        model_bands = _expand_bands(model_bands)
    kwargs["in_chans"] = len(model_bands)
    kwargs["num_frames"] = num_frames
    args.update(kwargs)

    if encoder_only:
        out_indices = args.pop("out_indices", None)
        model: PrithviViT | PrithviMAE = PrithviViT(**args)
        filter_fn: Callable[..., dict[str, Tensor]] = checkpoint_filter_fn_vit
    else:
        model = PrithviMAE(**args)
        filter_fn = checkpoint_filter_fn_mae

    if pretrained:
        # the file is looked up before anything is loaded: a wrong path or missing cache fails fast
        path = prithvi_weights_file(variant, ckpt_path)
        _load_weights(
            model,
            path,
            filter_fn,
            pretrained_bands,
            model_bands,
            strict=ckpt_path is None,
            weights_only=weights_only,
        )
    elif ckpt_path is not None:
        logger.warning(
            "ckpt_path is provided but pretrained is set to False, ignoring ckpt_path %s.", ckpt_path
        )

    model.model_bands = model_bands
    model.pretrained_bands = pretrained_bands
    if encoder_only:
        depth = len(model.blocks)
        out_indices = list(out_indices) if out_indices is not None else list(range(depth))
        bad = [i for i in out_indices if not -depth <= i < depth]
        if bad:
            raise ValueError(
                f"out_indices {bad} out of range for depth {depth} "
                f"(valid: 0..{depth - 1}, or negative from the end)."
            )
        model.out_indices = out_indices
        # one channel entry per returned feature, so decoders and necks see what forward yields
        # (TerraTorch 1.2 kept one entry per block, which broke decoders given fewer features)
        model.out_channels = [model.out_channels[i] for i in out_indices]
    return model


def _register_backbone(variant: str) -> None:
    def build(
        pretrained: bool = False,
        bands: list[HLSBands] | None = None,
        vit_adapter: bool = False,
        **kwargs: Any,
    ) -> PrithviViT:
        return _create_prithvi(
            variant, pretrained=pretrained, vit_adapter=vit_adapter, model_bands=bands, **kwargs
        )

    cfg = prithvi_cfgs[variant]
    build.__name__ = build.__qualname__ = variant
    build.__module__ = __name__
    build.__doc__ = (
        f"Prithvi EO encoder ``{variant}`` (embed_dim {cfg['embed_dim']}, depth {cfg['depth']}, patch "
        f"{cfg['patch_size']}). ``bands`` are the input bands (default: the pretrained ones); other "
        "keyword arguments go to :func:`_create_prithvi` and :class:`PrithviViT`."
    )
    globals()[variant] = TERRATORCH_BACKBONE_REGISTRY.register(build, metadata=backbone_metadata(variant))


def _register_mae(variant: str) -> None:
    def build(
        pretrained: bool = False,
        bands: list[HLSBands] | None = None,
        encoder_only: bool = False,
        **kwargs: Any,
    ) -> PrithviMAE:
        if encoder_only:
            raise ValueError(f"Please use '{variant}' for encoder only models.")
        model_bands = kwargs.pop("model_bands", bands)
        return _create_prithvi(
            variant, pretrained=pretrained, model_bands=model_bands, encoder_only=False, **kwargs
        )

    name = f"{variant}_mae"
    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (
        f"Prithvi masked autoencoder of ``{variant}`` (encoder + decoder); ``forward`` returns "
        "``({'loss': loss}, reconstruction, mask)``. Takes the backbone's options except ``out_indices``."
    )
    globals()[name] = TERRATORCH_FULL_MODEL_REGISTRY.register(build, metadata=mae_metadata(variant))


for _variant in BACKBONE_VARIANTS:
    _register_backbone(_variant)
for _variant in MAE_VARIANTS:
    _register_mae(_variant)
