"""Means and standard deviations of the TerraMind pretraining data, per modality and band.

The encoders expect inputs standardised with these values (``(x - mean) / std`` per band); the
numbers are those TerraTorch 1.2 publishes. Pure data, no torch.

Public names: :data:`v1_pretraining_mean`, :data:`v1_pretraining_std` (TerraMind 1.0),
:data:`v01_pretraining_mean` / :data:`v01_pretraining_std` (0.1), :data:`v1_5_pretraining_mean` /
:data:`v1_5_pretraining_std` (1.5 additions), and :func:`pretraining_statistics`, which picks a
modality by name or alias and optionally a subset of its bands.
"""

from __future__ import annotations

from collections.abc import Sequence

from terratorch.choices import unknown_choice
from terratorch.models.backbones.terramind.modalities import PRETRAINED_BANDS, resolve_modality

__all__ = [
    "pretraining_statistics",
    "v01_pretraining_mean",
    "v01_pretraining_std",
    "v1_5_pretraining_mean",
    "v1_5_pretraining_std",
    "v1_pretraining_mean",
    "v1_pretraining_std",
]

_S2L2A_MEAN = [
    1390.458,
    1503.317,
    1718.197,
    1853.91,
    2199.1,
    2779.975,
    2987.011,
    3083.234,
    3132.22,
    3162.988,
    2424.884,
    1857.648,
]
_S2L2A_STD = [
    2106.761,
    2141.107,
    2038.973,
    2134.138,
    2085.321,
    1889.926,
    1820.257,
    1871.918,
    1753.829,
    1797.379,
    1434.261,
    1334.311,
]
_S2L1C_MEAN = [
    2357.089,
    2137.385,
    2018.788,
    2082.986,
    2295.651,
    2854.537,
    3122.849,
    3040.56,
    3306.481,
    1473.847,
    506.07,
    2472.825,
    1838.929,
]
_S2L1C_STD = [
    1624.683,
    1675.806,
    1557.708,
    1833.702,
    1823.738,
    1733.977,
    1732.131,
    1679.732,
    1727.26,
    1024.687,
    442.165,
    1331.411,
    1160.419,
]
_RGB_MEAN, _RGB_STD = [87.271, 80.931, 66.667], [58.767, 47.663, 42.631]
_GRD_MEAN, _GRD_STD = [-12.599, -20.293], [5.195, 5.890]
_RTC_MEAN, _RTC_STD = [-10.93, -17.329], [4.391, 4.459]
_DEM_MEAN, _DEM_STD = [670.665], [951.272]
_NDVI_MEAN, _NDVI_STD = [0.327], [0.322]

#: TerraMind 1.0 pretraining means, keyed by canonical modality key.
v1_pretraining_mean: dict[str, list[float]] = {
    "untok_sen2l2a@224": _S2L2A_MEAN,
    "untok_sen2l1c@224": _S2L1C_MEAN,
    "untok_sen2rgb@224": _RGB_MEAN,
    "untok_sen1grd@224": _GRD_MEAN,
    "untok_sen1rtc@224": _RTC_MEAN,
    "untok_dem@224": _DEM_MEAN,
    "tok_sen1grd@224": _GRD_MEAN,
    "tok_sen1rtc@224": _RTC_MEAN,
    "tok_sen2l2a@224": _S2L2A_MEAN,
    "tok_lulc@224": [0],
    "tok_dem@224": _DEM_MEAN,
    "tok_ndvi@224": _NDVI_MEAN,
}
#: TerraMind 1.0 pretraining standard deviations, keyed by canonical modality key.
v1_pretraining_std: dict[str, list[float]] = {
    "untok_sen2l2a@224": _S2L2A_STD,
    "untok_sen2l1c@224": _S2L1C_STD,
    "untok_sen2rgb@224": _RGB_STD,
    "untok_sen1grd@224": _GRD_STD,
    "untok_sen1rtc@224": _RTC_STD,
    "untok_dem@224": _DEM_STD,
    "tok_sen2l2a@224": _S2L2A_STD,
    "tok_sen1grd@224": _GRD_STD,
    "tok_sen1rtc@224": _RTC_STD,
    "tok_lulc@224": [1],
    "tok_dem@224": _DEM_STD,
    "tok_ndvi@224": _NDVI_STD,
}

_V01_S2_MEAN = [
    794.311,
    925.161,
    1183.128,
    1338.041,
    1667.254,
    2233.633,
    2460.96,
    2555.569,
    2619.542,
    2703.298,
    2406.497,
    1841.645,
]
_V01_S2_STD = [
    1164.883,
    1205.586,
    1223.713,
    1399.638,
    1403.298,
    1378.513,
    1434.924,
    1491.141,
    1454.089,
    1660.395,
    1473.248,
    1365.080,
]

#: TerraMind 0.1 pretraining means.
v01_pretraining_mean: dict[str, list[float]] = {
    "untok_sen2l2a@224": _V01_S2_MEAN,
    "tok_sen2l2a@224": _V01_S2_MEAN,
    "tok_sen1grd@224": _GRD_MEAN,
    "tok_lulc@224": [0],
    "tok_dem@224": [435.726],
}
#: TerraMind 0.1 pretraining standard deviations.
v01_pretraining_std: dict[str, list[float]] = {
    "untok_sen2l2a@224": _V01_S2_STD,
    "tok_sen2l2a@224": _V01_S2_STD,
    "tok_sen1grd@224": _GRD_STD,
    "tok_lulc@224": [1],
    "tok_dem@224": [560.326],
}

#: TerraMind 1.5 means: 1.0 plus NAIP and the raw LULC/NDVI and tokenised S2L1C/RGB entries.
v1_5_pretraining_mean: dict[str, list[float]] = {
    **v1_pretraining_mean,
    "naip@512": [107.20314516608458, 112.38461365995144, 93.28977241378502, 133.816892061648],
    "untok_lulc@224": [0],
    "untok_ndvi@224": _NDVI_MEAN,
    "tok_sen2l1c@224": _S2L1C_MEAN,
    "tok_sen2rgb@224": _RGB_MEAN,
}
#: TerraMind 1.5 standard deviations.
v1_5_pretraining_std: dict[str, list[float]] = {
    **v1_pretraining_std,
    "naip@512": [47.33802657655029, 39.109384320368385, 34.850792207554846, 47.32554578567598],
    "untok_lulc@224": [1],
    "untok_ndvi@224": _NDVI_STD,
    "tok_sen2l1c@224": _S2L1C_STD,
    "tok_sen2rgb@224": _RGB_STD,
}

_VERSIONS = {
    "v1": (v1_pretraining_mean, v1_pretraining_std),
    "v01": (v01_pretraining_mean, v01_pretraining_std),
    "v1_5": (v1_5_pretraining_mean, v1_5_pretraining_std),
}


def pretraining_statistics(
    modality: str, bands: Sequence[str] | None = None, version: str = "v1"
) -> tuple[list[float], list[float]]:
    """``(mean, std)`` of ``modality`` (name, alias or key) in the ``version`` pretraining data.

    Args:
        modality: ``"S2L2A"``, ``"untok_sen2l2a@224"``, ``"S1GRD"``, ...
        bands: Optional band names (of :data:`PRETRAINED_BANDS`), to pick and order a subset.
        version: ``"v1"`` (default), ``"v01"`` or ``"v1_5"``.

    Raises:
        ValueError: Unknown version, a modality without statistics, or a band the modality lacks.
    """
    if version not in _VERSIONS:
        raise ValueError(unknown_choice("TerraMind statistics version", version, _VERSIONS))
    means, stds = _VERSIONS[version]
    key = modality if modality in means else resolve_modality(modality)
    if key not in means:
        raise ValueError(unknown_choice(f"TerraMind {version} modality with statistics", key, means))
    mean, std = list(means[key]), list(stds[key])
    if bands is None:
        return mean, std
    names = [b.upper() for b in PRETRAINED_BANDS.get(key, [])]
    if not names:
        raise ValueError(f"{modality!r} ({key}) has no named bands to select; pass bands=None.")
    picked = []
    for band in bands:
        if str(band).upper() not in names:
            raise ValueError(unknown_choice(f"band of {key}", str(band), names))
        picked.append(names.index(str(band).upper()))
    return [mean[i] for i in picked], [std[i] for i in picked]
