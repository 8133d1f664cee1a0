"""GEO-Bench v1 datasets: the twelve ``m-*`` tasks read from GEO-Bench's own on-disk format.

A GEO-Bench task directory (``<root>/<benchmark>/<task>/``, e.g. ``classification_v1.0/m-eurosat``)
holds one HDF5 file per sample (one dataset per band, plus ``label`` for segmentation; the
classification label and per-band metadata are a pickled dict in the file's ``pickle``
attribute), ``task_specs.pkl``, partitions (``default_partition.json``,
``0.01x_train_partition.json``, ... mapping ``train``/``valid``/``test`` to sample names),
``band_stats.json`` and, for some tasks, ``label_map.json`` / ``label_stats.json``.

Bands are addressed by the reference's names (``RED``, ``NIR_BROAD``...): the band at position
``i`` of a dataset's ``all_band_names`` is the ``i``-th band key of a file in sorted order, as
GEO-Bench's key names (``"04 - Red"``) sort in that order. Samples are un-normalised float32
images ``(C, H, W)``; the datamodules normalise on the device.
"""

from __future__ import annotations

import ast
import datetime
import difflib
import io
import json
import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch.utils.data import Dataset

from terratorch.datasets.transforms import compose_transforms, to_tensor_sample

GEO_BENCH_ENV = "GEO_BENCH_DIR"
"""Environment variable GEO-Bench uses for its root (``<root>/<benchmark>/<task>``)."""

_SPLIT_KEYS = {"train": "train", "val": "valid", "test": "test"}
_DIRECTORY_CONTENT = (
    "one <sample>.hdf5 file per sample, task_specs.pkl, <partition>_partition.json files "
    "(default_partition.json at least) and band_stats.json"
)


class GeobenchFormatError(ValueError):
    """A GEO-Bench directory or sample does not have the layout GEO-Bench writes."""


# ----------------------------------------------------------------------------- pickled attributes


class _Opaque:
    """Stand-in for any class a GEO-Bench pickle names that is not plain data (band infos, CRS...).

    It records constructor arguments and state instead of running foreign code, so reading a
    sample's attributes needs neither the ``geobench`` package nor trust in the file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} from a GEO-Bench pickle>"


_SAFE_GLOBALS = {
    ("builtins", name)
    for name in (
        "dict",
        "list",
        "tuple",
        "set",
        "frozenset",
        "int",
        "float",
        "complex",
        "str",
        "bytes",
        "bool",
    )
} | {
    ("collections", "OrderedDict"),
    ("datetime", "datetime"),
    ("datetime", "date"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}


class _AttributeUnpickler(pickle.Unpickler):
    """Unpickler that builds plain data and numpy arrays and replaces every other class by a stand-in."""

    _stand_ins: ClassVar[dict[tuple[str, str], type]] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._stand_ins:
            self._stand_ins[key] = type(name, (_Opaque,), {"__module__": f"opaque.{module}"})
        return self._stand_ins[key]


def read_sample_attributes(h5file: Any) -> dict[str, Any]:
    """Decode the ``pickle`` attribute GEO-Bench writes on each sample file (label, band metadata).

    Args:
        h5file: an open ``h5py.File``.

    Raises:
        GeobenchFormatError: the file has no ``pickle`` attribute (not written by GEO-Bench).
    """
    raw = h5file.attrs.get("pickle")
    if raw is None:
        raise GeobenchFormatError(
            f"{h5file.filename}: no 'pickle' attribute; GEO-Bench sample files keep their label and band "
            "metadata there (see terratorch.datasets.geobench_demo for the layout)"
        )
    payload = ast.literal_eval(raw) if isinstance(raw, str) else bytes(raw)
    return _AttributeUnpickler(io.BytesIO(payload)).load()


# ----------------------------------------------------------------------------- directory helpers


def find_task_directory(data_root: str | Path | None, data_dir: str) -> Path:
    """Locate the directory of task ``data_dir`` (e.g. ``m-eurosat``) from ``data_root``.

    ``data_root`` may be the benchmark directory holding the task (the reference's convention,
    e.g. ``<root>/classification_v1.0``), the GEO-Bench root above the benchmarks, or the task
    directory itself. Without a usable ``data_root`` (None or ``"./"`` not holding the task),
    ``$GEO_BENCH_DIR`` is searched the same way.

    Raises:
        FileNotFoundError: no candidate holds the task; lists the places searched.
    """
    roots: list[Path] = []
    if data_root is not None:
        roots.append(Path(data_root).expanduser())
    env = os.environ.get(GEO_BENCH_ENV)
    if env and (data_root is None or str(data_root) in ("./", ".", "")):
        roots.append(Path(env).expanduser())
    searched: list[str] = []
    for root in roots:
        candidates = [root / data_dir, root, *sorted(root.glob(f"*/{data_dir}"))]
        for candidate in candidates:
            if candidate.name == data_dir and candidate.is_dir():
                return candidate
        searched += [str(root / data_dir), str(root / "*" / data_dir)]
    raise FileNotFoundError(
        f"GEO-Bench task directory {data_dir!r} not found; searched {searched or ['(no data_root)']}. "
        f"Give data_root: the benchmark folder that holds {data_dir}/ "
        f"(e.g. <GEO_BENCH_DIR>/classification_v1.0), or set ${GEO_BENCH_ENV}"
    )


def list_partitions(directory: str | Path) -> list[str]:
    """Names of the partitions stored in a task directory (``default``, ``0.01x_train``...)."""
    return sorted(path.name[: -len("_partition.json")] for path in Path(directory).glob("*_partition.json"))


def load_partition(directory: str | Path, partition: str) -> dict[str, list[str]]:
    """The ``{split: [sample names]}`` map of ``partition`` in a task directory.

    Raises:
        FileNotFoundError: the partition does not exist; names the partitions found.
    """
    path = Path(directory) / f"{partition}_partition.json"
    if not path.is_file():
        found = list_partitions(directory)
        close = difflib.get_close_matches(partition, found, n=3)
        hint = f" (did you mean {close}?)" if close else ""
        raise FileNotFoundError(
            f"partition {partition!r} not found in {directory}{hint}; partitions found: {found}"
        )
    with path.open() as handle:
        return json.load(handle)


def load_band_stats(
    directory: str | Path, band_names: Sequence[str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-band ``(means, stds)`` from a task's ``band_stats.json``, keyed by the reference's band names.

    GEO-Bench keys its statistics by its own band names; like the sample files, they sort in the
    order of ``band_names`` (the dataset's ``all_band_names``), which is how they are matched.

    Raises:
        FileNotFoundError: no ``band_stats.json`` in ``directory``.
        GeobenchFormatError: the file holds another number of bands than ``band_names``.
    """
    path = Path(directory) / "band_stats.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; GEO-Bench task directories hold {_DIRECTORY_CONTENT}")
    with path.open() as handle:
        stats = json.load(handle)
    keys = sorted(key for key in stats if not key.startswith("label"))
    if len(keys) != len(band_names):
        raise GeobenchFormatError(
            f"{path} has statistics for {len(keys)} bands ({keys}) but the dataset has {len(band_names)} "
            f"({list(band_names)})"
        )
    means = {name: float(stats[key]["mean"]) for name, key in zip(band_names, keys, strict=True)}
    stds = {name: float(stats[key]["std"]) for name, key in zip(band_names, keys, strict=True)}
    return means, stds


def check_bands(bands: Sequence[str], all_band_names: Sequence[str], dataset: str) -> list[str]:
    """Validate ``bands`` against a dataset's band names; returns them as a list.

    Raises:
        ValueError: an unknown band (close matches and the dataset's bands are named).
    """
    if isinstance(bands, str) or not isinstance(bands, Sequence):
        raise ValueError(f"{dataset}: bands must be a list of band names, got {bands!r}")
    for band in bands:
        if band not in all_band_names:
            close = difflib.get_close_matches(str(band), all_band_names, n=3)
            hint = f" (did you mean {close}?)" if close else ""
            raise ValueError(f"{dataset}: unknown band {band!r}{hint}; its bands are {list(all_band_names)}")
    return list(bands)


# ----------------------------------------------------------------------------- datasets


class GeobenchNonGeo(Dataset):
    """Shared reader of the GEO-Bench v1 tasks; subclasses set the task's names and label kind.

    Args:
        data_root: benchmark folder holding the task directory (see :func:`find_task_directory`).
        split: ``train``, ``val`` or ``test`` (GEO-Bench's ``valid`` is ``val``).
        bands: band names to return, in this order (default: the dataset's ``default_bands``).
        transform: albumentations transforms (list or ``Compose``) applied to image (and mask);
            None converts arrays to tensors only.
        partition: partition name, e.g. ``default`` or ``0.01x_train``.
        use_metadata: also return ``temporal_coords``/``location_coords`` (tasks that have them).

    Raises:
        ValueError: unknown split or band.
        FileNotFoundError: task directory or partition missing (names what exists).
        GeobenchFormatError: the directory has no ``task_specs.pkl`` (not a GEO-Bench dataset).
    """

    all_band_names: ClassVar[tuple[str, ...]] = ()
    rgb_bands: ClassVar[tuple[str, ...]] = ("RED", "GREEN", "BLUE")
    splits: ClassVar[dict[str, str]] = _SPLIT_KEYS
    data_dir: ClassVar[str] = ""
    benchmark: ClassVar[str] = "classification_v1.0"
    label_kind: ClassVar[str] = "classification"  # or "multilabel", "segmentation"
    num_classes: ClassVar[int] = 2
    patch_size: ClassVar[int] = 64
    metadata: ClassVar[tuple[str, ...]] = ()
    partition_file_template = "{partition}_partition.json"

    @classmethod
    def default_bands(cls) -> tuple[str, ...]:
        """Bands returned when ``bands`` is not given (all of them, RGB for m-NeonTree)."""
        return cls.all_band_names

    def __init__(
        self,
        data_root: str | Path,
        split: str = "train",
        bands: Sequence[str] | None = None,
        transform: Any = None,
        partition: str = "default",
        use_metadata: bool = False,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if split not in self.splits:
            raise ValueError(f"{name}: unknown split {split!r}; choose one of {list(self.splits)}")
        self.split = split
        self.bands = check_bands(self.default_bands() if bands is None else bands, self.all_band_names, name)
        self.band_indices = [self.all_band_names.index(band) for band in self.bands]
        self.use_metadata = use_metadata
        self.data_root = Path(data_root) if data_root is not None else None
        self.data_directory = find_task_directory(data_root, self.data_dir)
        if not (self.data_directory / "task_specs.pkl").is_file():
            raise GeobenchFormatError(
                f"{self.data_directory} has no task_specs.pkl, so it is not a GEO-Bench dataset directory; "
                f"one holds {_DIRECTORY_CONTENT}"
            )
        partitions = load_partition(self.data_directory, partition)
        split_key = self.splits[split]
        if split_key not in partitions:
            raise GeobenchFormatError(
                f"partition {partition!r} of {self.data_directory} has no {split_key!r} split; it has "
                f"{sorted(partitions)}"
            )
        self.partition = partition
        self.sample_names: list[str] = list(partitions[split_key])
        self.image_files = [self.data_directory / f"{sample}.hdf5" for sample in self.sample_names]
        self.transform = compose_transforms(transform)
        self._label_lookup = self._load_label_lookup()

    def _load_label_lookup(self) -> dict[str, Any] | None:
        """Labels kept outside the sample files (``label_map.json``/``label_stats.json``), if any."""
        return None

    def __len__(self) -> int:
        return len(self.image_files)

    # ------------------------------------------------------------------ reading

    def band_keys(self, keys: Sequence[str]) -> list[str]:
        """The HDF5 keys of the selected bands among a file's ``keys``."""
        data_keys = sorted(key for key in keys if not key.startswith("label"))
        if len(data_keys) < len(self.all_band_names):
            raise GeobenchFormatError(
                f"{type(self).__name__}: a sample has {len(data_keys)} bands ({data_keys}) but the task has "
                f"{len(self.all_band_names)} ({list(self.all_band_names)})"
            )
        return [data_keys[index] for index in self.band_indices]

    def read(self, index: int) -> dict[str, Any]:
        """Raw sample ``index``: image ``(H, W, C)`` float32, plus ``mask``/``label`` and file keys."""
        import h5py

        path = self.image_files[index]
        with h5py.File(path, "r") as h5file:
            keys = list(h5file.keys())
            image = np.stack([h5file[key][()] for key in self.band_keys(keys)], axis=-1).astype(np.float32)
            sample: dict[str, Any] = {"image": image, "keys": keys}
            if self.label_kind == "segmentation":
                label_key = next((key for key in sorted(keys) if key.startswith("label")), None)
                if label_key is None:
                    raise GeobenchFormatError(f"{path}: segmentation sample without a 'label' dataset")
                sample["mask"] = h5file[label_key][()]
            elif self._label_lookup is None:
                sample["label"] = read_sample_attributes(h5file).get("label")
                if sample["label"] is None:
                    raise GeobenchFormatError(f"{path}: no 'label' in the sample attributes")
        if self.label_kind != "segmentation" and self._label_lookup is not None:
            sample["label"] = self._label_from_lookup(path.stem)
        return sample

    def _label_from_lookup(self, sample_name: str) -> Any:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.read(index)
        mask = raw.get("mask")
        if self.transform is not None:
            arguments = {"image": raw["image"]}
            if mask is not None:
                arguments["mask"] = mask
            transformed = self.transform(**arguments)
            image, mask = to_tensor_sample(transformed["image"], transformed.get("mask"))
        else:
            image, mask = to_tensor_sample(raw["image"], mask)
        output: dict[str, Any] = {"image": image}
        if mask is not None:
            output["mask"] = mask.long()
        else:
            output["label"] = self._label_tensor(raw["label"])
        if self.use_metadata:
            output.update(self.sample_metadata(self.sample_names[index], raw["keys"]))
        return output

    def _label_tensor(self, label: Any) -> torch.Tensor:
        if self.label_kind == "multilabel":
            return torch.as_tensor(np.asarray(label), dtype=torch.float32)
        return torch.tensor(int(label), dtype=torch.long)

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """Metadata: ``temporal_coords`` (1, 2) [year, day of year - 1], ``location_coords`` [lat, lon]."""
        return {}

    def band_stats(self) -> tuple[dict[str, float], dict[str, float]]:
        """``(means, stds)`` per band name from this task's ``band_stats.json``."""
        return load_band_stats(self.data_directory, self.all_band_names)

    def plot(self, sample: dict[str, Any], suptitle: str | None = None) -> Any:
        """Figure of a sample's RGB image and its label (class index/vector or mask).

        Raises:
            ValueError: the selected bands do not include red, green and blue.
        """
        import matplotlib.pyplot as plt

        missing = [band for band in self.rgb_bands if band not in self.bands]
        if missing:
            raise ValueError(f"cannot plot without the RGB bands; {missing} are not among {self.bands}")
        image = sample["image"]
        image = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
        rgb = image[[self.bands.index(band) for band in self.rgb_bands]].transpose(1, 2, 0)
        low, high = np.percentile(rgb, (2, 98))
        rgb = np.clip((rgb - low) / max(high - low, 1e-6), 0, 1)
        columns = 2 if "mask" in sample else 1
        figure, axes = plt.subplots(1, columns, figsize=(4 * columns, 4), squeeze=False)
        axes[0, 0].imshow(rgb)
        axes[0, 0].set_title(
            "image" if "mask" in sample else f"label: {np.asarray(sample['label']).tolist()}"
        )
        if "mask" in sample:
            axes[0, 1].imshow(np.asarray(sample["mask"]), vmin=0, vmax=self.num_classes - 1)
            axes[0, 1].set_title("mask")
        for axis in axes.flat:
            axis.axis("off")
        if suptitle:
            figure.suptitle(suptitle)
        return figure


def _date_tensor(date: datetime.date | None) -> torch.Tensor:
    if date is None:
        return torch.zeros((1, 2), dtype=torch.float32)
    return torch.tensor([[date.year, date.timetuple().tm_yday - 1]], dtype=torch.float32)


def _find_date(texts: Sequence[str]) -> datetime.date | None:
    for text in texts:
        match = re.search(r"(\d{4})[-_](\d{2})[-_](\d{2})", text)
        if match:
            return datetime.date(*(int(part) for part in match.groups()))
    return None


_S2_13 = (
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
    "CIRRUS",
    "SWIR_1",
    "SWIR_2",
)
_S2_12 = tuple(band for band in _S2_13 if band != "CIRRUS")


class MEuroSATNonGeo(GeobenchNonGeo):
    """m-eurosat: 10-class land-cover classification of 64 px Sentinel-2 chips (13 bands).

    Labels come from ``label_map.json`` (class name -> sample names; the class index is the
    name's position), as in the reference; without that file the sample's own label is used.
    """

    all_band_names = _S2_13
    data_dir = "m-eurosat"
    label_map_file = "label_map.json"
    num_classes = 10
    patch_size = 64

    def _load_label_lookup(self) -> dict[str, Any] | None:
        path = self.data_directory / self.label_map_file
        if not path.is_file():
            return None
        with path.open() as handle:
            self.label_map: dict[str, list[str]] = json.load(handle)
        return {sample: index for index, samples in enumerate(self.label_map.values()) for sample in samples}

    def _label_from_lookup(self, sample_name: str) -> Any:
        if sample_name not in self._label_lookup:
            raise GeobenchFormatError(f"sample {sample_name!r} is in no class of {self.label_map_file}")
        return self._label_lookup[sample_name]


class MBigEarthNonGeo(GeobenchNonGeo):
    """m-bigearthnet: 43-label multi-label classification of 120 px Sentinel-2 chips (12 bands).

    Label vectors come from ``label_stats.json`` (sample name -> multi-hot list) as in the
    reference, else from the sample files.
    """

    all_band_names = _S2_12
    data_dir = "m-bigearthnet"
    label_map_file = "label_stats.json"
    label_kind = "multilabel"
    num_classes = 43
    patch_size = 120

    def _load_label_lookup(self) -> dict[str, Any] | None:
        path = self.data_directory / self.label_map_file
        if not path.is_file():
            return None
        with path.open() as handle:
            self.label_map: dict[str, list[int]] = json.load(handle)
        return self.label_map

    def _label_from_lookup(self, sample_name: str) -> Any:
        if sample_name not in self._label_lookup:
            raise GeobenchFormatError(f"sample {sample_name!r} has no entry in {self.label_map_file}")
        return self._label_lookup[sample_name]


class MBrickKilnNonGeo(GeobenchNonGeo):
    """m-brick-kiln: brick kiln / no kiln classification of 64 px Sentinel-2 chips (13 bands)."""

    all_band_names = _S2_13
    data_dir = "m-brick-kiln"
    num_classes = 2
    patch_size = 64


class MForestNetNonGeo(GeobenchNonGeo):
    """m-forestnet: 12-class deforestation-driver classification of 332 px Landsat-8 chips.

    Sample names are ``<lat>_<lon>_<YYYY>_<MM>_<DD>``, the source of the metadata.
    """

    all_band_names = ("BLUE", "GREEN", "RED", "NIR", "SWIR_1", "SWIR_2")
    data_dir = "m-forestnet"
    num_classes = 12
    patch_size = 332
    metadata = ("temporal_coords", "location_coords")

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        lat, lon, date = sample_name.split("_", 2)
        return {
            "temporal_coords": _date_tensor(_find_date([date])),
            "location_coords": torch.tensor([float(lat), float(lon)], dtype=torch.float32),
        }


class MSo2SatNonGeo(GeobenchNonGeo):
    """m-so2sat: 17-class local-climate-zone classification of 32 px Sentinel-1 + Sentinel-2 chips."""

    all_band_names = (
        "VH_REAL",
        "BLUE",
        "VH_IMAGINARY",
        "GREEN",
        "VV_REAL",
        "RED",
        "VV_IMAGINARY",
        "VH_LEE_FILTERED",
        "RED_EDGE_1",
        "VV_LEE_FILTERED",
        "RED_EDGE_2",
        "VH_LEE_FILTERED_REAL",
        "RED_EDGE_3",
        "NIR_BROAD",
        "VV_LEE_FILTERED_IMAGINARY",
        "NIR_NARROW",
        "SWIR_1",
        "SWIR_2",
    )
    data_dir = "m-so2sat"
    num_classes = 17
    patch_size = 32


def _lat_lon_from_comma_name(sample_name: str) -> torch.Tensor:
    lat, lon = sample_name.split(",")
    return torch.tensor([float(lat), float(lon)], dtype=torch.float32)


class MPv4gerNonGeo(GeobenchNonGeo):
    """m-pv4ger: solar panel / none classification of 320 px aerial RGB chips named ``<lat>,<lon>``."""

    all_band_names = ("BLUE", "GREEN", "RED")
    data_dir = "m-pv4ger"
    num_classes = 2
    patch_size = 320
    metadata = ("location_coords",)

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"location_coords": _lat_lon_from_comma_name(sample_name)}


class MPv4gerSegNonGeo(GeobenchNonGeo):
    """m-pv4ger-seg: solar panel segmentation of 320 px aerial RGB chips named ``<lat>,<lon>``."""

    all_band_names = ("BLUE", "GREEN", "RED")
    data_dir = "m-pv4ger-seg"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 2
    patch_size = 320
    metadata = ("location_coords",)

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"location_coords": _lat_lon_from_comma_name(sample_name)}


class MChesapeakeLandcoverNonGeo(GeobenchNonGeo):
    """m-chesapeake: 7-class land-cover segmentation of 256 px NAIP chips (RGB + NIR)."""

    all_band_names = ("BLUE", "GREEN", "NIR", "RED")
    data_dir = "m-chesapeake"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 7
    patch_size = 256


class MBeninSmallHolderCashewsNonGeo(GeobenchNonGeo):
    """m-cashew-plant: 7-class cashew segmentation of 256 px Sentinel-2 chips (+ cloud probability).

    The acquisition date is read from the band keys (``..._YYYY-MM-DD``); zeros when absent.
    """

    all_band_names = (*_S2_12, "CLOUD_PROBABILITY")
    data_dir = "m-cashew-plant"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 7
    patch_size = 256
    metadata = ("temporal_coords",)

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        return {"temporal_coords": _date_tensor(_find_date(sorted(keys)))}


class MSACropTypeNonGeo(GeobenchNonGeo):
    """m-SA-crop-type: 10-class crop-type segmentation of 256 px Sentinel-2 chips (+ cloud probability)."""

    all_band_names = (*_S2_12, "CLOUD_PROBABILITY")
    data_dir = "m-SA-crop-type"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 10
    patch_size = 256


class MNzCattleNonGeo(GeobenchNonGeo):
    """m-nz-cattle: cattle segmentation of 500 px aerial RGB chips.

    Band keys carry the date (``<band>_YYYY-MM-DD``) and sample names end in ``_<lon>,<lat>``.
    The reference ignores ``bands`` here and always returns every band; the selection is applied.
    """

    all_band_names = ("BLUE", "GREEN", "RED")
    data_dir = "m-nz-cattle"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 2
    patch_size = 500
    metadata = ("temporal_coords", "location_coords")

    def sample_metadata(self, sample_name: str, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        data_keys = sorted(key for key in keys if "label" not in key)
        match = re.search(r"_(-?\d+\.\d+),(-?\d+\.\d+)", sample_name)
        if match is None:
            raise GeobenchFormatError(f"m-nz-cattle sample name {sample_name!r} does not end in _<lon>,<lat>")
        lon, lat = (float(value) for value in match.groups())
        return {
            "temporal_coords": _date_tensor(_find_date(data_keys[:1])),
            "location_coords": torch.tensor([lat, lon], dtype=torch.float32),
        }


class MNeonTreeNonGeo(GeobenchNonGeo):
    """m-NeonTree: tree-crown segmentation of 400 px chips (RGB, canopy height, hyperspectral NEON).

    Returns the RGB bands unless ``bands`` says otherwise, like the reference.
    """

    all_band_names = ("BLUE", "CANOPY_HEIGHT_MODEL", "GREEN", "NEON", "RED")
    data_dir = "m-NeonTree"
    benchmark = "segmentation_v1.0"
    label_kind = "segmentation"
    num_classes = 2
    patch_size = 400

    @classmethod
    def default_bands(cls) -> tuple[str, ...]:
        return cls.rgb_bands


GEOBENCH_DATASETS: dict[str, type[GeobenchNonGeo]] = {
    cls.data_dir: cls
    for cls in (
        MEuroSATNonGeo,
        MBigEarthNonGeo,
        MBrickKilnNonGeo,
        MForestNetNonGeo,
        MSo2SatNonGeo,
        MPv4gerNonGeo,
        MPv4gerSegNonGeo,
        MChesapeakeLandcoverNonGeo,
        MBeninSmallHolderCashewsNonGeo,
        MSACropTypeNonGeo,
        MNzCattleNonGeo,
        MNeonTreeNonGeo,
    )
}
"""Task directory name (``m-eurosat``...) -> dataset class."""
