"""Shared plumbing of the backbones pretrained by torchgeo (SSL4EO-S12/L, SeCo, fMoW, Satlas).

The backbones in :mod:`~terratorch.models.backbones.torchgeo_resnet`, ``torchgeo_vit`` and
``torchgeo_swin_satlas`` are plain timm / torchvision architectures; what they share is here:

* naming the torchgeo weights (``weights=`` takes a torchgeo ``WeightsEnum`` member, its
  ``"ResNet50_Weights.SENTINEL2_ALL_MOCO"`` spelling, or ``None``) without importing torchgeo until
  weights are actually needed;
* translating the weights' own band names (``B8a``, ``SR_B4``, ``VV``) into TerraTorch band names,
  per sensor, so ``model_bands`` can subset and reorder the first layer;
* finding the file offline: ``ckpt_data`` (a local path or a ``https://hf.co/...`` address), else the
  torch hub / Hugging Face caches where torchgeo would have stored it, else an error naming the file
  and the address to download it from;
* choosing the returned features from ``out_indices``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from terratorch.models.weights import (
    PretrainedWeightsNotFoundError,
    load_pretrained_weights,
    read_checkpoint,
    resolve_weights_file,
)

__all__ = [
    "load_torchgeo_weights",
    "pretrained_bands",
    "resolve_weights",
    "select_indices",
    "weights_label",
]

_S2 = {
    "B01": "COASTAL_AEROSOL",
    "B02": "BLUE",
    "B03": "GREEN",
    "B04": "RED",
    "B05": "RED_EDGE_1",
    "B06": "RED_EDGE_2",
    "B07": "RED_EDGE_3",
    "B08": "NIR_BROAD",
    "B8A": "NIR_NARROW",
    "B09": "WATER_VAPOR",
    "B10": "CIRRUS",
    "B11": "SWIR_1",
    "B12": "SWIR_2",
}
#: Sentinel-2 (both spellings: ``B4`` and ``B04``), SAR and RGB names of the torchgeo weights.
GENERIC_BANDS: dict[str, str] = {
    **_S2,
    **{k[0] + k[2:]: v for k, v in _S2.items() if k[1] == "0"},
    "VV": "VV",
    "VH": "VH",
    "R": "RED",
    "G": "GREEN",
    "B": "BLUE",
}
_TM = {"B1": "BLUE", "B2": "GREEN", "B3": "RED", "B4": "NIR_NARROW", "B5": "SWIR_1", "B7": "SWIR_2"}
_OLI = {
    "B1": "COASTAL_AEROSOL",
    "B2": "BLUE",
    "B3": "GREEN",
    "B4": "RED",
    "B5": "NIR_NARROW",
    "B6": "SWIR_1",
    "B7": "SWIR_2",
    "B8": "PANCHROMATIC",
    "B9": "CIRRUS",
    "B10": "THERMAL_INFRARED_1",
    "B11": "THERMAL_INFRARED_2",
}
#: Landsat band names per sensor (torchgeo's weight names start with the sensor).
LANDSAT_BANDS: dict[str, dict[str, str]] = {
    "LANDSAT_TM_TOA": {**_TM, "B6": "THERMAL_INFRARED_1"},
    "LANDSAT_ETM_TOA": {
        **_TM,
        "B6_VCID_1": "THERMAL_INFRARED_1",
        "B6_VCID_2": "THERMAL_INFRARED_2",
        "B8": "PANCHROMATIC",
    },
    "LANDSAT_ETM_SR": {f"SR_{k}": v for k, v in _TM.items()},
    "LANDSAT_OLI_TIRS_TOA": _OLI,
    "LANDSAT_OLI_SR": {f"SR_{k}": v for k, v in _OLI.items() if int(k[1:]) <= 7},
    # Satlas' Landsat 8/9 weights spell the OLI-TIRS bands B01..B11
    "LANDSAT": {**_OLI, **{f"B{int(k[1:]):02d}": v for k, v in _OLI.items()}},
}
_RGB = ("RED", "GREEN", "BLUE")


def resolve_weights(weights: Any) -> Any:
    """The torchvision ``Weights`` of ``weights``: a torchgeo enum member, its name, or ``None``.

    Strings name a member of ``torchgeo.models`` (``"ResNet50_Weights.SENTINEL2_ALL_MOCO"``), which
    lets YAML configs choose other torchgeo weights than a backbone's default.

    Raises:
        ValueError: The string names no torchgeo weights (close matches are suggested).
    """
    if weights is None or not isinstance(weights, str):
        return weights
    import difflib

    import torchgeo.models

    enum_name, _, member = weights.partition(".")
    enum = getattr(torchgeo.models, enum_name, None)
    if isinstance(enum, type) and issubclass(enum, Enum) and member in enum.__members__:
        return enum[member]
    known = [
        f"{name}.{m}"
        for name in dir(torchgeo.models)
        if name.endswith("_Weights") and isinstance(getattr(torchgeo.models, name), type)
        for m in getattr(torchgeo.models, name).__members__
    ]
    close = difflib.get_close_matches(weights, known, n=3)
    raise ValueError(
        f"Unknown torchgeo weights {weights!r}; expected 'EnumName.MEMBER' of torchgeo.models"
        + (f", e.g. {close}" if close else "")
        + "."
    )


def weights_label(weights: Any) -> str:
    """``"ResNet50_Weights.SENTINEL2_ALL_MOCO"`` for an enum member (its ``str``), else ``repr``."""
    if isinstance(weights, str):
        return weights
    if isinstance(weights, Enum):
        return f"{type(weights).__name__}.{weights.name}"
    return repr(weights)


def _sensor_table(weights: Any) -> Mapping[str, str]:
    member = getattr(weights, "name", "") if isinstance(weights, Enum) else ""
    for prefix in sorted(LANDSAT_BANDS, key=len, reverse=True):
        if member.startswith(prefix):
            return {**GENERIC_BANDS, **LANDSAT_BANDS[prefix]}
    return GENERIC_BANDS


def canonical_band(band: object, table: Mapping[str, str] = GENERIC_BANDS) -> object:
    """TerraTorch name of ``band``: enum members give their value; sensor names go through ``table``."""
    if isinstance(band, Enum):
        band = band.value
    if isinstance(band, str):
        name = band.split(".")[-1].strip()
        return table.get(name, table.get(name.upper(), name.upper()))
    return band


def pretrained_bands(weights: Any, in_chans: int | None = None) -> list[object] | None:
    """The bands of the checkpoint's first layer in TerraTorch names, or ``None`` when unknown.

    Weights without band metadata and three input channels (fMoW) are taken to be RGB.
    """
    weights = resolve_weights(weights)
    if weights is None:
        return None
    meta = getattr(weights, "meta", {}) or {}
    bands = meta.get("bands")
    if not bands:
        return list(_RGB) if (in_chans or meta.get("in_chans")) == 3 else None
    table = _sensor_table(weights)
    return [canonical_band(b, table) for b in bands]


def model_band_names(model_bands: Sequence[object], weights: Any) -> list[object]:
    """``model_bands`` in TerraTorch names, read with the sensor table of ``weights``."""
    table = _sensor_table(resolve_weights(weights))
    return [canonical_band(b, table) for b in model_bands]


def _hf_parts(url: str) -> tuple[str, str] | None:
    """``(repo id, file name)`` of a ``https://hf.co/<repo>/resolve/<rev>/<file>`` address."""
    for host in ("https://hf.co/", "https://huggingface.co/"):
        if url.startswith(host) and "/resolve/" in url:
            repo = url[len(host) :].split("/resolve/", 1)[0]
            return repo, url.rsplit("/", 1)[-1]
    return None


def weights_path(ckpt_data: str | os.PathLike[str] | None, weights: Any, model_name: str) -> Path:
    """The local weights file: ``ckpt_data`` or the cached file of ``weights``.

    Args:
        ckpt_data: A local file, or an ``http(s)`` address (looked up in the caches like ``weights``).
        weights: torchgeo weights whose ``url`` is looked up when ``ckpt_data`` is ``None``.
        model_name: Registry name, for messages.

    Raises:
        PretrainedWeightsNotFoundError: Nothing to load, or the file is not local; the message names
            the places looked in and the address to download from.
    """
    url: str | None
    if ckpt_data is not None and not str(ckpt_data).startswith(("http://", "https://")):
        return resolve_weights_file(ckpt_data, model_name=model_name)
    if ckpt_data is not None:
        url = str(ckpt_data)
    else:
        weights = resolve_weights(weights)
        url = getattr(weights, "url", None)
        if url is None:
            raise PretrainedWeightsNotFoundError(
                f"{model_name}: pretrained=True but weights=None and no ckpt_data; pass "
                "ckpt_data='/path/to/file.pth', a torchgeo weights name, or pretrained=False."
            )
    hf = _hf_parts(url)
    try:
        return resolve_weights_file(
            hf_repo_id=hf[0] if hf else None,
            hf_filenames=[hf[1]] if hf else (),
            url=url,
            model_name=model_name,
        )
    except PretrainedWeightsNotFoundError as error:
        target = Path(_hub_dir()) / "checkpoints" / url.split("?", 1)[0].rsplit("/", 1)[-1]
        raise PretrainedWeightsNotFoundError(
            f"{error} The file is published at {url}: download it to {target} (where torchgeo keeps it) "
            "or anywhere and pass its path as ckpt_data=..."
        ) from None


def _hub_dir() -> str:
    import torch.hub

    return torch.hub.get_dir()


def load_torchgeo_weights(
    model: nn.Module,
    *,
    model_bands: Sequence[object] | None,
    ckpt_data: str | os.PathLike[str] | None,
    weights: Any,
    first_layer: str,
    classifier: str,
    wrapper_attr: str,
    model_name: str,
    allow_partial: bool = False,
    state_dict_hook: Any = None,
) -> None:
    """Load torchgeo-layout weights into the bare timm / torchvision ``model``, band by band.

    The checkpoint's first layer (``first_layer``, e.g. ``"conv1.weight"``) is rebuilt for
    ``model_bands``: bands the weights have are copied into their new positions, others keep the
    model's fresh initialisation. A classifier (keys starting with ``classifier``) may be absent or
    of another size. Keys saved from our wrapper (``<wrapper_attr>.conv1.weight``) load too.

    Raises:
        PretrainedWeightsNotFoundError: See :func:`weights_path`.
        terratorch.models.weights.CheckpointMismatchError: Weights missing or of another shape
            (unless ``allow_partial``).
        terratorch.models.weights.BandMismatchError: No model band is among the checkpoint's bands.
    """
    path = weights_path(ckpt_data, weights, model_name)
    state = read_checkpoint(path)
    prefix = wrapper_attr + "."
    if any(k.startswith(prefix) or f".{prefix}" in k for k in state):
        state = {k.split(prefix, 1)[1]: v for k, v in state.items() if prefix in k}
    target = model.state_dict()
    state = {
        k: v
        for k, v in state.items()
        if not k.startswith(classifier) or (k in target and target[k].shape == v.shape)
    }
    in_chans = target[first_layer].shape[1] if first_layer in target else None
    ckpt_bands = pretrained_bands(weights, in_chans=_checkpoint_channels(state, first_layer) or in_chans)
    bands = model_band_names(model_bands, weights) if model_bands is not None and ckpt_bands else None
    load_pretrained_weights(
        model,
        state,
        model_bands=bands,
        ckpt_bands=ckpt_bands if bands is not None else None,
        input_layers=[first_layer],
        allow_partial=allow_partial,
        ignore_missing=(classifier,),
        state_dict_hook=state_dict_hook,
        source=repr(str(path)),
    )


def _checkpoint_channels(state: Mapping[str, Tensor], key: str) -> int | None:
    tensor = state.get(key)
    return int(tensor.shape[1]) if tensor is not None and tensor.ndim > 1 else None


def select_indices(count: int, out_indices: Sequence[int] | None, default: Sequence[int]) -> list[int]:
    """Sorted, de-duplicated feature positions for ``out_indices`` (negative ones count from the end).

    Raises:
        ValueError: An index outside ``-count..count-1``.
    """
    wanted = list(default) if not out_indices else list(out_indices)
    bad = [i for i in wanted if not -count <= int(i) < count]
    if bad:
        raise ValueError(
            f"out_indices {bad} out of range for {count} features "
            f"(valid: 0..{count - 1}, or negative from the end)."
        )
    return sorted({int(i) % count for i in wanted})
