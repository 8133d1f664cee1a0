"""Write tiny GEO-Bench v1 tasks in GEO-Bench's on-disk layout, for tests, docs and demos.

``make_geobench_demo(root, task_names=["m-eurosat"])`` creates ``<root>/classification_v1.0/m-eurosat/``
with random samples, a ``task_specs.pkl``, ``default_partition.json`` plus few-shot partitions,
``band_stats.json`` and the label files the task uses, so the ``M*NonGeoDataModule``\\ s (with
``data_root=<root>/<benchmark>``) and GEO-Bench's own reader both load it. No download, no
``geobench`` package needed.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import pickle
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from terratorch.datasets.geobench import GEOBENCH_DATASETS, GeobenchNonGeo

_SPLITS = ("train", "valid", "test")
_DATE = datetime.date(2020, 6, 15)


def band_name(cls: type[GeobenchNonGeo], position: int) -> str:
    """GEO-Bench-style name of band ``position`` of a task: ``"NN - NAME"``.

    The numeric prefix keeps GEO-Bench's property that names sort in the dataset's band order.
    """
    return f"{position:02d} - {cls.all_band_names[position]}"


def band_key(cls: type[GeobenchNonGeo], position: int) -> str:
    """HDF5 key of band ``position``: its name, dated (``_YYYY-MM-DD``) for m-nz-cattle/m-cashew-plant."""
    key = band_name(cls, position)
    if "temporal_coords" in cls.metadata and cls.data_dir != "m-forestnet":
        key += f"_{_DATE.isoformat()}"
    return key


def sample_name(cls: type[GeobenchNonGeo], index: int) -> str:
    """A sample name in the task's naming scheme (coordinates/dates where the task encodes them)."""
    lat, lon = 10.0 + index * 0.5, -20.0 - index * 0.25
    if cls.data_dir == "m-forestnet":
        return f"{lat}_{lon}_{_DATE.year}_{_DATE.month:02d}_{_DATE.day:02d}"
    if cls.data_dir in ("m-pv4ger", "m-pv4ger-seg"):
        return f"{lat},{lon}"
    if cls.data_dir == "m-nz-cattle":
        return f"cattle_{index:04d}_{lon},{lat}"
    return f"{cls.data_dir}_{index:05d}"


# ----------------------------------------------------------------------------- GEO-Bench objects


class _GeobenchObject:
    """Plain object pickled under a GEO-Bench class path (``geobench.task.TaskSpecifications``)."""

    def __init__(self, **state: Any) -> None:
        self.__dict__.update(state)


_GEOBENCH_CLASSES = {
    "geobench.task": ("TaskSpecifications",),
    "geobench.label": ("Classification", "MultiLabelClassification", "SegmentationClasses"),
    "geobench.dataset": ("BandInfo", "SpectralBand"),
}


@contextlib.contextmanager
def _geobench_classes() -> Iterator[dict[str, type]]:
    """Classes named like GEO-Bench's, so pickles reference them; the real ones when installed.

    Without the package, stand-in modules are registered only while pickling and removed after.
    """
    classes: dict[str, type] = {}
    added: list[str] = []
    try:
        if "geobench" not in sys.modules:
            sys.modules["geobench"] = types.ModuleType("geobench")
            added.append("geobench")
        for module_name, names in _GEOBENCH_CLASSES.items():
            module = sys.modules.get(module_name)
            if module is None:
                module = types.ModuleType(module_name)
                sys.modules[module_name] = module
                added.append(module_name)
            for name in names:
                cls = getattr(module, name, None)
                if cls is None:
                    cls = type(name, (_GeobenchObject,), {"__module__": module_name, "__qualname__": name})
                    setattr(module, name, cls)
                classes[name] = cls
        yield classes
    finally:
        for module_name in added:
            del sys.modules[module_name]


def _new(cls: type, **state: Any) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def _band_infos(cls: type[GeobenchNonGeo], classes: dict[str, type]) -> list[Any]:
    return [
        _new(
            classes["SpectralBand"],
            name=band_name(cls, i),
            alt_names=(name.lower(),),
            spatial_resolution=10.0,
            wavelength=None,
        )
        for i, name in enumerate(cls.all_band_names)
    ]


def _label_type(cls: type[GeobenchNonGeo], classes: dict[str, type]) -> Any:
    class_names = [f"class_{i}" for i in range(cls.num_classes)]
    state: dict[str, Any] = {"n_classes": cls.num_classes}
    if cls.label_kind == "segmentation":
        state.update(name="label", _class_names=class_names, alt_names=(), spatial_resolution=10.0)
        return _new(classes["SegmentationClasses"], **state)
    if cls.label_kind == "multilabel":
        return _new(classes["MultiLabelClassification"], class_name=class_names, **state)
    return _new(classes["Classification"], _class_names=class_names, **state)


def _task_specs_bytes(cls: type[GeobenchNonGeo], size: int, classes: dict[str, type]) -> bytes:
    specs = _new(
        classes["TaskSpecifications"],
        dataset_name=cls.data_dir,
        benchmark_name=cls.benchmark,
        patch_size=(size, size),
        n_time_steps=1,
        bands_info=_band_infos(cls, classes),
        label_type=_label_type(cls, classes),
        spatial_resolution=10.0,
    )
    return pickle.dumps(specs, protocol=4)


# ----------------------------------------------------------------------------- writer


def _write_sample(
    path: Path, cls: type[GeobenchNonGeo], bands: list[np.ndarray], label: Any, classes: dict[str, type]
) -> None:
    """One sample as GEO-Bench's ``write_sample_hdf5`` lays it out (band datasets + pickled attributes)."""
    import h5py

    infos = _band_infos(cls, classes)
    attributes: dict[str, Any] = {}
    order: list[str] = []
    with h5py.File(path, "w") as h5file:
        entries = [(band_key(cls, i), data, infos[i]) for i, data in enumerate(bands)]
        if cls.label_kind == "segmentation":
            entries.append(("label", label, _label_type(cls, classes)))
        for key, data, info in entries:
            h5file.create_dataset(key, data=data)
            order.append(key)
            dated = "temporal_coords" in cls.metadata and key != "label"
            attributes[key] = {
                "date": _DATE if dated else None,
                "date_id": _DATE if dated else None,
                "spatial_resolution": 10.0,
                "band_info": info,
                "meta_info": None,
                "transform": None,
                "crs": None,
            }
        if cls.label_kind != "segmentation":
            attributes["label"] = label
        attributes["bands_order"] = order
        h5file.attrs["pickle"] = str(pickle.dumps(attributes))


def _band_stats(values: dict[str, list[np.ndarray]]) -> dict[str, dict[str, float]]:
    stats = {}
    for key, arrays in values.items():
        flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
        q = np.percentile(flat, [0.1, 1, 5, 50, 95, 99, 99.9])
        stats[key] = {
            "min": float(flat.min()),
            "max": float(flat.max()),
            "mean": float(flat.mean()),
            "std": float(flat.std()),
            "median": float(q[3]),
            "percentile_0_1": float(q[0]),
            "percentile_1": float(q[1]),
            "percentile_5": float(q[2]),
            "percentile_95": float(q[4]),
            "percentile_99": float(q[5]),
            "percentile_99_9": float(q[6]),
        }
    return stats


def make_geobench_demo(
    root: str | Path,
    task_names: Sequence[str] | None = None,
    n_samples: int | dict[str, int] = 4,
    size: int = 32,
    few_shot: Sequence[str] = ("0.01x_train",),
    seed: int = 0,
    class_signal: int = 800,
) -> dict[str, Path]:
    """Write tiny GEO-Bench v1 tasks under ``root`` in GEO-Bench's layout.

    Args:
        root: GEO-Bench root; tasks go to ``<root>/<benchmark>/<task>/`` (``classification_v1.0``
            or ``segmentation_v1.0``), so the datamodules take ``data_root=<root>/<benchmark>``
            (or ``<root>`` itself).
        task_names: task directories to write (``m-eurosat``, ``m-bigearthnet``...); default all twelve.
        n_samples: samples per split, or per split name (``{"train": 2000, "valid": 8, "test": 8}``).
        size: image height and width in pixels (the real tasks are 32-500 px; small keeps it fast).
        few_shot: extra partitions to write, named like GEO-Bench's (``0.01x_train`` keeps one
            training sample, validation and test unchanged).
        seed: random seed of pixels and labels.
        class_signal: added to band ``c % n_bands`` where class ``c`` is present (the whole chip
            for a classification label, its pixels for segmentation), so that models can learn
            the labels and a comparison of backbones means something; 0 writes pure noise.

    Returns:
        Task name -> task directory.

    Raises:
        ValueError: an unknown task name (lists the twelve).
    """
    names = list(GEOBENCH_DATASETS) if task_names is None else list(task_names)
    unknown = [name for name in names if name not in GEOBENCH_DATASETS]
    if unknown:
        raise ValueError(f"unknown GEO-Bench task(s) {unknown}; choose among {list(GEOBENCH_DATASETS)}")
    counts = dict.fromkeys(_SPLITS, n_samples) if isinstance(n_samples, int) else dict(n_samples)
    if sorted(counts) != sorted(_SPLITS) or min(counts.values()) < 1 or size < 1:
        raise ValueError(
            f"n_samples must be >= 1 for each of {list(_SPLITS)} and size >= 1, got n_samples={n_samples}, "
            f"size={size}"
        )
    rng = np.random.default_rng(seed)
    written: dict[str, Path] = {}
    for name in names:
        cls = GEOBENCH_DATASETS[name]
        directory = Path(root) / cls.benchmark / cls.data_dir
        directory.mkdir(parents=True, exist_ok=True)
        partition: dict[str, list[str]] = {}
        values: dict[str, list[np.ndarray]] = {}
        label_vectors: dict[str, list[int]] = {}
        label_map: dict[str, list[str]] = {f"class_{i}": [] for i in range(cls.num_classes)}
        index = 0
        for split in _SPLITS:
            partition[split] = []
            for _ in range(counts[split]):
                sample = sample_name(cls, index)
                index += 1
                bands = [rng.integers(0, 3000, (size, size)).astype(np.int16) for _ in cls.all_band_names]
                if cls.label_kind == "segmentation":
                    label: Any = rng.integers(0, cls.num_classes, (size, size)).astype(np.int16)
                elif cls.label_kind == "multilabel":
                    label = (rng.random(cls.num_classes) < 0.2).astype(np.int64)
                    label[rng.integers(cls.num_classes)] = 1
                    label_vectors[sample] = label.tolist()
                else:
                    label = int(rng.integers(cls.num_classes))
                    label_map[f"class_{label}"].append(sample)
                _add_class_signal(bands, label, cls.label_kind, class_signal)
                with _geobench_classes() as classes:
                    _write_sample(directory / f"{sample}.hdf5", cls, bands, label, classes)
                for position, data in enumerate(bands):
                    values.setdefault(band_name(cls, position), []).append(data)
                partition[split].append(sample)
        _write_json(directory / "default_partition.json", partition)
        for extra in few_shot:
            _write_json(directory / f"{extra}_partition.json", {**partition, "train": partition["train"][:1]})
        _write_json(directory / "band_stats.json", _band_stats(values))
        if cls.data_dir == "m-eurosat":
            _write_json(directory / "label_map.json", label_map)
        if cls.label_kind == "multilabel":
            _write_json(directory / "label_stats.json", label_vectors)
        with _geobench_classes() as classes:
            (directory / "task_specs.pkl").write_bytes(_task_specs_bytes(cls, size, classes))
        written[name] = directory
    return written


def _add_class_signal(bands: list[np.ndarray], label: Any, kind: str, signal: int) -> None:
    """Brighten band ``c % len(bands)`` where class ``c`` is present (in place)."""
    if not signal:
        return
    if kind == "segmentation":
        for c in np.unique(label):
            band = bands[int(c) % len(bands)]
            band[label == c] += signal
    elif kind == "multilabel":
        for c in np.flatnonzero(label):
            bands[int(c) % len(bands)] += signal
    else:
        bands[int(label) % len(bands)] += signal


def _write_json(path: Path, content: Any) -> None:
    with path.open("w") as handle:
        json.dump(content, handle, indent=1)
