"""``terramind_v1_tokenizer_lulc`` and ``terramind_v1_tokenizer_ndvi`` in ``TERRATORCH_FULL_MODEL_REGISTRY``.

Weights come from ``ckpt_path`` (a local file, loaded leniently as the reference does) or, with
``pretrained=True``, the published Hugging Face file found through
:func:`terratorch.models.weights.resolve_weights_file` (local caches first; loaded strictly).

The NDVI tokenizer of the reference is a diffusion VQ-VAE (DiVAE) with a UNet decoder; only its
encoder and quantizer are built here (an encoder-only :class:`~.vqvae.VQ`), which is all TerraMind
needs to turn raw NDVI into token ids. The decoder weights of the published file are skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from terratorch.models.backbones.terramind.tokenizer.vqvae import VQ, VQVAE
from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

logger = logging.getLogger(__name__)

#: Published weights (repository, file) per tokenizer, as in the reference.
pretrained_weights: dict[str, dict[str, str]] = {
    "terramind_v1_tokenizer_lulc": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-LULC",
        "hf_hub_filename": "TerraMind_Tokenizer_LULC.pt",
    },
    "terramind_v1_tokenizer_ndvi": {
        "hf_hub_id": "ibm-esa-geospatial/TerraMind-1.0-Tokenizer-NDVI",
        "hf_hub_filename": "TerraMind_Tokenizer_NDVI.pt",
    },
}

#: Architecture arguments per tokenizer (those of the reference's registered constructors).
TOKENIZER_CONFIGS: dict[str, dict[str, Any]] = {
    "terramind_v1_tokenizer_lulc": {
        "model_type": "vqvae",
        "image_size": 256,
        "n_channels": 10,
        "enc_type": "vit_b_enc",
        "dec_type": "vit_b_dec",
        "post_mlp": True,
        "patch_size": 16,
        "quant_type": "fsq",
        "codebook_size": "7-5-5-5-5",
        "latent_dim": 5,
    },
    "terramind_v1_tokenizer_ndvi": {
        "model_type": "encoder",
        "image_size": 256,
        "n_channels": 1,
        "enc_type": "vit_b_enc",
        "post_mlp": True,
        "patch_size": 16,
        "quant_type": "fsq",
        "codebook_size": "8-8-8-6-5",
        "latent_dim": 5,
    },
}

_MODEL_TYPES = {"vqvae": VQVAE, "encoder": VQ}
#: Checkpoint key prefixes an encoder-only tokenizer skips (the diffusion decoder).
_DECODER_PREFIXES = ("decoder.", "post_quant_proj.")


def tokenizer_metadata(name: str) -> dict[str, Any]:
    """What ``TERRATORCH_FULL_MODEL_REGISTRY`` lists for tokenizer ``name`` (mirrored in the manifest)."""
    cfg = TOKENIZER_CONFIGS[name]
    return {
        "family": "terramind_tokenizer",
        "in_channels": cfg["n_channels"],
        "patch_size": cfg["patch_size"],
        "codebook_size": cfg["codebook_size"],
        "decoder": cfg["model_type"] == "vqvae",
        **pretrained_weights[name],
    }


def build_vqvae(
    model_type: str = "vqvae",
    variant: str | None = None,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    **kwargs: Any,
) -> VQ:
    """Build a tokenizer and load its weights.

    Args:
        model_type: ``"vqvae"`` (encoder + ViT decoder) or ``"encoder"`` (encoder and quantizer only).
        variant: Registered name, used to find the published weights when ``pretrained``.
        pretrained: Load the published weights (local Hugging Face cache first).
        ckpt_path: A local weights file; loaded leniently (missing/unexpected keys are logged).
        **kwargs: :class:`~.vqvae.VQVAE` / :class:`~.vqvae.VQ` arguments.

    Raises:
        ValueError: Unknown ``model_type``.
        terratorch.models.weights.PretrainedWeightsNotFoundError: No weights file was found.
        terratorch.models.weights.CheckpointMismatchError: ``pretrained`` weights do not fit.
    """
    if model_type not in _MODEL_TYPES:
        from terratorch.choices import unknown_choice

        raise ValueError(unknown_choice("tokenizer model_type", model_type, _MODEL_TYPES))
    model = _MODEL_TYPES[model_type](**kwargs)
    if ckpt_path is None and not pretrained:
        return model
    from terratorch.models.weights import load_state_dict_into, read_checkpoint, resolve_weights_file

    if ckpt_path is None and variant not in pretrained_weights:
        raise ValueError(
            f"No published weights for tokenizer {variant!r}; pass ckpt_path=... "
            f"(published: {', '.join(sorted(pretrained_weights))})."
        )
    published = pretrained_weights.get(variant or "", {})
    path = resolve_weights_file(
        ckpt_path,
        hf_repo_id=published.get("hf_hub_id"),
        hf_filenames=[published["hf_hub_filename"]] if published else [],
        model_name=variant or type(model).__name__,
    )
    skip = _DECODER_PREFIXES if model_type == "encoder" else ()
    state = {k: v for k, v in read_checkpoint(path).items() if not k.startswith(skip)}
    load_state_dict_into(model, state, source=repr(str(path)), allow_partial=ckpt_path is not None)
    return model


def build_for_terramind(name: str, pretrained: bool = False) -> VQ:
    """Tokenizer ``name`` as TerraMind builds it for raw inputs of a tokenised modality.

    Unlike a direct build, missing published weights do not stop the TerraMind model from being
    built (its token-id inputs and TiM generation do not need them): the tokenizer keeps random
    weights, a warning is logged, and tokenizing raw input raises until weights are loaded (for
    example from a fine-tuned checkpoint that holds ``tokenizer.*`` tensors).
    """
    from terratorch.models.weights import PretrainedWeightsNotFoundError

    try:
        return TERRATORCH_FULL_MODEL_REGISTRY.build(name, pretrained=pretrained)
    except PretrainedWeightsNotFoundError as err:
        logger.warning("%s: pretrained weights not found; raw inputs cannot be tokenized. %s", name, err)
        model = TERRATORCH_FULL_MODEL_REGISTRY.build(name)
        model.missing_weights = (
            f"The {name} tokenizer has no pretrained weights, so raw inputs cannot be tokenized: {err} "
            "Pass token ids instead, or put the tokenizer file in the local Hugging Face cache."
        )
        return model


def _register(name: str, doc: str) -> None:
    def build(pretrained: bool = False, ckpt_path: str | None = None, **kwargs: Any) -> VQ:
        return build_vqvae(
            variant=name, pretrained=pretrained, ckpt_path=ckpt_path, **{**TOKENIZER_CONFIGS[name], **kwargs}
        )

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = doc
    globals()[name] = TERRATORCH_FULL_MODEL_REGISTRY.register(build, metadata=tokenizer_metadata(name))


_register(
    "terramind_v1_tokenizer_lulc",
    "LULC tokenizer of TerraMind v1: 10-class maps (class ids or one-hot) to 16x16-pixel tokens and back "
    "(ViT-B encoder and decoder, FSQ 7-5-5-5-5).",
)
_register(
    "terramind_v1_tokenizer_ndvi",
    "NDVI tokenizer of TerraMind v1 (encoder only): 1-channel NDVI to 16x16-pixel tokens "
    "(ViT-B, FSQ 8-8-8-6-5).",
)
