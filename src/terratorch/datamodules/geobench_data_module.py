"""Lightning datamodules of the twelve GEO-Bench v1 tasks (``MEuroSATNonGeoDataModule``...).

Each wraps a :mod:`terratorch.datasets.geobench` dataset per split and normalises batches on the
device with per-band means/stds: the reference's constants by default, or the task's own
``band_stats.json`` with ``means: band_stats`` / ``stds: band_stats``. A kornia ``aug`` given
explicitly replaces that normalisation, as in the reference.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from terratorch.datamodules.base import collate_samples
from terratorch.datamodules.normalize import Normalize

BAND_STATS = "band_stats"
"""Value of ``means``/``stds`` that reads the statistics from the task's ``band_stats.json``."""

_STAGE_SPLITS = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("predict",)}


def _statistics(
    values: dict[str, float] | str, bands: Sequence[str], key: str, from_file: dict[str, float] | None
) -> list[float]:
    table = from_file if values == BAND_STATS else values
    if not isinstance(table, dict):
        raise ValueError(f"{key} must be a {{band: value}} dict or {BAND_STATS!r}, got {values!r}")
    missing = [band for band in bands if band not in table]
    if missing:
        raise ValueError(f"{key} has no value for band(s) {missing}; it has {sorted(table)}")
    return [float(table[band]) for band in bands]


class GeobenchDataModule(LightningDataModule):
    """Datamodule over one GEO-Bench v1 task: datasets per split, loaders, device-side normalisation.

    Args:
        dataset_class: a :class:`terratorch.datasets.geobench.GeobenchNonGeo` subclass.
        means, stds: per-band statistics by band name, or ``"band_stats"`` to read the task's
            ``band_stats.json``.
        batch_size: samples per batch.
        num_workers: DataLoader workers.
        data_root: benchmark folder holding the task directory (e.g. ``<GEO_BENCH_DIR>/classification_v1.0``).
        bands: band names in model order (default: the dataset's default bands).
        train_transform, val_transform, test_transform, predict_transform: albumentations
            transforms (list or ``Compose``) per split.
        aug: kornia ``AugmentationSequential(data_keys=None)`` applied to every batch on the
            device instead of the built-in normalisation.
        partition: GEO-Bench partition (``default``, ``0.01x_train``, ...).
        kwargs: passed to the dataset (e.g. ``use_metadata``).
    """

    def __init__(
        self,
        dataset_class: type,
        means: dict[str, float] | str,
        stds: dict[str, float] | str,
        batch_size: int = 8,
        num_workers: int = 0,
        data_root: str = "./",
        bands: Sequence[str] | None = None,
        train_transform: Any = None,
        val_transform: Any = None,
        test_transform: Any = None,
        predict_transform: Any = None,
        aug: Any = None,
        partition: str = "default",
        **kwargs: Any,
    ) -> None:
        super().__init__()
        from terratorch.datasets.geobench import check_bands, find_task_directory, load_band_stats

        self.dataset_class = dataset_class
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.data_root = data_root
        self.partition = partition
        self.kwargs = kwargs
        self.bands = check_bands(
            dataset_class.default_bands() if bands is None else bands,
            dataset_class.all_band_names,
            dataset_class.__name__,
        )
        file_stats: tuple[dict[str, float], dict[str, float]] | None = None
        if BAND_STATS in (means, stds):
            directory = find_task_directory(data_root, dataset_class.data_dir)
            file_stats = load_band_stats(directory, dataset_class.all_band_names)
        self.means = torch.tensor(_statistics(means, self.bands, "means", file_stats and file_stats[0]))
        stds_list = _statistics(stds, self.bands, "stds", file_stats and file_stats[1])
        constant = [band for band, std in zip(self.bands, stds_list, strict=True) if std <= 0]
        if constant:
            # The reference divides by these zero stds (inf/NaN images); such bands are only centred here.
            warnings.warn(
                f"{dataset_class.__name__}: band(s) {constant} have std 0 in the statistics; they are "
                "centred but not scaled (std taken as 1)",
                UserWarning,
                stacklevel=2,
            )
            stds_list = [std if std > 0 else 1.0 for std in stds_list]
        self.stds = torch.tensor(stds_list)
        self._normalize = Normalize(self.means.tolist(), self.stds.tolist())
        self.aug = aug
        self.transforms = {
            "train": train_transform,
            "val": val_transform,
            "test": test_transform,
            "predict": predict_transform,
        }
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None
        self.test_dataset: Dataset | None = None
        self.predict_dataset: Dataset | None = None

    def build_dataset(self, split: str) -> Dataset:
        """The dataset of ``split`` (``predict`` reads the test split with ``predict_transform``)."""
        return self.dataset_class(
            split="test" if split == "predict" else split,
            data_root=self.data_root,
            transform=self.transforms[split],
            partition=self.partition,
            bands=self.bands,
            **self.kwargs,
        )

    def setup(self, stage: str | None = None) -> None:
        """Create the datasets of ``stage`` (``fit``: train and val; None: every split)."""
        for split in _STAGE_SPLITS.get(stage, ()) if stage else ("train", "val", "test", "predict"):
            setattr(self, f"{split}_dataset", self.build_dataset(split))

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        dataset = getattr(self, f"{split}_dataset")
        if dataset is None:
            raise RuntimeError(f"no {split} dataset: call setup() for its stage first")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=partial(collate_samples, check_stackability=True),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """Validation batches in partition order."""
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        """Test batches in partition order."""
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        """Test-split batches for prediction."""
        return self._loader("predict")

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        """``(image - mean) / std`` per selected band, ``(B, C, H, W)`` or ``(C, H, W)``."""
        return self._normalize(image)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Normalise (or apply ``aug`` to) the batch on the device."""
        if not isinstance(batch, dict) or not isinstance(batch.get("image"), torch.Tensor):
            return batch
        if self.aug is not None:
            return self.aug(batch)
        batch = dict(batch)
        batch["image"] = self.normalize(batch["image"])
        return batch


class _GeobenchTaskDataModule(GeobenchDataModule):
    """A GEO-Bench task with its dataset class and the reference's statistics built in."""

    dataset_name = ""

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        data_root: str = "./",
        bands: Sequence[str] | None = None,
        train_transform: Any = None,
        val_transform: Any = None,
        test_transform: Any = None,
        aug: Any = None,
        partition: str = "default",
        **kwargs: Any,
    ) -> None:
        from terratorch.datasets import geobench

        means, stds = _REFERENCE_STATISTICS[type(self).statistics_key()]
        super().__init__(
            getattr(geobench, self.dataset_name),
            kwargs.pop("means", means),
            kwargs.pop("stds", stds),
            batch_size=batch_size,
            num_workers=num_workers,
            data_root=data_root,
            bands=bands,
            train_transform=train_transform,
            val_transform=val_transform,
            test_transform=test_transform,
            aug=aug,
            partition=partition,
            **kwargs,
        )

    @classmethod
    def statistics_key(cls) -> str:
        """The public class this one is (its name keys the statistics table)."""
        for klass in cls.__mro__:
            if klass.__name__ in _REFERENCE_STATISTICS:
                return klass.__name__
        raise KeyError(f"{cls.__name__} is not one of the GEO-Bench datamodules")


class _GeobenchTaskWithMetadataDataModule(_GeobenchTaskDataModule):
    """A GEO-Bench task whose samples can carry ``temporal_coords``/``location_coords``."""

    def __init__(
        self,
        batch_size: int = 8,
        num_workers: int = 0,
        data_root: str = "./",
        bands: Sequence[str] | None = None,
        train_transform: Any = None,
        val_transform: Any = None,
        test_transform: Any = None,
        aug: Any = None,
        partition: str = "default",
        use_metadata: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            data_root=data_root,
            bands=bands,
            train_transform=train_transform,
            val_transform=val_transform,
            test_transform=test_transform,
            aug=aug,
            partition=partition,
            use_metadata=use_metadata,
            **kwargs,
        )


class MEuroSATNonGeoDataModule(_GeobenchTaskDataModule):
    """m-eurosat (10-class Sentinel-2 classification); see :class:`GeobenchDataModule` for the arguments."""

    dataset_name = "MEuroSATNonGeo"


class MBigEarthNonGeoDataModule(_GeobenchTaskDataModule):
    """m-bigearthnet (43-label Sentinel-2 multi-label classification)."""

    dataset_name = "MBigEarthNonGeo"


class MBrickKilnNonGeoDataModule(_GeobenchTaskDataModule):
    """m-brick-kiln (binary Sentinel-2 classification)."""

    dataset_name = "MBrickKilnNonGeo"


class MForestNetNonGeoDataModule(_GeobenchTaskWithMetadataDataModule):
    """m-forestnet (12-class Landsat-8 classification; ``use_metadata`` adds date and location)."""

    dataset_name = "MForestNetNonGeo"


class MSo2SatNonGeoDataModule(_GeobenchTaskDataModule):
    """m-so2sat (17-class Sentinel-1/2 classification)."""

    dataset_name = "MSo2SatNonGeo"


class MPv4gerNonGeoDataModule(_GeobenchTaskWithMetadataDataModule):
    """m-pv4ger (binary aerial RGB classification; ``use_metadata`` adds location)."""

    dataset_name = "MPv4gerNonGeo"


class MPv4gerSegNonGeoDataModule(_GeobenchTaskWithMetadataDataModule):
    """m-pv4ger-seg (binary aerial RGB segmentation; ``use_metadata`` adds location)."""

    dataset_name = "MPv4gerSegNonGeo"


class MChesapeakeLandcoverNonGeoDataModule(_GeobenchTaskDataModule):
    """m-chesapeake (7-class NAIP land-cover segmentation)."""

    dataset_name = "MChesapeakeLandcoverNonGeo"


class MBeninSmallHolderCashewsNonGeoDataModule(_GeobenchTaskWithMetadataDataModule):
    """m-cashew-plant (7-class Sentinel-2 segmentation; ``use_metadata`` adds the date)."""

    dataset_name = "MBeninSmallHolderCashewsNonGeo"


class MSACropTypeNonGeoDataModule(_GeobenchTaskDataModule):
    """m-SA-crop-type (10-class Sentinel-2 crop-type segmentation)."""

    dataset_name = "MSACropTypeNonGeo"


class MNzCattleNonGeoDataModule(_GeobenchTaskWithMetadataDataModule):
    """m-nz-cattle (binary aerial RGB segmentation; ``use_metadata`` adds date and location)."""

    dataset_name = "MNzCattleNonGeo"


class MNeonTreeNonGeoDataModule(_GeobenchTaskDataModule):
    """m-NeonTree (binary tree-crown segmentation; RGB by default)."""

    dataset_name = "MNeonTreeNonGeo"


GEOBENCH_DATAMODULES: dict[str, type[GeobenchDataModule]] = {
    "m-eurosat": MEuroSATNonGeoDataModule,
    "m-bigearthnet": MBigEarthNonGeoDataModule,
    "m-brick-kiln": MBrickKilnNonGeoDataModule,
    "m-forestnet": MForestNetNonGeoDataModule,
    "m-so2sat": MSo2SatNonGeoDataModule,
    "m-pv4ger": MPv4gerNonGeoDataModule,
    "m-pv4ger-seg": MPv4gerSegNonGeoDataModule,
    "m-chesapeake": MChesapeakeLandcoverNonGeoDataModule,
    "m-cashew-plant": MBeninSmallHolderCashewsNonGeoDataModule,
    "m-SA-crop-type": MSACropTypeNonGeoDataModule,
    "m-nz-cattle": MNzCattleNonGeoDataModule,
    "m-NeonTree": MNeonTreeNonGeoDataModule,
}
"""Task directory name -> datamodule class."""

# Per-band statistics the reference ships with each datamodule (keyed by datamodule class name).
_REFERENCE_STATISTICS: dict[str, tuple[dict[str, float], dict[str, float]]] = {
    "MEuroSATNonGeoDataModule": (
        {
            "COASTAL_AEROSOL": 1355.5426,
            "BLUE": 1113.8855,
            "GREEN": 1035.7394,
            "RED": 928.2619,
            "RED_EDGE_1": 1188.2629,
            "RED_EDGE_2": 2032.7325,
            "RED_EDGE_3": 2416.5286,
            "NIR_BROAD": 2342.5396,
            "NIR_NARROW": 748.9036,
            "WATER_VAPOR": 12.0419,
            "CIRRUS": 1810.1284,
            "SWIR_1": 1101.3801,
            "SWIR_2": 2644.5996,
        },
        {
            "COASTAL_AEROSOL": 68.9288,
            "BLUE": 160.0012,
            "GREEN": 194.6687,
            "RED": 286.8012,
            "RED_EDGE_1": 236.6991,
            "RED_EDGE_2": 372.3853,
            "RED_EDGE_3": 478.1329,
            "NIR_BROAD": 556.7527,
            "NIR_NARROW": 102.5583,
            "WATER_VAPOR": 1.2167,
            "CIRRUS": 392.9388,
            "SWIR_1": 313.7339,
            "SWIR_2": 526.7788,
        },
    ),
    "MBigEarthNonGeoDataModule": (
        {
            "COASTAL_AEROSOL": 378.4027,
            "BLUE": 482.273,
            "GREEN": 706.5345,
            "RED": 720.9285,
            "RED_EDGE_1": 1100.6688,
            "RED_EDGE_2": 1909.2914,
            "RED_EDGE_3": 2191.6985,
            "NIR_BROAD": 2336.8706,
            "NIR_NARROW": 2394.7449,
            "WATER_VAPOR": 2368.3127,
            "SWIR_1": 1875.2487,
            "SWIR_2": 1229.3818,
        },
        {
            "COASTAL_AEROSOL": 157.5666,
            "BLUE": 255.0429,
            "GREEN": 303.175,
            "RED": 391.2943,
            "RED_EDGE_1": 380.7916,
            "RED_EDGE_2": 551.6558,
            "RED_EDGE_3": 638.8196,
            "NIR_BROAD": 744.2009,
            "NIR_NARROW": 675.4041,
            "WATER_VAPOR": 561.0154,
            "SWIR_1": 563.4095,
            "SWIR_2": 479.1786,
        },
    ),
    "MBrickKilnNonGeoDataModule": (
        {
            "COASTAL_AEROSOL": 574.7587880700896,
            "BLUE": 674.3473615470523,
            "GREEN": 886.3656479311578,
            "RED": 815.0945462528913,
            "RED_EDGE_1": 1128.8088426870465,
            "RED_EDGE_2": 1934.450471876027,
            "RED_EDGE_3": 2045.7652282437202,
            "NIR_BROAD": 2012.744587807115,
            "NIR_NARROW": 1608.6255233989034,
            "WATER_VAPOR": 1129.8171906000355,
            "CIRRUS": 83.27188605598549,
            "SWIR_1": 90.54924599052214,
            "SWIR_2": 68.98768652434848,
        },
        {
            "COASTAL_AEROSOL": 193.60631504991184,
            "BLUE": 238.75447480113132,
            "GREEN": 276.9631260242207,
            "RED": 361.15060137326634,
            "RED_EDGE_1": 364.5888078793488,
            "RED_EDGE_2": 724.2707123576525,
            "RED_EDGE_3": 819.653063972575,
            "NIR_BROAD": 794.3652427593881,
            "NIR_NARROW": 800.8538290702304,
            "WATER_VAPOR": 704.0219637458916,
            "CIRRUS": 36.355745901131705,
            "SWIR_1": 28.004671947623894,
            "SWIR_2": 24.268892726362033,
        },
    ),
    "MForestNetNonGeoDataModule": (
        {
            "BLUE": 72.852258,
            "GREEN": 83.677155,
            "RED": 77.58181,
            "NIR": 123.987442,
            "SWIR_1": 91.536942,
            "SWIR_2": 74.719202,
        },
        {
            "BLUE": 15.837172547567825,
            "GREEN": 14.788812599596188,
            "RED": 16.100543441881086,
            "NIR": 16.35234883118129,
            "SWIR_1": 13.7882739778638,
            "SWIR_2": 12.69131413539181,
        },
    ),
    "MSo2SatNonGeoDataModule": (
        {
            "VH_REAL": 0.00030114364926703274,
            "BLUE": 0.12951652705669403,
            "VH_IMAGINARY": -5.6475887504348066e-06,
            "GREEN": 0.11734361201524734,
            "VV_REAL": 0.000289927760604769,
            "RED": 0.11374464631080627,
            "VV_IMAGINARY": -0.0005758664919994771,
            "VH_LEE_FILTERED": 0.056090500205755234,
            "RED_EDGE_1": 0.12693354487419128,
            "VV_LEE_FILTERED": 0.33695536851882935,
            "RED_EDGE_2": 0.16917912662029266,
            "VH_LEE_FILTERED_REAL": -0.0026130808982998133,
            "RED_EDGE_3": 0.19080990552902222,
            "NIR_BROAD": 0.18381330370903015,
            "VV_LEE_FILTERED_IMAGINARY": -0.00021384705905802548,
            "NIR_NARROW": 0.20517952740192413,
            "SWIR_1": 0.1762811541557312,
            "SWIR_2": 0.1286638230085373,
        },
        {
            "VH_REAL": 0.20626230537891388,
            "BLUE": 0.040680479258298874,
            "VH_IMAGINARY": 0.19834314286708832,
            "GREEN": 0.05125178396701813,
            "VV_REAL": 0.5187134146690369,
            "RED": 0.07254913449287415,
            "VV_IMAGINARY": 0.519291877746582,
            "VH_LEE_FILTERED": 1.8058000802993774,
            "RED_EDGE_1": 0.06872648745775223,
            "VV_LEE_FILTERED": 4.893222808837891,
            "RED_EDGE_2": 0.07402216643095016,
            "VH_LEE_FILTERED_REAL": 0.8903943300247192,
            "RED_EDGE_3": 0.08412779122591019,
            "NIR_BROAD": 0.08534552156925201,
            "VV_LEE_FILTERED_IMAGINARY": 1.2786953449249268,
            "NIR_NARROW": 0.09248979389667511,
            "SWIR_1": 0.10270608961582184,
            "SWIR_2": 0.09284552931785583,
        },
    ),
    "MPv4gerNonGeoDataModule": (
        {"BLUE": 116.628328, "GREEN": 119.65935, "RED": 113.385309},
        {"BLUE": 44.668890717415586, "GREEN": 48.282311849967364, "RED": 54.19692448815262},
    ),
    "MPv4gerSegNonGeoDataModule": (
        {"BLUE": 139.761751, "GREEN": 137.354091, "RED": 131.102356},
        {"BLUE": 48.29800594656056, "GREEN": 50.86544377633718, "RED": 54.52768048660482},
    ),
    "MChesapeakeLandcoverNonGeoDataModule": (
        {
            "BLUE": 0.4807923436164856,
            "GREEN": 0.5200885534286499,
            "NIR": 0.569856584072113,
            "RED": 0.4570387601852417,
        },
        {
            "BLUE": 0.17441707849502563,
            "GREEN": 0.1976749747991562,
            "NIR": 0.2831788957118988,
            "RED": 0.21191735565662384,
        },
    ),
    "MBeninSmallHolderCashewsNonGeoDataModule": (
        {
            "COASTAL_AEROSOL": 520.1185302734375,
            "BLUE": 634.7583618164062,
            "GREEN": 892.461181640625,
            "RED": 880.7075805664062,
            "RED_EDGE_1": 1380.6409912109375,
            "RED_EDGE_2": 2233.432373046875,
            "RED_EDGE_3": 2549.379638671875,
            "NIR_BROAD": 2643.248046875,
            "NIR_NARROW": 2643.531982421875,
            "WATER_VAPOR": 2852.87451171875,
            "SWIR_1": 2463.933349609375,
            "SWIR_2": 1600.9207763671875,
            "CLOUD_PROBABILITY": 0.010281000286340714,
        },
        {
            "COASTAL_AEROSOL": 204.2023468017578,
            "BLUE": 227.25344848632812,
            "GREEN": 222.32545471191406,
            "RED": 350.47235107421875,
            "RED_EDGE_1": 280.6436767578125,
            "RED_EDGE_2": 373.7521057128906,
            "RED_EDGE_3": 449.9236145019531,
            "NIR_BROAD": 414.6498107910156,
            "NIR_NARROW": 415.1019592285156,
            "WATER_VAPOR": 413.8980407714844,
            "SWIR_1": 494.97430419921875,
            "SWIR_2": 514.4229736328125,
            "CLOUD_PROBABILITY": 0.3447800576686859,
        },
    ),
    "MSACropTypeNonGeoDataModule": (
        {
            "COASTAL_AEROSOL": 12.739611,
            "BLUE": 16.526744,
            "GREEN": 26.636417,
            "RED": 36.696639,
            "RED_EDGE_1": 46.388679,
            "RED_EDGE_2": 58.281453,
            "RED_EDGE_3": 63.575819,
            "NIR_BROAD": 68.1836,
            "NIR_NARROW": 69.142591,
            "WATER_VAPOR": 69.904566,
            "SWIR_1": 83.626811,
            "SWIR_2": 65.767679,
            "CLOUD_PROBABILITY": 0.0,
        },
        {
            "COASTAL_AEROSOL": 7.492811526301659,
            "BLUE": 9.329547939662671,
            "GREEN": 12.674537246073758,
            "RED": 19.421922023931593,
            "RED_EDGE_1": 19.487411106531287,
            "RED_EDGE_2": 19.959174612412983,
            "RED_EDGE_3": 21.53805760692545,
            "NIR_BROAD": 23.05077775347288,
            "NIR_NARROW": 22.329695761624677,
            "WATER_VAPOR": 21.877766438821954,
            "SWIR_1": 28.14418826277069,
            "SWIR_2": 27.2346215312965,
            "CLOUD_PROBABILITY": 0.0,
        },
    ),
    "MNzCattleNonGeoDataModule": (
        {"BLUE": 106.51769083969465, "GREEN": 130.09102671755724, "RED": 126.31354389312978},
        {"BLUE": 18.991624007810348, "GREEN": 19.92435830412983, "RED": 23.38495539231075},
    ),
    "MNeonTreeNonGeoDataModule": (
        {
            "BLUE": 108.44846666666666,
            "CANOPY_HEIGHT_MODEL": 9.886005401611328,
            "GREEN": 131.00455555555556,
            "NEON": 1130.868248148148,
            "RED": 122.29733333333333,
        },
        {
            "BLUE": 33.09221632578563,
            "CANOPY_HEIGHT_MODEL": 7.75406551361084,
            "GREEN": 51.442224204429245,
            "NEON": 1285.299937507298,
            "RED": 54.053087350753124,
        },
    ),
}
