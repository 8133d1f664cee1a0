"""TerraMind TiM backbones and encoder-decoder full models in the registries, as in TerraTorch 1.2.

- ``TERRATORCH_BACKBONE_REGISTRY``: ``terramind_v1_{tiny,small,base,large}_tim`` and
  ``terramind_v01_base_tim`` (:class:`~.tim.TerraMindTiM`), with ``modalities``, ``tim_modalities``,
  ``merge_method``, ``pretrained``, ``ckpt_path`` and the other TiM arguments.
- ``TERRATORCH_FULL_MODEL_REGISTRY``: ``terramind_v1_{tiny,small,base,large}_encdec``
  (:class:`~.encdec.TerraMind`), given ``encoder_embeddings``/``decoder_embeddings``/``modality_info``
  as in 1.2, or simply ``modalities`` and ``output_modalities`` names.

Weights: the published file (``TerraMind_v1_base.pt`` ...) holds encoder *and* decoder tensors under
the encoder-decoder's names. The encdec reads it as it is; a TiM backbone reads the encoder tensors
for itself and all of them again for its generator (``sampler.model.*``,
:func:`checkpoint_filter_fn_tim`). ``ckpt_path`` may be such a published file or a saved TiM
``state_dict``; without it, ``pretrained=True`` finds the published file in the local Hugging Face
cache (:func:`~.register.terramind_weights_file`). The ``terramind_v1_*_generate`` models of 1.2
(which decode generated tokens to images with the diffusion tokenizers) are not provided.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from terratorch.models.backbones.terramind.embeddings import build_modality_embeddings
from terratorch.models.backbones.terramind.encdec import TerraMind, build_decoder_modality_embeddings
from terratorch.models.backbones.terramind.layers import terramind_norm
from terratorch.models.backbones.terramind.modalities import (
    MODALITY_INFO,
    PRETRAINED_BANDS,
    V01_PRETRAINED_BANDS,
)
from terratorch.models.backbones.terramind.register import (
    V1_TOKENIZERS,
    checkpoint_filter_fn,
    pretrained_weights,
    terramind_cfgs,
    terramind_weights_file,
)
from terratorch.models.backbones.terramind.tim import TerraMindTiM
from terratorch.models.weights import CheckpointMismatchError, load_state_dict_into, read_checkpoint
from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY, TERRATORCH_FULL_MODEL_REGISTRY

__all__ = [
    "ENCDEC_VARIANTS",
    "TIM_VARIANTS",
    "build_terramind_encdec",
    "build_terramind_tim",
    "checkpoint_filter_fn_tim",
    "encdec_metadata",
    "tim_metadata",
]

logger = logging.getLogger(__name__)

#: Sizes with a TiM backbone (registered as ``<variant>_tim``).
TIM_VARIANTS: tuple[str, ...] = (
    "terramind_v1_tiny",
    "terramind_v1_small",
    "terramind_v1_base",
    "terramind_v1_large",
    "terramind_v01_base",
)
#: Sizes with an encoder-decoder full model (registered as ``<variant>_encdec``).
ENCDEC_VARIANTS: tuple[str, ...] = TIM_VARIANTS[:4]
_GENERATOR = "sampler.model."


def _metadata(variant: str, family: str) -> dict[str, Any]:
    cfg = terramind_cfgs[variant]
    bands = V01_PRETRAINED_BANDS if variant.startswith("terramind_v01") else PRETRAINED_BANDS
    return {
        "family": family,
        "embed_dim": cfg["dim"],
        "depth": cfg["encoder_depth"],
        "decoder_depth": cfg["decoder_depth"],
        "num_heads": cfg["num_heads"],
        "patch_size": 16,
        "out_channels": [cfg["dim"]] * cfg["encoder_depth"],
        "modalities": sorted(bands),
        **pretrained_weights[variant],
    }


def tim_metadata(variant: str) -> dict[str, Any]:
    """What ``list_backbones()`` shows for ``<variant>_tim`` (copied in ``terratorch.registry.manifest``)."""
    return {**_metadata(variant, "terramind_tim"), "tim_modalities": ["LULC"]}


def encdec_metadata(variant: str) -> dict[str, Any]:
    """Listing metadata of ``<variant>_encdec`` (mirrored in ``terratorch.registry.manifest``)."""
    meta = _metadata(variant, "terramind_encdec")
    del meta["out_channels"], meta["modalities"]
    return meta


def _architecture(variant: str, kwargs: Mapping[str, Any], decoder: bool = True) -> dict[str, Any]:
    cfg = dict(terramind_cfgs[variant])
    if not decoder:
        cfg.pop("decoder_depth")
    cfg.update(kwargs)
    cfg.setdefault("norm_layer", terramind_norm)
    return cfg


# ----------------------------------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------------------------------
def checkpoint_filter_fn_tim(state_dict: Mapping[str, Tensor], model: TerraMindTiM) -> dict[str, Tensor]:
    """Map a published encoder-decoder file onto a TiM backbone: encoder tensors + the whole generator.

    Every file key the TiM has is kept; each key is also copied to the generator (``sampler.model.<key>``).
    Fixed sin-cos ``pos_emb`` tables of another size are replaced by the model's own. Encoder tensors
    missing from the file keep their initialisation (with a warning).

    Raises:
        CheckpointMismatchError: A generator tensor is missing from the file or has another shape: TiM
            cannot generate without the pretrained encoder-decoder.
    """
    target = model.state_dict()
    clean: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        for name in (key, _GENERATOR + key):
            if name not in target:
                continue
            if value.shape == target[name].shape:
                clean[name] = value
            elif key.endswith("pos_emb"):
                clean[name] = target[name]
            elif name.startswith(_GENERATOR):
                raise CheckpointMismatchError(
                    f"TerraMind TiM: {key} has shape {list(value.shape)} in the weights but the generator "
                    "needs "
                    f"{list(target[name].shape)}; TiM cannot generate without the pretrained encoder-decoder "
                    "(is the file of another model size?)."
                )
            else:
                warnings.warn(
                    f"TerraMind TiM weights: {key} has shape {list(value.shape)} in the file but "
                    f"{list(target[name].shape)} in the model; it keeps its fresh initialisation.",
                    UserWarning,
                    stacklevel=2,
                )
    missing = [k for k in target if k not in clean]
    generator = [k[len(_GENERATOR) :] for k in missing if k.startswith(_GENERATOR)]
    if generator:
        shown = ", ".join(generator[:6]) + (
            f", ... ({len(generator) - 6} more)" if len(generator) > 6 else ""
        )
        raise CheckpointMismatchError(
            f"TerraMind TiM needs the encoder-decoder tensors of the published weights, but the file lacks "
            f"{len(generator)}: {shown}. Use the published TerraMind_v1_<size>.pt (encoder and decoder)."
        )
    own = [k for k in missing if not k.startswith("tokenizer.")]
    if own:
        warnings.warn(
            f"TerraMind TiM weights lack {len(own)} encoder tensors ({', '.join(own[:6])}); they keep their "
            "fresh initialisation.",
            UserWarning,
            stacklevel=2,
        )
    for key in missing:
        clean[key] = target[key]
    return clean


def _reject_new_modalities(modalities: Any) -> None:
    entries = [modalities] if isinstance(modalities, Mapping) else list(modalities or [])
    if any(isinstance(m, Mapping) for m in entries):
        raise NotImplementedError(
            "TerraMind TiM models generate from pretrained modalities only; new modalities "
            f"({modalities}) have no pretrained generator embedding. Use the plain terramind_v1_* backbone."
        )


def _load_tim(model: TerraMindTiM, path: Path, modalities: Any) -> None:
    state = read_checkpoint(path, weights_only=True)
    if any(_GENERATOR in key for key in state):  # a saved TiM (or a task holding one)
        load_state_dict_into(
            model,
            state,
            source=repr(str(path)),
            allow_partial=True,
            ignore_missing=("tokenizer.",),
            ignore_unexpected=("tokenizer.",),
        )
        return
    _reject_new_modalities(modalities)
    model.load_state_dict(checkpoint_filter_fn_tim(state, model), strict=True)


# ----------------------------------------------------------------------------------------------
# builders
# ----------------------------------------------------------------------------------------------
def build_terramind_tim(
    variant: str,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    bands: Mapping[str, Sequence[object]] | None = None,
    pretrained_bands: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> TerraMindTiM:
    """Build the TiM backbone of ``variant`` and load its weights (see the module docstring).

    Args:
        variant: A key of :data:`TIM_VARIANTS`.
        pretrained: Load the published weights from the local HF cache (when no ``ckpt_path``).
        ckpt_path: A published encoder-decoder file or a saved TiM ``state_dict``.
        bands: Not supported for TiM (as in 1.2): inputs must have the pretrained bands.
        pretrained_bands: Accepted for signature compatibility; unused.
        **kwargs: :class:`~.tim.TerraMindTiM` arguments (``modalities``, ``tim_modalities``, ...).

    Raises:
        NotImplementedError: ``bands`` given, or new modalities with pretrained weights.
        PretrainedWeightsNotFoundError: The weights file is not found.
        CheckpointMismatchError: The file lacks the encoder-decoder tensors TiM needs.
    """
    if bands is not None:
        raise NotImplementedError(
            "Bands cannot be adapted for TerraMind TiM models: the generator needs the pretrained bands. "
            "Remove "
            f"bands (got {dict(bands)!r}) and give each modality with all its pretrained bands."
        )
    if variant.startswith("terramind_v01") and pretrained and not os.getenv("HF_TOKEN"):
        warnings.warn(
            "TerraMind v0.1 weights need a HF_TOKEN with access to them.", UserWarning, stacklevel=2
        )
    if pretrained and ckpt_path is None:
        _reject_new_modalities(kwargs.get("modalities"))
    cfg = _architecture(variant, kwargs)
    if variant.startswith("terramind_v1_"):
        cfg.setdefault("tokenizer_dict", V1_TOKENIZERS)
    model = TerraMindTiM(pretrained=pretrained, **cfg)
    if ckpt_path is not None:
        _load_tim(model, terramind_weights_file(variant, ckpt_path), kwargs.get("modalities"))
    elif pretrained:
        _load_tim(model, terramind_weights_file(variant), kwargs.get("modalities"))
    else:
        warnings.warn(
            f"{variant}_tim is not pretrained: its generator is random, so the generated TiM modalities "
            "are noise. "
            "Pass pretrained=True (published weights in the HF cache) or ckpt_path=...",
            UserWarning,
            stacklevel=2,
        )
    return model


def build_terramind_encdec(
    variant: str,
    pretrained: bool = False,
    ckpt_path: str | Path | None = None,
    encoder_embeddings: Mapping[str, nn.Module] | None = None,
    decoder_embeddings: Mapping[str, nn.Module] | None = None,
    modality_info: Mapping[str, Mapping[str, Any]] | None = None,
    modalities: Sequence[str] | None = None,
    output_modalities: Sequence[str] | None = None,
    img_size: int = 224,
    pretrained_bands: Mapping[str, Sequence[str]] | None = None,
    **kwargs: Any,
) -> TerraMind:
    """Build the TerraMind encoder-decoder of ``variant`` and load its weights.

    Args:
        variant: A key of :data:`ENCDEC_VARIANTS`.
        pretrained: Load the published weights from the local HF cache (when no ``ckpt_path``).
        ckpt_path: A local weights file in the published layout (loaded as far as it fits).
        encoder_embeddings: Modality key → encoder embedding (TerraTorch 1.2's interface).
        decoder_embeddings: Modality key → decoder embedding.
        modality_info: Facts per modality (default :data:`MODALITY_INFO`).
        modalities: Instead of ``encoder_embeddings``: input modality names (``["S2L2A", "S1GRD"]``).
        output_modalities: Instead of ``decoder_embeddings``: tokenised target names (``["LULC"]``).
        img_size: Image size of embeddings built from names.
        pretrained_bands: Accepted for signature compatibility; unused.
        **kwargs: Other :class:`~.encdec.TerraMind` arguments.

    Raises:
        ValueError: Neither embeddings nor modality names are given for encoder and decoder.
    """
    cfg = _architecture(variant, kwargs)
    if encoder_embeddings is None and modalities is not None:
        encoder_embeddings, _ = build_modality_embeddings(list(modalities), img_size, cfg["dim"])
    if decoder_embeddings is None and output_modalities is not None:
        decoder_embeddings, _ = build_decoder_modality_embeddings(
            list(output_modalities), img_size, cfg["dim"]
        )
    if encoder_embeddings is None or decoder_embeddings is None:
        raise ValueError(
            f"{variant}_encdec needs its input and target modalities: pass encoder_embeddings, "
            "decoder_embeddings and modality_info (as in TerraTorch 1.2), or modalities=['S2L2A', ...] and "
            f"output_modalities=['LULC', ...]. For fine-tuning use the {variant} or {variant}_tim backbone."
        )
    model = TerraMind(
        encoder_embeddings=encoder_embeddings,
        decoder_embeddings=decoder_embeddings,
        modality_info=modality_info if modality_info is not None else MODALITY_INFO,
        **cfg,
    )
    if ckpt_path is not None:
        path = terramind_weights_file(variant, ckpt_path)
        load_state_dict_into(model, read_checkpoint(path), source=repr(str(path)), allow_partial=True)
    elif pretrained:
        path = terramind_weights_file(variant)
        state = checkpoint_filter_fn(read_checkpoint(path), model)
        load_state_dict_into(model, state, source=repr(str(path)), allow_partial=True)
    return model


def _register(variant: str) -> None:
    def tim(pretrained: bool = False, ckpt_path: str | None = None, **kwargs: Any) -> TerraMindTiM:
        return build_terramind_tim(variant, pretrained=pretrained, ckpt_path=ckpt_path, **kwargs)

    cfg = terramind_cfgs[variant]
    name = f"{variant}_tim"
    tim.__name__ = tim.__qualname__ = name
    tim.__module__ = __name__
    tim.__doc__ = (
        f"TerraMind TiM backbone ``{name}`` (dim {cfg['dim']}, encoder depth {cfg['encoder_depth']}, "
        f"generator decoder depth {cfg['decoder_depth']}); see :func:`build_terramind_tim`."
    )
    globals()[name] = TERRATORCH_BACKBONE_REGISTRY.register(tim, metadata=tim_metadata(variant))
    if variant not in ENCDEC_VARIANTS:
        return

    def encdec(pretrained: bool = False, ckpt_path: str | None = None, **kwargs: Any) -> TerraMind:
        return build_terramind_encdec(variant, pretrained=pretrained, ckpt_path=ckpt_path, **kwargs)

    name = f"{variant}_encdec"
    encdec.__name__ = encdec.__qualname__ = name
    encdec.__module__ = __name__
    encdec.__doc__ = (
        f"TerraMind encoder-decoder ``{name}`` (dim {cfg['dim']}, depths {cfg['encoder_depth']}/"
        f"{cfg['decoder_depth']}); see :func:`build_terramind_encdec`."
    )
    globals()[name] = TERRATORCH_FULL_MODEL_REGISTRY.register(encdec, metadata=encdec_metadata(variant))


for _variant in TIM_VARIANTS:
    _register(_variant)
