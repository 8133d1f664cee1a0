"""TerraMind modality table: canonical keys, the names users may write, bands and input layout.

Pure data and string handling (no torch), so configs can be validated before any model is built.

Public names (stable; helper code for TiM / the encoder-decoder imports them):

- :data:`MODALITY_INFO` — canonical key (``"untok_sen2l2a@224"``, ``"tok_lulc@224"``, ``"coords"``,
  ...) → facts of that modality: ``type`` (``"img"`` / ``"seq"``), ``kind`` (``"image"`` for raw
  pixels, ``"image_tokens"`` for tokenised images, ``"sequence"``), ``input_size``, ``patch_size``,
  ``num_channels`` (raw images), ``vocab_size`` (tokens), ``max_length`` / ``padding_idx``
  (sequences), ``max_tokens``, ``min_tokens``, ``pretokenized``, ``id``, ``path``. The key set and
  values are those of TerraTorch 1.2 (``MODALITY_INFO`` there also holds embedding factories; ours
  are in :mod:`.embeddings`).
- :data:`PRETRAINED_BANDS` / :data:`V01_PRETRAINED_BANDS` — band names, in channel order, of the raw
  image modalities of the v1 / v0.1 checkpoints.
- :data:`MODALITY_ALIASES` — the short names users write (``S2L2A``, ``S1GRD``, ``LULC``, ...) and the
  canonical key each one selects in an encoder.
- :func:`resolve_modality` — a user's modality name → canonical encoder key (TerraTorch 1.2 rules).
- :func:`resolve_output_modality` — a name → tokenised key, as used for generated (TiM / decoder)
  modalities.
- :func:`modality_id` — TerraTorch's 15-bit hash id of a modality key.
- :func:`is_image_modality`, :func:`valid_modality_names` and :class:`UnknownModalityError`.
"""

from __future__ import annotations

import hashlib
from typing import Any

from terratorch.choices import did_you_mean

__all__ = [
    "MODALITY_ALIASES",
    "MODALITY_INFO",
    "OUTPUT_MODALITY_ALIASES",
    "PRETRAINED_BANDS",
    "V01_PRETRAINED_BANDS",
    "UnknownModalityError",
    "is_image_modality",
    "modality_id",
    "normalize_modality_name",
    "resolve_modality",
    "resolve_output_modality",
    "valid_modality_names",
]


class UnknownModalityError(ValueError, NotImplementedError):
    """A modality name matches no TerraMind modality (``NotImplementedError`` in TerraTorch 1.2)."""


def modality_id(key: str) -> int:
    """The 15-bit id TerraMind derives from a modality key (sha256 of the key, modulo 2**15)."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % (2**15)


def _raw(size: int, channels: int, path: str) -> dict[str, Any]:
    return {
        "input_size": size,
        "patch_size": 16,
        "type": "img",
        "kind": "image",
        "num_channels": channels,
        "min_tokens": 0,
        "max_tokens": None,
        "path": path,
    }


def _tok(vocab: int, path: str | None = None, size: int = 224) -> dict[str, Any]:
    info = {
        "input_size": size,
        "patch_size": 16,
        "type": "img",
        "kind": "image_tokens",
        "vocab_size": vocab,
        "min_tokens": 0,
        "max_tokens": None,
        "pretokenized": True,
    }
    if path is not None:
        info["path"] = path
    return info


def _seq(max_length: int, path: str | None = None) -> dict[str, Any]:
    info = {
        "type": "seq",
        "kind": "sequence",
        "vocab_size": 30_000,
        "max_length": max_length,
        "padding_idx": 0,
        "min_tokens": 0,
        "max_tokens": max_length,
    }
    if path is not None:
        info["path"] = path
    return info


_TABLE: dict[str, dict[str, Any]] = {
    "sen1grd@264": _raw(264, 2, "S1GRD/"),
    "sen1rtc@264": _raw(264, 2, "S1RTC/"),
    "sen2l2a@264": _raw(264, 12, "S2L2A/"),
    "sen2l1c@264": _raw(264, 13, "S2L1C/"),
    "sen2rgb@264": _raw(264, 3, "S2RGB/"),
    "lulc@264": _raw(264, 9, "LULC/"),
    "dem@264": _raw(264, 1, "DEM/"),
    "ndvi@264": _raw(264, 1, "NDVI/"),
    "untok_sen2l2a@224": _raw(224, 12, "S2L2A_untokenized"),
    "untok_sen2l1c@224": _raw(224, 13, "S2L1C_untokenized"),
    "untok_sen2rgb@224": _raw(224, 3, "S2RGB_untokenized"),
    "untok_sen1grd@224": _raw(224, 2, "S1GRD_untokenized"),
    "untok_sen1rtc@224": _raw(224, 2, "S1RTC_untokenized"),
    "tok_sen1grd@224": _tok(15360, "S1GRD_tokens"),
    "tok_sen1rtc@224": _tok(15360, "S1RTC_tokens"),
    "tok_sen2l2a@224": _tok(15360, "S2L2A_tokens"),
    "tok_lulc@224": _tok(4375, "LULC_tokens"),
    "untok_dem@224": _raw(224, 1, "DEM_untokenized"),
    "tok_dem@224": _tok(15360, "DEM_tokens"),
    "tok_ndvi@224": _tok(15360, "NDVI_tokens"),
    "rgb@224": _raw(224, 3, "rgb"),
    "caption": _seq(256, "captions_txt"),
    "coords": _seq(4, "coords"),
    "det": _seq(256),
    "tok_rgb@224": _tok(16384),
    "tok_depth@224": _tok(8192),
    "tok_normal@224": _tok(8192),
    "tok_semseg@224": _tok(4096),
    "tok_clip@224": _tok(8192),
    "rgb@448": _raw(448, 3, "rgb"),
    "tok_rgb@448": _tok(16384, size=448),
    "tok_depth@448": _tok(8192, size=448),
    "tok_normal@448": _tok(8192, size=448),
    "tok_semseg@448": _tok(4096, size=448),
    "tok_clip@448": _tok(8192, size=448),
}
for _key, _info in _TABLE.items():
    _info["id"] = modality_id(_key)

#: Canonical modality key → facts of that modality (see the module docstring for the fields).
MODALITY_INFO: dict[str, dict[str, Any]] = _TABLE

_S2L2A = [
    "COASTAL_AEROSOL",
    "BLUE",
    "GREEN",
    "RED",
    "RED_EDGE_1",
    "RED_EDGE_2",
    "RED_EDGE_3",
    "NIR_BROAD",
    "NIR_NARROW",
    "WATER_VAPOR",
    "SWIR_1",
    "SWIR_2",
]
_S2L1C = [*_S2L2A[:10], "CIRRUS", *_S2L2A[10:]]

#: Bands (channel order) of the raw image modalities in the TerraMind v1 checkpoints.
PRETRAINED_BANDS: dict[str, list[str]] = {
    "untok_sen2l2a@224": list(_S2L2A),
    "untok_sen2l1c@224": list(_S2L1C),
    "untok_sen2rgb@224": ["RED", "GREEN", "BLUE"],
    "untok_sen1grd@224": ["VV", "VH"],
    "untok_sen1rtc@224": ["VV", "VH"],
    "untok_dem@224": ["DEM"],
}

#: Bands of the TerraMind v0.1 checkpoint (only S2L2A is a raw image modality there).
V01_PRETRAINED_BANDS: dict[str, list[str]] = {"untok_sen2l2a@224": list(_S2L2A)}

#: Short names users write for encoder inputs (any spelling that contains them works, case-insensitively).
MODALITY_ALIASES: dict[str, str] = {
    "S2L2A": "untok_sen2l2a@224",
    "S2L1C": "untok_sen2l1c@224",
    "S1RTC": "untok_sen1rtc@224",
    "S1GRD": "untok_sen1grd@224",
    "S2RGB": "untok_sen2rgb@224",
    "RGB": "untok_sen2rgb@224",
    "DEM": "untok_dem@224",
    "LULC": "tok_lulc@224",
    "NDVI": "tok_ndvi@224",
    "Caption": "caption",
    "Coords": "coords",
    "Location": "coords",
}

#: Short names for generated (tokenised) modalities, as TiM and the encoder-decoder map them.
OUTPUT_MODALITY_ALIASES: dict[str, str] = {
    "S2L2A": "tok_sen2l2a@224",
    "S1RTC": "tok_sen1rtc@224",
    "S1GRD": "tok_sen1grd@224",
    "DEM": "tok_dem@224",
    "LULC": "tok_lulc@224",
    "NDVI": "tok_ndvi@224",
    "Caption": "caption",
    "Coords": "coords",
}

# Substring rules, checked in order on the normalised name (TerraTorch 1.2's precedence).
_ENCODER_RULES: tuple[tuple[str, str], ...] = (
    ("sen2l2a", "untok_sen2l2a@224"),
    ("sen2l1c", "untok_sen2l1c@224"),
    ("sen1rtc", "untok_sen1rtc@224"),
    ("sen1", "untok_sen1grd@224"),  # S1 without a product defaults to GRD
    ("rgb", "untok_sen2rgb@224"),
    ("dem", "untok_dem@224"),
    ("lulc", "tok_lulc@224"),
    ("ndvi", "tok_ndvi@224"),
    ("caption", "caption"),
    ("coord", "coords"),
)
_OUTPUT_RULES: tuple[tuple[str, str], ...] = (
    ("sen2", "tok_sen2l2a@224"),
    ("sen1rtc", "tok_sen1rtc@224"),
    ("sen1", "tok_sen1grd@224"),
    ("dem", "tok_dem@224"),
    ("lulc", "tok_lulc@224"),
    ("ndvi", "tok_ndvi@224"),
    ("caption", "caption"),
    ("coord", "coords"),
)


def normalize_modality_name(name: str) -> str:
    """Lower-case ``name`` and spell satellites out
    (``s2`` → ``sen2``, ``s1`` → ``sen1``, location → coords)."""
    return name.lower().replace("s2", "sen2").replace("s1", "sen1").replace("location", "coords")


def valid_modality_names(output: bool = False) -> list[str]:
    """Every accepted spelling: the short aliases, then the canonical keys of :data:`MODALITY_INFO`."""
    aliases = OUTPUT_MODALITY_ALIASES if output else MODALITY_ALIASES
    return list(aliases) + list(MODALITY_INFO)


def _unknown(name: object, output: bool) -> UnknownModalityError:
    aliases = OUTPUT_MODALITY_ALIASES if output else MODALITY_ALIASES
    listed = ", ".join(f"{alias} ({key})" for alias, key in aliases.items())
    hint = did_you_mean(str(name), valid_modality_names(output))
    return UnknownModalityError(
        f"Unknown TerraMind modality {name!r}.{hint} Valid names (case-insensitive) and the key each "
        f"selects: {listed}; or any key of MODALITY_INFO: {', '.join(MODALITY_INFO)}. New modalities "
        "are given as a dict {'<name>': <num_channels>}."
    )


def _resolve(name: object, rules: tuple[tuple[str, str], ...], output: bool) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"A TerraMind modality is a name (str) or a dict {{'<name>': <num_channels>}}, got {name!r} "
            f"({type(name).__name__})."
        )
    if name in MODALITY_INFO:
        return name
    normalized = normalize_modality_name(name)
    for needle, key in rules:
        if needle in normalized:
            return key
    raise _unknown(name, output)


def resolve_modality(name: str) -> str:
    """The canonical encoder key for a user's modality name (``"S2L2A"`` → ``"untok_sen2l2a@224"``).

    Exact keys of :data:`MODALITY_INFO` are taken as they are; other names are normalised
    (:func:`normalize_modality_name`) and matched by substring, as TerraTorch 1.2 does, so
    ``"s2l2a"``, ``"S2L2A_data"`` and ``"sen2l2a"`` all select S2L2A and a bare ``"S1"`` selects S1GRD.

    Raises:
        UnknownModalityError: No rule matches; the message lists the valid names and aliases.
    """
    return _resolve(name, _ENCODER_RULES, output=False)


def resolve_output_modality(name: str) -> str:
    """The tokenised key for a generated modality (``"S2L2A"`` → ``"tok_sen2l2a@224"``), TerraTorch 1.2 rules.

    Raises:
        UnknownModalityError: No rule matches; the message lists the valid names.
    """
    return _resolve(name, _OUTPUT_RULES, output=True)


def is_image_modality(key: str) -> bool:
    """Whether the canonical ``key`` is spatial (raw pixels or image tokens) rather than a sequence."""
    return MODALITY_INFO[key]["type"] == "img"
