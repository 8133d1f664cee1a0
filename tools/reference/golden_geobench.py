"""Golden GEO-Bench samples: the reference's ``M*NonGeo`` datasets read the geobench-written fixture.

The input is ``tests/datasets/geobench_fixture/`` (written by the ``geobench`` package itself, see
``tools/geobench/make_fixture.py``), so no data is generated here. The reference unpickles labels
stored in the sample files with ``geobench`` classes: the overlay of
``~/.cache/terratorch-geobench/overlay`` (``pip install --target ... --no-deps geobench==1.0.0``)
goes on ``sys.path``. Also recorded: the signatures of the twelve datasets and datamodules.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "datasets" / "geobench_fixture"
OVERLAY = Path.home() / ".cache" / "terratorch-geobench" / "overlay"

#: case -> (dataset class, benchmark folder, constructor kwargs)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "eurosat_train": ("MEuroSATNonGeo", "classification_v1.0", {"split": "train"}),
    "eurosat_bands_test": (
        "MEuroSATNonGeo",
        "classification_v1.0",
        {"split": "test", "bands": ["RED", "NIR_NARROW"]},
    ),
    "bigearthnet_val": ("MBigEarthNonGeo", "classification_v1.0", {"split": "val"}),
    "chesapeake_train": ("MChesapeakeLandcoverNonGeo", "segmentation_v1.0", {"split": "train"}),
}
CLASSES = (
    "MEuroSATNonGeo", "MBigEarthNonGeo", "MBrickKilnNonGeo", "MForestNetNonGeo", "MSo2SatNonGeo",
    "MPv4gerNonGeo", "MPv4gerSegNonGeo", "MChesapeakeLandcoverNonGeo", "MBeninSmallHolderCashewsNonGeo",
    "MSACropTypeNonGeo", "MNzCattleNonGeo", "MNeonTreeNonGeo",
)  # fmt: skip


def _signature(cls: type) -> list[list[Any]]:
    params = inspect.signature(cls.__init__).parameters.values()

    def plain(value: Any) -> Any:
        return (
            None if value is inspect.Parameter.empty else (list(value) if isinstance(value, tuple) else value)
        )

    return [[p.name, plain(p.default)] for p in params if p.name != "self" and p.kind != p.VAR_KEYWORD]


def write(out: Path) -> int:
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(OVERLAY))
    import terratorch.datamodules as datamodules
    import terratorch.datasets as datasets

    tensors: dict[str, torch.Tensor] = {}
    manifest: dict[str, Any] = {"cases": {}, "signatures": {}}
    for case, (name, benchmark, kwargs) in CASES.items():
        dataset = getattr(datasets, name)(data_root=str(FIXTURE / benchmark), **kwargs)
        manifest["cases"][case] = {
            "class": name,
            "benchmark": benchmark,
            "kwargs": kwargs,
            "len": len(dataset),
        }
        for index in range(len(dataset)):
            sample = dataset[index]
            for key, value in sample.items():
                tensors[f"{case}/{index}/{key}"] = torch.as_tensor(value).contiguous()
    for name in CLASSES:
        manifest["signatures"][name] = _signature(getattr(datasets, name))
        manifest["signatures"][f"{name}DataModule"] = _signature(getattr(datamodules, f"{name}DataModule"))
    save_file(tensors, str(out / "samples.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n")
    return len(tensors)
