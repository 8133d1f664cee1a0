"""Golden fixtures of the multimodal datamodule: the reference's first train/val batches.

A small two-modality dataset (S2L2A int16 with nodata pixels, S1GRD float32, uint8 labels) is
written by :func:`write_dataset` with rasterio only, so both implementations read the same bytes.
For each case the reference ``GenericMultiModalDataModule`` is set up for ``fit``; the first
training batch is its first samples in index order batched by its ``collate_fn`` (the training
loader shuffles), the first validation batch comes from its loader; both are normalised with its
``aug``. The fixtures are batch keys, shapes, dtypes and the normalised tensors.
``tests/compat/test_golden_multimodal.py`` runs ours on the same cases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIZE = 8
SAMPLES = {"train": ["a01", "a02", "a03"], "val": ["b01", "b02"]}
S2_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]

_BASE: dict[str, Any] = {
    "task": "segmentation",
    "batch_size": 2,
    "modalities": ["S2L2A", "S1GRD"],
    "image_grep": {"S2L2A": "*_S2L2A.tif", "S1GRD": "*_S1GRD.tif"},
    "label_grep": "*_mask.tif",
    "num_classes": 3,
    "dataset_bands": {"S2L2A": S2_BANDS},
    "output_bands": {"S2L2A": ["GREEN", "RED", "NIR_NARROW"]},
    "constant_scale": {"S2L2A": 0.0001},
    "means": {"S2L2A": [0.1, 0.2, 0.3], "S1GRD": [-12.0, -18.0]},
    "stds": {"S2L2A": [0.05, 0.1, 0.15], "S1GRD": [3.0, 4.0]},
    "no_data_replace": 0.0,
    "no_label_replace": -1,
}

#: case name -> datamodule keyword arguments (paths are filled in by :func:`datamodule_kwargs`).
CASES: dict[str, dict[str, Any]] = {
    "segmentation": dict(_BASE),
    "concat_bands": {**_BASE, "concat_bands": True, "means": {**_BASE["means"]}, "stds": {**_BASE["stds"]}},
    "regression_all_bands": {
        **_BASE,
        "task": "regression",
        "output_bands": None,
        "dataset_bands": None,
        "constant_scale": None,
        "means": {"S2L2A": [1000.0, 1500.0, 2000.0, 2500.0], "S1GRD": [-12.0, -18.0]},
        "stds": {"S2L2A": [500.0, 600.0, 700.0, 800.0], "S1GRD": [3.0, 4.0]},
        "no_label_replace": None,
    },
}


def _value(seed: int, shape: tuple[int, ...], low: float, high: float) -> Any:
    """A deterministic pattern in ``[low, high]`` (no RNG, so any NumPy gives the same values)."""
    import numpy as np

    index = np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape)
    wave = 0.5 + 0.5 * np.sin(0.37 * index + 1.3 * seed)
    return low + (high - low) * wave


def write_dataset(root: Path) -> None:
    """Write the S2L2A/S1GRD/label GeoTIFFs and the split files under ``root``."""
    import numpy as np
    import rasterio
    from affine import Affine

    geo = {"crs": "EPSG:32633", "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0)}
    for split, names in SAMPLES.items():
        (root / "splits").mkdir(parents=True, exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("".join(f"{n}\n" for n in names))
        for seed, name in enumerate(names, start=1 if split == "train" else 11):
            s2 = np.rint(_value(seed, (4, SIZE, SIZE), 200, 4000)).astype("int16")
            s2[:, 0, seed % SIZE] = -9999
            s1 = _value(seed + 50, (2, SIZE, SIZE), -25, -5).astype("float32")
            mask = (np.rint(_value(seed + 90, (SIZE, SIZE), 0, 2))).astype("uint8")
            mask[SIZE - 1, seed % SIZE] = 255
            files = {
                f"S2L2A/{name}_S2L2A.tif": (s2, -9999),
                f"S1GRD/{name}_S1GRD.tif": (s1, None),
                f"labels/{name}_mask.tif": (mask[None], 255),
            }
            for rel, (data, nodata) in files.items():
                path = root / split / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "count": data.shape[0]}
                profile.update(dtype=str(data.dtype), nodata=nodata, **geo)
                with rasterio.open(path, "w", **profile) as dst:
                    dst.write(data)


def datamodule_kwargs(case: str, root: Path) -> dict[str, Any]:
    """The case's datamodule arguments with the data roots, label roots and splits under ``root``."""
    kwargs = json.loads(json.dumps(CASES[case]))
    for split in ("train", "val"):
        kwargs[f"{split}_data_root"] = {m: str(root / split / m) for m in kwargs["modalities"]}
        kwargs[f"{split}_label_data_root"] = str(root / split / "labels")
        kwargs[f"{split}_split"] = str(root / "splits" / f"{split}.txt")
    return {k: v for k, v in kwargs.items() if v is not None}


def first_batches(datamodule: Any) -> dict[str, Any]:
    """The first train batch (first samples in index order) and val batch, normalised by ``aug``."""
    datamodule.setup("fit")
    train = [datamodule.train_dataset[i] for i in range(datamodule.batch_size)]
    batches = {"train": datamodule.collate_fn(train), "val": next(iter(datamodule.val_dataloader()))}
    return {split: datamodule.aug(batch) for split, batch in batches.items()}


def summarize(batch: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(layout, tensors)`` of a batch: key -> shape/dtype (nested ``image`` dicts as ``image.<m>``)."""
    import torch

    layout: dict[str, Any] = {}
    tensors: dict[str, Any] = {}

    def visit(key: str, value: Any) -> None:
        if isinstance(value, dict):
            for sub, item in value.items():
                visit(f"{key}.{sub}", item)
        elif isinstance(value, torch.Tensor):
            layout[key] = {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
            tensors[f"{prefix}/{key}"] = value.detach().float().contiguous()
        else:
            names = [Path(str(v)).name for v in value] if isinstance(value, list | tuple) else str(value)
            layout[key] = {"values": names}

    for key, value in batch.items():
        visit(key, value)
    return layout, tensors


def write(out: Path) -> int:
    """Run every case with the reference and write ``manifest.json`` + ``batches.safetensors``."""
    import tempfile
    import warnings

    from safetensors.torch import save_file

    from terratorch.datamodules import GenericMultiModalDataModule

    manifest: dict[str, Any] = {}
    tensors: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root)
        for case in CASES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                datamodule = GenericMultiModalDataModule(**datamodule_kwargs(case, root))
                batches = first_batches(datamodule)
            manifest[case] = {"kwargs": CASES[case]}
            for split, batch in batches.items():
                layout, found = summarize(batch, f"{case}/{split}")
                manifest[case][split] = layout
                tensors.update(found)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    save_file(tensors, str(out / "batches.safetensors"))
    return len(CASES)
