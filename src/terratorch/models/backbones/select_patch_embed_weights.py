"""Copy the patch-embedding channels of a checkpoint onto another band selection (public helper).

Kept at this path because user code imports it directly; the work is done by
:func:`terratorch.models.weights.remap_band_channels`, the same code every backbone uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from terratorch.models.weights import find_key, remap_band_channels

__all__ = ["select_patch_embed_weights"]

DEFAULT_PROJ_KEY = "patch_embed.proj.weight"


def select_patch_embed_weights(
    state_dict: Mapping[str, Tensor],
    model: nn.Module,
    pretrained_bands: Sequence[object],
    model_bands: Sequence[object],
    proj_key: str | None = None,
) -> dict[str, Tensor]:
    """Return ``state_dict`` with its patch-embedding weight rebuilt for ``model_bands``.

    Channels of bands present in ``pretrained_bands`` are copied into their new positions; bands the
    checkpoint lacks take the model's current (fresh) weights. A patch- or tubelet-size mismatch
    warns and keeps the model's weights. Bands are names (``"NIR_NARROW"``, ``HLSBands.RED``), ints
    or free strings, compared case-insensitively.

    Args:
        state_dict: Checkpoint tensors (not modified; a new dict is returned).
        model: The model the weights are for (its current weight supplies fresh channels).
        pretrained_bands: Bands of the checkpoint, in channel order.
        model_bands: Bands of the model input, in channel order.
        proj_key: Key of the weight, default ``"patch_embed.proj.weight"`` (also found under a
            prefix such as ``encoder.``).

    Raises:
        KeyError: The key is in neither the checkpoint nor the model.
        terratorch.models.weights.BandMismatchError: No band matches or counts disagree.

    Unlike the historical helper, this never assigns mismatched shapes silently and never mutates the
    caller's dict.
    """
    name = proj_key or DEFAULT_PROJ_KEY
    model_state = model.state_dict()
    model_key = find_key(model_state, name)
    ckpt_key = find_key(state_dict, name)
    if model_key is None or ckpt_key is None:
        where = "model" if model_key is None else "checkpoint"
        raise KeyError(f"Patch-embedding weight {name!r} not found in the {where}; pass proj_key=... .")
    result = dict(state_dict)
    result[ckpt_key] = remap_band_channels(
        state_dict[ckpt_key], model_state[model_key], pretrained_bands, model_bands, name=ckpt_key
    )
    return result
