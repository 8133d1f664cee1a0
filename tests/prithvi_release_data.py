"""Tiny copies of the Prithvi-EO-2.0 fine-tuning datasets, in each dataset's real on-disk layout.

Each ``write_*`` function writes a handful of 16 px samples (real band counts, seeded values) under
``root`` and returns ``root``. Only NumPy, rasterio, h5py and the standard library are used, so the
reference's golden script (``tools/reference/golden_named_datasets.py``) writes the same bytes
under the reference interpreter.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np

SIZE = 16


def _geotiff(
    path: Path, data: np.ndarray, *, crs: str, origin: tuple[float, float], res: float, nodata=None
) -> None:
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    data = data if data.ndim == 3 else data[None]
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": from_origin(origin[0], origin[1], res, res),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def write_sen1floods11(root: Path) -> Path:
    """``v1.1`` layout: 13-band float32 S2Hand chips (one NaN pixel), int16 labels in {-1, 0, 1}."""
    rng = np.random.default_rng(11)
    hand = root / "v1.1" / "data" / "flood_events" / "HandLabeled"
    splits = {"train": ["Ghana_101", "Ghana_102"], "valid": ["India_201"], "test": ["USA_301"]}
    for index, chip in enumerate(chip for chips in splits.values() for chip in chips):
        image = rng.uniform(0, 5000, (13, SIZE, SIZE)).astype(np.float32)
        image[2, 3, 4] = np.nan
        label = rng.integers(-1, 2, (SIZE, SIZE)).astype(np.int16)
        origin = (10.0 + index, 6.0 + index)
        _geotiff(hand / "S2Hand" / f"{chip}_S2Hand.tif", image, crs="EPSG:4326", origin=origin, res=1e-4)
        _geotiff(
            hand / "LabelHand" / f"{chip}_LabelHand.tif", label, crs="EPSG:4326", origin=origin, res=1e-4
        )
    for name, chips in splits.items():
        _lines(root / "v1.1" / "splits" / "flood_handlabeled" / f"flood_{name}_data.txt", chips)
    features = [
        {"type": "Feature", "properties": {"location": loc, "s2_date": date}, "geometry": None}
        for loc, date in (("Ghana", "2018-09-18"), ("Ghana", "2018-09-20"), ("India", "2016-08-12"))
    ]
    (root / "v1.1" / "Sen1Floods11_Metadata.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features})
    )
    return root


def write_multi_temporal_crop(root: Path) -> Path:
    """``{training,validation}_chips`` with 18-band int16 chips (nodata -9999 once) and 1..13 masks."""
    rng = np.random.default_rng(13)
    splits = {"training": ["chip_010_020", "chip_011_021"], "validation": ["chip_050_060"]}
    rows = []
    for name, chips in splits.items():
        for index, chip in enumerate(chips):
            image = rng.integers(0, 6000, (18, SIZE, SIZE)).astype(np.int16)
            image[7, 1, 2] = -9999
            mask = rng.integers(1, 14, (SIZE, SIZE)).astype(np.uint8)
            origin = (500000.0 + 1000 * index, 4200000.0)
            folder = root / f"{name}_chips"
            _geotiff(
                folder / f"{chip}_merged.tif", image, crs="EPSG:32615", origin=origin, res=30.0, nodata=-9999
            )
            _geotiff(folder / f"{chip}.mask.tif", mask, crs="EPSG:32615", origin=origin, res=30.0)
            rows.append([chip, "2022-03-01", f"2022-06-{10 + index}", "2022-09-30"])
        _lines(root / f"{name}_data.txt", chips)
    with open(root / "chips_df.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["chip_id", "first_img_date", "middle_img_date", "last_img_date"])
        writer.writerows(rows)
    return root


def write_fire_scars(root: Path) -> Path:
    """``training``/``validation`` with 6-band float32 HLS chips and 0/1 masks (nodata -1 once)."""
    rng = np.random.default_rng(17)
    splits = {"training": ["T10SEH.2018190", "T11SKA.2019201"], "validation": ["T12TUN.2020230"]}
    for name, tiles in splits.items():
        for index, tile in enumerate(tiles):
            stem = f"subsetted_512x512_HLS.S30.{tile}.v1.4"
            image = rng.uniform(0, 0.4, (6, SIZE, SIZE)).astype(np.float32)
            mask = rng.integers(0, 2, (SIZE, SIZE)).astype(np.int16)
            mask[0, 0] = -1
            origin = (600000.0 + 1000 * index, 3900000.0)
            _geotiff(root / name / f"{stem}_merged.tif", image, crs="EPSG:32610", origin=origin, res=30.0)
            _geotiff(
                root / name / f"{stem}.mask.tif", mask, crs="EPSG:32610", origin=origin, res=30.0, nodata=-1
            )
    return root


def write_burn_intensity(root: Path) -> Path:
    """``pre``/``during``/``post`` 6-band int16 images, ``pre/BS_*`` labels 0..4, case CSVs, split lists."""
    rng = np.random.default_rng(19)
    cases = {"train": ["fire_a", "fire_b", "fire_c"], "val": ["fire_d"]}
    for index, case in enumerate(case for names in cases.values() for case in names):
        origin = (300000.0 + 1000 * index, 5000000.0)
        for step in ("pre", "during", "post"):
            image = rng.integers(0, 4000, (6, SIZE, SIZE)).astype(np.int16)
            _geotiff(root / step / f"HLS_{case}.tif", image, crs="EPSG:32611", origin=origin, res=30.0)
        label = rng.integers(0, 5, (SIZE, SIZE)).astype(np.int16)
        _geotiff(root / "pre" / f"BS_{case}.tif", label, crs="EPSG:32611", origin=origin, res=30.0)
    for split, names in cases.items():
        _lines(root / f"{split}.txt", [f"HLS_{case}.tif" for case in names])
    all_cases = [case for names in cases.values() for case in names]
    _lines(root / "BS_files_raw.csv", ["Case_Name", *all_cases])
    _lines(root / "BS_files_with_less_than_25_percent_zeros.csv", ["Case_Name", "fire_a", "fire_d"])
    return root


def write_landslide4sense(root: Path) -> Path:
    """``images/<split>/image_<n>.h5`` (``img``: ``(16, 16, 14)``) and ``annotations/<split>/mask_<n>.h5``."""
    import h5py

    rng = np.random.default_rng(23)
    numbers = {"train": [1, 2], "validation": [3], "test": [4]}
    for split, values in numbers.items():
        for n in values:
            for kind, key, array in (
                ("images", "img", rng.normal(0, 1, (SIZE, SIZE, 14)).astype(np.float64)),
                ("annotations", "mask", rng.integers(0, 2, (SIZE, SIZE)).astype(np.uint8)),
            ):
                folder = root / kind / split
                folder.mkdir(parents=True, exist_ok=True)
                prefix = "image" if kind == "images" else "mask"
                with h5py.File(folder / f"{prefix}_{n}.h5", "w") as file:
                    file.create_dataset(key, data=array)
    return root


BIOMASSTERS_METADATA = "The_BioMassters_-_features_metadata.csv.csv"


def write_biomassters(root: Path) -> Path:
    """``{train,test}_features`` S1 (4-band dB float32) and S2 (11-band uint16) months, AGBM targets."""
    rng = np.random.default_rng(29)
    chips = {"train": ["aa01", "bb02"], "test": ["cc03"]}
    rows = []
    for split, names in chips.items():
        for chip in names:
            for month in (0, 1):
                for sensor, count in (("S1", 4), ("S2", 11)):
                    name = f"{chip}_{sensor}_{month:02d}.tif"
                    if sensor == "S1":
                        data = rng.uniform(-25, -5, (count, SIZE, SIZE)).astype(np.float32)
                    else:
                        data = rng.integers(0, 5000, (count, SIZE, SIZE)).astype(np.uint16)
                    _geotiff(
                        root / f"{split}_features" / name, data, crs="EPSG:3067", origin=(0, 0), res=10.0
                    )
                    cloud = float(rng.uniform(0, 50)) if sensor == "S2" else 0.0
                    rows.append(
                        [
                            name,
                            chip,
                            sensor,
                            split,
                            ["September", "October"][month],
                            f"{chip}_agbm.tif",
                            cloud,
                        ]
                    )
            target = rng.uniform(0, 300, (1, SIZE, SIZE)).astype(np.float32)
            _geotiff(
                root / f"{split}_agbm" / f"{chip}_agbm.tif", target, crs="EPSG:3067", origin=(0, 0), res=10.0
            )
    with open(root / BIOMASSTERS_METADATA, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["filename", "chip_id", "satellite", "split", "month", "corresponding_agbm", "cloud_percentage"]
        )
        writer.writerows(rows)
    return root


SEN4MAP_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")


def write_sen4map(root: Path) -> Path:
    """``{train,val,test}.h5``: one compound dataset per LUCAS point (5 acquisitions), pickled key lists."""
    import h5py

    rng = np.random.default_rng(31)
    root.mkdir(parents=True, exist_ok=True)
    codes = {
        "train": [("p100", "B11"), ("p101", "C10"), ("p102", "E20")],
        "val": [("p200", "B55")],
        "test": [("p300", "")],
    }
    for split, points in codes.items():
        with h5py.File(root / f"{split}.h5", "w") as file:
            for key, code in points:
                fields = [(band, np.int16) for band in SEN4MAP_BANDS] + [("SCL", np.uint8)]
                record = np.zeros((5, SIZE, SIZE), dtype=fields)
                for band in SEN4MAP_BANDS:
                    record[band] = rng.integers(0, 5000, (5, SIZE, SIZE))
                record["SCL"] = rng.integers(3, 11, (5, SIZE, SIZE))
                sample = file.create_dataset(key, data=record)  # one compound dataset per LUCAS point
                ids = [
                    f"S2A_MSIL2A_2018{m:02d}{d:02d}T101021"
                    for m, d in ((1, 5), (3, 9), (3, 19), (7, 2), (12, 30))
                ]
                sample.attrs["Image_ID"] = np.array(ids, dtype=h5py.string_dtype())
                sample.attrs["lc1"] = code
        with open(root / f"{split}_keys.pkl", "wb") as file:
            pickle.dump([key for key, _ in points], file)
    return root


WRITERS = {
    "sen1floods11": write_sen1floods11,
    "multi_temporal_crop": write_multi_temporal_crop,
    "fire_scars": write_fire_scars,
    "burn_intensity": write_burn_intensity,
    "landslide4sense": write_landslide4sense,
    "biomassters": write_biomassters,
    "sen4map": write_sen4map,
}
