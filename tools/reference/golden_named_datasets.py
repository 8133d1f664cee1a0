"""Golden samples of the named Prithvi-EO-2.0 datasets, read by the reference from tiny files.

The tiny datasets come from ``tests/prithvi_release_data.py`` (NumPy/rasterio/h5py only, seeded),
so the golden test writes the same files and compares our samples with the reference's. Cases
leave out what we deliberately do differently (see ``docs/compatibility.md``): Sentinel-1 in
BioMassters and the burn-intensity location, and MultiTemporalCropClassification's location is
compared with a tolerance (the reference reprojects a one-pixel raster, we transform the point).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: name -> (data writer, module, class, constructor kwargs besides the root, sample indices)
CASES: dict[str, dict[str, Any]] = {
    "sen1floods11_meta": {
        "writer": "sen1floods11",
        "cls": ("sen1floods11", "Sen1Floods11NonGeo"),
        "kwargs": {"split": "train", "use_metadata": True},
        "indices": [0, 1],
    },
    "sen1floods11_bands": {
        "writer": "sen1floods11",
        "cls": ("sen1floods11", "Sen1Floods11NonGeo"),
        "kwargs": {"split": "val", "bands": ["RED", "NIR_NARROW", "SWIR_1"], "no_data_replace": None},
        "indices": [0],
    },
    "crop_defaults": {
        "writer": "multi_temporal_crop",
        "cls": ("multi_temporal_crop_classification", "MultiTemporalCropClassification"),
        "kwargs": {"split": "train"},
        "indices": [0, 1],
    },
    "crop_meta": {
        "writer": "multi_temporal_crop",
        "cls": ("multi_temporal_crop_classification", "MultiTemporalCropClassification"),
        "kwargs": {"split": "val", "no_data_replace": 0, "no_label_replace": -1, "use_metadata": True},
        "indices": [0],
    },
    "fire_scars_meta": {
        "writer": "fire_scars",
        "cls": ("fire_scars", "FireScarsNonGeo"),
        "kwargs": {"split": "train", "use_metadata": True},
        "indices": [0, 1],
    },
    "burn_intensity": {
        "writer": "burn_intensity",
        "cls": ("burn_intensity", "BurnIntensityNonGeo"),
        "kwargs": {"split": "train", "bands": ["RED", "NIR", "SWIR_2"]},
        "indices": [0, 2],
    },
    "landslide4sense": {
        "writer": "landslide4sense",
        "cls": ("landslide4sense", "Landslide4SenseNonGeo"),
        "kwargs": {"split": "train", "bands": ["DEM", "RED", "COASTAL AEROSOL"]},
        "indices": [0, 1],
    },
    "biomassters_s2": {
        "writer": "biomassters",
        "cls": ("biomassters", "BioMasstersNonGeo"),
        "kwargs": {
            "split": "train",
            "sensors": ["S2"],
            "bands": {"S2": ["RED", "NIR_BROAD", "CLOUD_PROBABILITY"]},
        },
        "indices": [0, 3],
        "root_key": "root",
    },
    "biomassters_s2_series": {
        "writer": "biomassters",
        "cls": ("biomassters", "BioMasstersNonGeo"),
        "kwargs": {
            "split": "train",
            "sensors": ["S2"],
            "bands": {"S2": ["BLUE", "SWIR_2"]},
            "as_time_series": True,
        },
        "indices": [1],
        "root_key": "root",
    },
    "sen4map": {
        "writer": "sen4map",
        "cls": ("sen4map", "Sen4MapDatasetMonthlyComposites"),
        "kwargs": {},
        "indices": [0, 1],
        "h5": "train.h5",
    },
    "sen4map_crop_tile": {
        "writer": "sen4map",
        "cls": ("sen4map", "Sen4MapDatasetMonthlyComposites"),
        "kwargs": {
            "crop_size": 4,
            "reverse_tile": True,
            "dataset_bands": ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12"],
            "input_bands": ["B4", "B8", "B2"],
            "classification_map": "crops",
        },
        "indices": [0],
        "h5": "train.h5",
        "keys": ["p100"],
    },
    "sen4map_resize": {
        "writer": "sen4map",
        "cls": ("sen4map", "Sen4MapDatasetMonthlyComposites"),
        "kwargs": {"crop_size": 6, "resize": True, "resize_to": [9, 9]},
        "indices": [0],
        "h5": "val.h5",
    },
}


def data_writers() -> dict[str, Any]:
    """The ``WRITERS`` of ``tests/prithvi_release_data.py`` (loaded by path: no ``tests`` package needed)."""
    path = ROOT / "tests" / "prithvi_release_data.py"
    spec = importlib.util.spec_from_file_location("prithvi_release_data", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.WRITERS


def build(case: dict[str, Any], root: Path) -> Any:
    """The dataset of ``case`` over the tiny data under ``root`` (the running interpreter's terratorch)."""
    module, name = case["cls"]
    cls = getattr(importlib.import_module(f"terratorch.datasets.{module}"), name)
    if "h5" in case:
        import h5py

        keys = case.get("keys")
        return cls(h5py.File(root / case["h5"], "r"), h5data_keys=keys, **case["kwargs"])
    return cls(**{case.get("root_key", "data_root"): str(root)}, **case["kwargs"])


def samples(case: dict[str, Any], root: Path) -> dict[str, Any]:
    """``"<index>/<key>" -> tensor`` of the case's samples."""
    dataset = build(case, root)
    out = {}
    for index in case["indices"]:
        for key, value in dataset[index].items():
            out[f"{index}/{key}"] = value.contiguous()
    return out


#: (module, class) of every named dataset and datamodule whose signature is recorded.
SIGNATURES = [
    ("datasets.sen1floods11", "Sen1Floods11NonGeo"),
    ("datasets.multi_temporal_crop_classification", "MultiTemporalCropClassification"),
    ("datasets.biomassters", "BioMasstersNonGeo"),
    ("datasets.burn_intensity", "BurnIntensityNonGeo"),
    ("datasets.landslide4sense", "Landslide4SenseNonGeo"),
    ("datasets.fire_scars", "FireScarsNonGeo"),
    ("datasets.sen4map", "Sen4MapDatasetMonthlyComposites"),
    ("datamodules.sen1floods11", "Sen1Floods11NonGeoDataModule"),
    ("datamodules.multi_temporal_crop_classification", "MultiTemporalCropClassificationDataModule"),
    ("datamodules.biomassters", "BioMasstersNonGeoDataModule"),
    ("datamodules.burn_intensity", "BurnIntensityNonGeoDataModule"),
    ("datamodules.landslide4sense", "Landslide4SenseNonGeoDataModule"),
    ("datamodules.fire_scars", "FireScarsNonGeoDataModule"),
    ("datamodules.sen4map", "Sen4MapLucasDataModule"),
]


def _plain(value: Any) -> Any:
    """A JSON-able form of a default: tuples become lists, enums their value, other objects their type."""
    import enum
    import inspect

    if value is inspect.Parameter.empty:
        return "<required>"
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"<{type(value).__name__}>"


def signatures() -> dict[str, list[list[Any]]]:
    """``Class -> [[parameter, default], ...]`` of the constructors in :data:`SIGNATURES`."""
    import inspect

    out = {}
    for module, name in SIGNATURES:
        cls = getattr(importlib.import_module(f"terratorch.{module}"), name)
        params = inspect.signature(cls.__init__).parameters.values()
        out[name] = [
            [p.name, _plain(p.default)] for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD
        ]
    return out


def write(out: Path) -> int:
    from safetensors.torch import save_file

    writers = data_writers()
    tensors: dict[str, Any] = {}
    manifest: dict[str, Any] = {"cases": {}, "signatures": signatures()}
    with tempfile.TemporaryDirectory() as tmp:
        roots = {name: writer(Path(tmp) / name) for name, writer in writers.items()}
        for name, case in CASES.items():
            found = samples(case, roots[case["writer"]])
            manifest["cases"][name] = {
                key: {"shape": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
                for key, v in found.items()
            }
            tensors.update({f"{name}/{key}": v for key, v in found.items()})
    save_file(tensors, str(out / "samples.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(tensors)
