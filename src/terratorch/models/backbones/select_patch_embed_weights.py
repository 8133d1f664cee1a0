"""Rebuild a checkpoint's patch-embedding weight for another band selection (public helper).

Used by the Prithvi checkpoint filters and importable by user code. The per-band copy is
:func:`terratorch.models.weights.remap_band_channels`, shared with the other backbones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from terratorch.models.weights import CheckpointMismatchError, remap_band_channels

__all__ = [
    "MissingPatchEmbedError",
    "get_common_prefix",
    "get_proj_key",
    "get_state_dict",
    "patch_embed_weights_are_compatible",
    "remove_prefixes",
    "select_patch_embed_weights",
]

PROJ_SUFFIXES = ("patch_embed.proj.weight", "patch_embed.projection.weight")


class MissingPatchEmbedError(CheckpointMismatchError, KeyError):
    """The checkpoint has no patch-embedding weight: probably one of another architecture."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def patch_embed_weights_are_compatible(model_patch_embed: Tensor, checkpoint_patch_embed: Tensor) -> bool:
    """True when the two weights agree in every dimension but the band dimension (1)."""
    if model_patch_embed.ndim != checkpoint_patch_embed.ndim:
        return False
    model_shape = model_patch_embed.shape[:1] + model_patch_embed.shape[2:]
    return model_shape == checkpoint_patch_embed.shape[:1] + checkpoint_patch_embed.shape[2:]


def get_state_dict(state_dict: Mapping[str, object]) -> Mapping[str, object]:
    """The nested state dict of a wrapper (first key ending in ``state_dict``), else ``state_dict``."""
    nested = next((k for k in state_dict if isinstance(k, str) and k.endswith("state_dict")), None)
    return state_dict[nested] if nested else state_dict  # type: ignore[return-value]


def get_common_prefix(keys: Sequence[str]) -> str | None:
    """The leading dotted segments shared by all ``keys`` (``"encoder."``), or ``None``.

    TerraTorch 1.2 intersected the sets of segments, which could return segments in any order;
    this returns only a true common prefix.
    """
    keys = list(keys)
    if not keys:
        return None
    split = [k.split(".")[:-1] for k in keys]
    prefix: list[str] = []
    for parts in zip(*split):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return ".".join(prefix) + "." if prefix else None


def get_proj_key(
    state_dict: Mapping[str, object], encoder_only: bool = True, return_prefix: bool = False
) -> tuple[str | None, str | None]:
    """The key of the patch-embedding weight and (with ``return_prefix``) the prefix to strip.

    For encoder-only models the prefix is whatever precedes ``patch_embed.proj.weight``; for full
    models it is the prefix common to all keys.
    """
    proj_key = next((k for k in state_dict if k.endswith(PROJ_SUFFIXES)), None)
    prefix = None
    if return_prefix and proj_key:
        if encoder_only:
            suffix = next(s for s in PROJ_SUFFIXES if proj_key.endswith(s))
            prefix = proj_key[: -len(suffix)] or None
        else:
            prefix = get_common_prefix(list(state_dict))
    return proj_key, prefix


def remove_prefixes(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """``state_dict`` with ``prefix`` removed from the start of every key that has it."""
    return {k.removeprefix(prefix): v for k, v in state_dict.items()}


def select_patch_embed_weights(
    state_dict: Mapping[str, Tensor],
    model: nn.Module,
    pretrained_bands: Sequence[object] | int,
    model_bands: Sequence[object] | int,
    proj_key: str | None = None,
    encoder_only: bool = True,
) -> dict[str, Tensor]:
    """Return ``state_dict`` with its patch-embedding weight rebuilt for ``model_bands``.

    Channels of bands in ``pretrained_bands`` are copied into their new positions; bands the
    checkpoint lacks keep the model's fresh weights (a warning names them; no match at all only
    warns). Another patch or tubelet size warns and keeps the model's weight. A prefix in front of
    the weight's key (``encoder.``, ``model.``) is removed from all keys, as the model expects.

    Bands are compared by name (``"RED"`` matches ``HLSBands.RED``, case-insensitive) or by int.
    Unlike TerraTorch 1.2 the caller's dict is not modified and band lists of different types
    (list vs tuple) are handled rather than skipped.

    Args:
        state_dict: Checkpoint tensors (a Lightning-style ``{"state_dict": ...}`` wrapper works).
        model: The model the weights are for.
        pretrained_bands: Checkpoint bands in channel order (or their count).
        model_bands: Model input bands in channel order (or their count).
        proj_key: Checkpoint key of the weight (default: the key ending in
            ``patch_embed.proj.weight`` / ``patch_embed.projection.weight``).
        encoder_only: ``model`` is an encoder (strip the weight's own prefix) rather than a full model
            (strip only a prefix common to all keys).

    Raises:
        MissingPatchEmbedError: No patch-embedding weight in the checkpoint (a ``KeyError``, as the
            error of 1.2 was a plain ``Exception``).
        KeyError: No patch-embedding weight in the model.
        terratorch.models.weights.BandMismatchError: The checkpoint weight's channel count is not
            ``len(pretrained_bands)``.
    """
    state = dict(get_state_dict(state_dict))
    prefix = None
    if proj_key is None:
        proj_key, prefix = get_proj_key(state, encoder_only=encoder_only, return_prefix=True)
    if proj_key is None or proj_key not in state:
        raise MissingPatchEmbedError(
            "Could not find the patch-embedding weight (a key ending in 'patch_embed.proj.weight') in the "
            f"checkpoint: is it one of another architecture? Its keys look like {sorted(state)[:4]}; pass "
            "proj_key=... if the weight has another name."
        )
    model_state = model.state_dict()
    model_key, _ = get_proj_key(model_state, encoder_only=encoder_only)
    model_key = model_key or proj_key
    if model_key not in model_state:
        raise KeyError(f"The model has no patch-embedding weight {model_key!r}.")
    if isinstance(pretrained_bands, int):
        pretrained_bands = list(range(pretrained_bands))
    if isinstance(model_bands, int):
        model_bands = list(range(model_bands))
    state[proj_key] = remap_band_channels(
        state[proj_key],
        model_state[model_key],
        list(pretrained_bands),
        list(model_bands),
        name=proj_key,
        allow_no_match=True,
    )
    if prefix:
        state = remove_prefixes(state, prefix)
    return state
