"""Named spectral bands, so configs can say ``NIR_NARROW`` instead of remembering band indices."""

from __future__ import annotations

from enum import Enum


class _BandEnum(str, Enum):
    """A band name that compares equal to its string value (``HLSBands.RED == "RED"``)."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def try_convert_to_hls_bands_enum(cls, value: object) -> object:
        """Return the member named ``value`` if there is one, else ``value`` unchanged."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in cls.__members__:
            return cls[value]
        return value


class HLSBands(_BandEnum):
    """Bands of NASA's Harmonized Landsat Sentinel-2 product (the Prithvi pretraining bands and more)."""

    COASTAL_AEROSOL = "COASTAL_AEROSOL"
    BLUE = "BLUE"
    GREEN = "GREEN"
    RED = "RED"
    RED_EDGE_1 = "RED_EDGE_1"
    RED_EDGE_2 = "RED_EDGE_2"
    RED_EDGE_3 = "RED_EDGE_3"
    NIR_BROAD = "NIR_BROAD"
    NIR_NARROW = "NIR_NARROW"
    SWIR_1 = "SWIR_1"
    SWIR_2 = "SWIR_2"
    WATER_VAPOR = "WATER_VAPOR"
    CIRRUS = "CIRRUS"
    THERMAL_INFRARED_1 = "THERMAL_INFRARED_1"
    THERMAL_INFRARED_2 = "THERMAL_INFRARED_2"


class OpticalBands(_BandEnum):
    """Generic optical bands."""

    COASTAL_AEROSOL = "COASTAL_AEROSOL"
    BLUE = "BLUE"
    GREEN = "GREEN"
    RED = "RED"
    RED_EDGE_1 = "RED_EDGE_1"
    RED_EDGE_2 = "RED_EDGE_2"
    RED_EDGE_3 = "RED_EDGE_3"
    NIR_BROAD = "NIR_BROAD"
    NIR_NARROW = "NIR_NARROW"
    SWIR_1 = "SWIR_1"
    SWIR_2 = "SWIR_2"
    WATER_VAPOR = "WATER_VAPOR"
    CIRRUS = "CIRRUS"


class SARBands(_BandEnum):
    """Synthetic-aperture radar polarisations and derived bands."""

    VV = "VV"
    VH = "VH"
    HH = "HH"
    HV = "HV"
    ASC_VV = "ASC_VV"
    ASC_VH = "ASC_VH"
    DSC_VV = "DSC_VV"
    DSC_VH = "DSC_VH"
    VV_VH = "VV_VH"
