"""Golden batches of the reference's detection datamodules, read from tiny seeded files.

:func:`write_layouts` (NumPy, rasterio, Pillow and JSON only, no ``terratorch``) writes three
tiny datasets: the generic per-image JSON layout, the NWPU VHR-10 layout torchgeo reads (PNG
bytes in ``.jpg`` files, so both Pillow versions decode them identically) and the Substation
layout. :data:`CASES` lists the datamodule arguments; the fixture stores what the first batch
of one loader holds after the datamodule's normalisation: keys, per-image box/label values,
mask sums and image statistics. The golden test builds our datamodules on the same files.
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SUBSTATION_SIZE = 64

CASES: dict[str, dict[str, Any]] = {
    "generic": {
        "class": "GenericNonGeoObjectDetectionDataModule",
        "stage": "validate",
        "loader": "val",
        "kwargs": {
            "batch_size": 3,
            "num_workers": 0,
            "num_classes": 3,
            "val_data_root": "generic/images",
            "val_label_data_root": "generic/labels",
            "img_grep": "*.tif",
            "means": [0.5, 0.4, 0.3],
            "stds": [0.2, 0.25, 0.3],
            "val_transform": "to_tensor",  # the reference fails without a transform
        },
    },
    "mvhr10": {
        "class": "mVHR10DataModule",
        "stage": "test",
        "loader": "test",
        "kwargs": {"root": "vhr10", "batch_size": 2, "num_workers": 0, "image_size": 64},
    },
    "substation": {
        "class": "SubstationDataModule",
        "stage": "validate",
        "loader": "val",
        "kwargs": {
            "root": "substation",
            "mode": "object_detection",
            # one time step: the reference's detection transforms fail on (T, C, H, W) stacks, and its
            # datamodule turns "median" into the median of the latest step only (see compatibility.md)
            "use_timepoints": False,
            "timepoint_aggregation": "last",
            "image_size": SUBSTATION_SIZE,
            "batch_size": 2,
            "num_workers": 0,
        },
    },
}
PATH_KEYS = ("val_data_root", "val_label_data_root", "root")


def write_layouts(root: Path) -> None:
    """Write the three tiny datasets under ``root`` (seeded: same bytes every time)."""
    _write_generic(root / "generic")
    _write_vhr10(root / "vhr10")
    _write_substation(root / "substation")


def case_kwargs(name: str, root: Path) -> dict[str, Any]:
    """The datamodule arguments of case ``name`` with its paths under ``root``."""
    kwargs = dict(CASES[name]["kwargs"])
    for key in PATH_KEYS:
        if key in kwargs:
            kwargs[key] = str(root / kwargs[key])
    if kwargs.get("val_transform") == "to_tensor":
        from albumentations.pytorch import ToTensorV2

        kwargs["val_transform"] = [ToTensorV2()]
    return kwargs


def batch_facts(batch: dict[str, Any]) -> dict[str, Any]:
    """What a batch holds, as JSON-ready facts (values rounded to 1e-4)."""
    import torch

    def tensor_facts(t: Any) -> dict[str, Any]:
        t = torch.as_tensor(t)
        return {"shape": list(t.shape), "sum": round(float(t.double().sum()), 4)}

    image = batch["image"]
    image = torch.stack(list(image)) if isinstance(image, list | tuple) else image
    facts: dict[str, Any] = {
        "keys": sorted(k for k in batch if k in ("image", "boxes", "labels", "masks")),
        "image_shape": list(image.shape),
        "image_dtype": str(image.dtype),
        "image_mean": [
            round(float(v), 4) for v in image.double().mean(dim=[d for d in range(image.ndim) if d != 1])
        ],
        "image_std": round(float(image.double().std()), 4),
        "boxes": [
            [[round(float(v), 4) for v in box] for box in torch.as_tensor(b).tolist()] for b in batch["boxes"]
        ],
        "boxes_dtype": [str(torch.as_tensor(b).dtype) for b in batch["boxes"]],
        "labels": [torch.as_tensor(b).tolist() for b in batch["labels"]],
        "labels_dtype": [str(torch.as_tensor(b).dtype) for b in batch["labels"]],
    }
    if "masks" in batch:
        facts["masks"] = [
            tensor_facts(torch.stack([torch.as_tensor(m) for m in masks]) if len(masks) else torch.zeros(0))
            for masks in batch["masks"]
        ]
    return facts


def write(out: Path) -> int:
    """Run the reference's datamodules on the tiny layouts and store their first batches."""
    import importlib

    import terratorch.datamodules as reference

    facts = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_layouts(root)
        for name, case in CASES.items():
            module = (
                getattr(reference, case["class"], None)
                or importlib.import_module("terratorch.datamodules.m_VHR10").__dict__[case["class"]]
            )
            datamodule = module(**case_kwargs(name, root))
            datamodule.setup(case["stage"])
            batch = next(iter(getattr(datamodule, f"{case['loader']}_dataloader")()))
            batch = datamodule.aug(batch)
            facts[name] = batch_facts(batch)
    (out / "manifest.json").write_text(json.dumps({"cases": facts}, indent=1, sort_keys=True) + "\n")
    return len(facts)


# ----------------------------------------------------------------------------- tiny layouts


def _write_generic(root: Path) -> None:
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(11)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    labels = {
        "a0": {"boxes": [[1, 2, 9, 12], [10, 3, 20, 20]], "labels": [1, 2]},
        "a1": {"boxes": [[0, 0, 24, 24]], "labels": [2]},
    }  # a2 has no label file: no objects
    for i in range(3):
        data = rng.random((3, 24, 24), dtype=np.float32)
        profile = {"driver": "GTiff", "height": 24, "width": 24, "count": 3, "dtype": "float32"}
        profile.update(crs="EPSG:32633", transform=Affine(30.0, 0, 500000.0, 0, -30.0, 5000000.0))
        with rasterio.open(root / "images" / f"a{i}.tif", "w", **profile) as dst:
            dst.write(data)
        if f"a{i}" in labels:
            (root / "labels" / f"a{i}.json").write_text(json.dumps(labels[f"a{i}"]))


def _write_vhr10(root: Path, count: int = 10) -> None:
    from PIL import Image

    folder = root / "NWPU VHR-10 dataset"
    (folder / "positive image set").mkdir(parents=True)
    rng = np.random.default_rng(12)
    images, annotations = [], []
    for i in range(count):
        pixels = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / "positive image set" / f"{i + 1:03d}.jpg", format="PNG")
        images.append({"id": i, "file_name": f"{i + 1:03d}.jpg", "width": 48, "height": 40})
        x, y = 2 + i, 3 + 2 * i
        polygon = [x, y, x + 12, y, x + 12, y + 9, x, y + 9]
        annotations.append(
            {
                "id": i,
                "image_id": i,
                "category_id": 1 + i % 10,
                "bbox": [x, y, 12, 9],
                "area": 108,
                "iscrowd": 0,
                "segmentation": [polygon],
            }
        )
    coco = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in range(1, 11)]}
    (folder / "annotations.json").write_text(json.dumps(coco))
    (root / "NWPU VHR-10 dataset.zip").write_bytes(b"")  # torchgeo checks that the archive exists


def _write_substation(root: Path, steps: int = 2) -> None:
    size = SUBSTATION_SIZE
    (root / "image_stack").mkdir(parents=True)
    rng = np.random.default_rng(13)
    rows, images, annotations = [], [], []
    for i, split in enumerate(("train", "val", "val", "test")):
        name = f"s{i}.npz"
        np.savez(root / "image_stack" / name, rng.integers(0, 4000, (steps, 13, size, size), dtype=np.uint16))
        rows.append({"image": f"data/{name}", "split": split, "id": 100 + i})
        images.append({"id": 100 + i, "file_name": name, "width": size, "height": size})
        x, y = 10 + 5 * i, 20 + 3 * i
        polygon = [x, y, x + 30, y, x + 30, y + 25, x, y + 25]
        annotations.append(
            {
                "id": i,
                "image_id": 100 + i,
                "category_id": 1,
                "bbox": [x, y, 30, 25],
                "area": 750,
                "iscrowd": 0,
                "segmentation": [polygon],
            }
        )
    with (root / "substation_meta_splits_full.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "split", "id"])
        writer.writeheader()
        writer.writerows(rows)
    coco = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "substation"}]}
    (root / "annotations.json").write_text(json.dumps(coco))
