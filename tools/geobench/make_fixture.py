"""Write a tiny GEO-Bench dataset with the ``geobench`` package's own writer and record what it reads.

The ``geobench`` package pins ``pandas<2`` and so is not a dependency: install it without its
dependencies into an overlay folder, which this script alone puts on ``sys.path``::

    .venv/bin/python -m pip install --target ~/.cache/terratorch-geobench/overlay --no-deps geobench==1.0.0
    .venv/bin/python tools/geobench/make_fixture.py

Three tasks are written (classification m-eurosat, multi-label m-bigearthnet, segmentation
m-chesapeake) into ``tests/datasets/geobench_fixture/<benchmark>/<task>/`` together with
``expected.json``/``expected.npz``: GEO-Bench's reader's band names, partitions, sample names,
pixel arrays and labels. ``tests/datasets/test_geobench.py`` reads the same files with our
datasets and compares.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OVERLAY = Path("~/.cache/terratorch-geobench/overlay").expanduser()
DEFAULT_OUTPUT = ROOT / "tests" / "datasets" / "geobench_fixture"
SIZE = 16
SAMPLES_PER_SPLIT = 2


def import_geobench(overlay: Path):
    """Import ``geobench`` from ``overlay``; its import creates ``$GEO_BENCH_DIR``, set to a tmp dir."""
    if not (overlay / "geobench").is_dir():
        raise SystemExit(
            f"geobench not found in {overlay}; install it with: .venv/bin/python -m pip install "
            f"--target {overlay} --no-deps geobench==1.0.0"
        )
    os.environ["GEO_BENCH_DIR"] = tempfile.mkdtemp(prefix="geobench-home-")
    sys.path.insert(0, str(overlay))
    import geobench

    return geobench


def task_definitions(gb) -> list[dict]:
    """The three tasks: band infos, label type and how to draw a label."""
    s2 = list(gb.dataset.sentinel2_13_bands)
    naip = [*gb.dataset.make_rgb_bands(1.0), gb.dataset.SpectralBand("NIR", ("nir",), 1.0, 0.829)]
    return [
        {
            "benchmark": "classification_v1.0",
            "name": "m-eurosat",
            "bands": s2,
            "label_type": gb.label.Classification(10, [f"class_{i}" for i in range(10)]),
            "kind": "classification",
        },
        {
            "benchmark": "classification_v1.0",
            "name": "m-bigearthnet",
            "bands": [band for band in s2 if "Cirrus" not in band.name],
            "label_type": gb.label.MultiLabelClassification(43, [f"label_{i}" for i in range(43)]),
            "kind": "multilabel",
        },
        {
            "benchmark": "segmentation_v1.0",
            "name": "m-chesapeake",
            "bands": naip,
            "label_type": gb.dataset.SegmentationClasses("label", 1.0, 7, [f"class_{i}" for i in range(7)]),
            "kind": "segmentation",
        },
    ]


def write_task(gb, task: dict, root: Path, rng: np.random.Generator) -> Path:
    """Write one task with geobench's ``Sample.write``, ``TaskSpecifications.save`` and ``Partition.save``."""
    directory = root / task["benchmark"] / task["name"]
    directory.mkdir(parents=True)
    partition = gb.dataset.Partition()
    # GEO-Bench's label_map.json lists every class in class-index order (the index is the position).
    label_map: dict[str, list[str]] = {f"class_{i}": [] for i in range(10)}
    label_stats: dict[str, list[int]] = {}
    index = 0
    for split in ("train", "valid", "test"):
        for _ in range(SAMPLES_PER_SPLIT):
            name = f"{task['name']}_{index:03d}"
            index += 1
            bands = [
                gb.dataset.Band(
                    data=rng.integers(0, 4000, (SIZE, SIZE)).astype(np.int16),
                    band_info=info,
                    spatial_resolution=info.spatial_resolution,
                )
                for info in task["bands"]
            ]
            if task["kind"] == "classification":
                label = int(rng.integers(10))
                label_map[f"class_{label}"].append(name)
            elif task["kind"] == "multilabel":
                label = (rng.random(43) < 0.15).astype(np.int64)
                label[index % 43] = 1
                label_stats[name] = label.tolist()
            else:
                label = gb.dataset.Band(
                    data=rng.integers(0, 7, (SIZE, SIZE)).astype(np.int16),
                    band_info=task["label_type"],
                    spatial_resolution=1.0,
                )
            gb.dataset.Sample(bands, label=label, sample_name=name).write(str(directory))
            partition.add(split, name)
    # default_partition.json is a symlink in GEO-Bench; a copy is committed instead.
    partition.save(str(directory), "default")
    few = gb.dataset.Partition({**partition.partition_dict, "train": partition.partition_dict["train"][:1]})
    few.save(str(directory), "0.01x_train")
    specs = gb.task.TaskSpecifications(
        dataset_name=task["name"],
        benchmark_name=task["benchmark"],
        patch_size=(SIZE, SIZE),
        n_time_steps=1,
        bands_info=task["bands"],
        label_type=task["label_type"],
        spatial_resolution=10.0,
    )
    specs.save(str(directory))
    dataset = gb.dataset.GeobenchDataset(directory, partition_name="default")
    _, stats = gb.dataset.compute_dataset_statistics(dataset, n_value_per_image=None)
    with open(directory / "band_stats.json", "w") as handle:
        json.dump(
            {name: {k: float(v) for k, v in vars(s).items()} for name, s in stats.items()}, handle, indent=1
        )
    if task["kind"] == "classification":
        with open(directory / "label_map.json", "w") as handle:
            json.dump(label_map, handle, indent=1)
    if label_stats:
        with open(directory / "label_stats.json", "w") as handle:
            json.dump(label_stats, handle)
    return directory


def record(gb, task: dict, directory: Path, arrays: dict[str, np.ndarray]) -> dict:
    """What GEO-Bench's reader returns for every partition and split of a task."""
    dataset = gb.dataset.GeobenchDataset(directory, partition_name="default")
    band_names = [info.name for info in dataset.task_specs.bands_info]
    entry: dict = {
        "benchmark": task["benchmark"],
        "kind": task["kind"],
        "band_names": band_names,
        "partitions": sorted(dataset.list_partitions()),
        "splits": {},
        "normalization": dict(zip(["means", "stds"], dataset.normalization_stats(), strict=True)),
    }
    for partition in entry["partitions"]:
        for split in ("train", "valid", "test"):
            reader = gb.dataset.GeobenchDataset(directory, partition_name=partition, split=split)
            names = []
            for position in range(len(reader)):
                sample = reader[position]
                names.append(sample.sample_name)
                key = f"{task['name']}/{sample.sample_name}"
                if key in arrays:
                    continue
                image, packed_names = sample.pack_to_3d(band_names=tuple(band_names))
                assert list(packed_names) == band_names
                arrays[f"{key}/image"] = image.transpose(2, 0, 1)
                label = sample.label
                arrays[f"{key}/label"] = np.asarray(
                    label.data if isinstance(label, gb.dataset.Band) else label
                )
                arrays[key] = np.zeros(0)
            entry["splits"][f"{partition}/{split}"] = names
    return entry


def check_demo(gb) -> None:
    """GEO-Bench's reader loads every task ``make_geobench_demo`` writes (task specs, partitions, samples)."""
    from terratorch.datasets.geobench import GEOBENCH_DATASETS
    from terratorch.datasets.geobench_demo import make_geobench_demo

    with tempfile.TemporaryDirectory() as tmp:
        for name, directory in make_geobench_demo(tmp, n_samples=1, size=8).items():
            cls = GEOBENCH_DATASETS[name]
            for partition in ("default", "0.01x_train"):
                for split in ("train", "valid", "test"):
                    dataset = gb.dataset.GeobenchDataset(directory, partition_name=partition, split=split)
                    sample = dataset[0]
                    assert len(sample.bands) == len(cls.all_band_names), (name, sample.bands)
                    assert dataset.task_specs.dataset_name == name
            means, _ = dataset.normalization_stats()
            assert len(means) == len(cls.all_band_names)
    print(f"geobench 1.0.0 reads all {len(GEOBENCH_DATASETS)} make_geobench_demo tasks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", type=Path, default=DEFAULT_OVERLAY)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    gb = import_geobench(args.overlay)
    rng = np.random.default_rng(0)
    if args.output.exists():
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True)
    expected: dict = {"geobench_version": "1.0.0", "tasks": {}}
    arrays: dict[str, np.ndarray] = {}
    for task in task_definitions(gb):
        directory = write_task(gb, task, args.output, rng)
        expected["tasks"][task["name"]] = record(gb, task, directory, arrays)
    with open(args.output / "expected.json", "w") as handle:
        json.dump(expected, handle, indent=1)
    np.savez_compressed(args.output / "expected.npz", **{k: v for k, v in arrays.items() if v.size})
    total = sum(path.stat().st_size for path in args.output.rglob("*") if path.is_file())
    print(f"wrote {args.output} ({total / 1024:.0f} KiB)")
    check_demo(gb)


if __name__ == "__main__":
    main()
