"""Golden part "configs": what the reference CLI builds from each config of ``tests/compat/configs/``.

Every YAML file there is instantiated with ``build_lightning_cli([...], run=False)`` (the
placeholder ``${DATA}`` replaced by a folder of tiny GeoTIFFs written by :func:`make_data`), and
these facts are recorded per config:

* the task class name and the layout (keys and shapes) of ``task.model.state_dict()``;
* the datamodule class name and its resolved ``init_args`` (class paths shortened to class names);
* after ``datamodule.setup("fit")``: dataset lengths and the keys, shapes and dtypes of the first
  training sample;
* the class names of the trainer's callbacks and of the optimizer(s)/scheduler(s) the task's
  ``configure_optimizers`` returns (with the scheduler's ``monitor``);
* selected top-level CLI settings.

The same module is imported by ``tests/compat/test_golden_configs.py`` to collect the same facts
from our implementation, so both sides are measured by one piece of code.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[2] / "tests" / "compat" / "configs"
PLACEHOLDER = "${DATA}"
# Command line flags appended after ``-c <config>`` (the reference's documented CLI overrides).
EXTRA_ARGS: dict[str, list[str]] = {
    "seg_cli_options": [
        "--predict_output_dir",
        "${DATA}/predictions_cli",
        "--data.init_args.predict_data_root",
        "${DATA}/seg_same",
        "--out_dtype",
        "float32",
        "--data.init_args.batch_size",
        "2",
    ],
}
# Top-level keys recorded when the config sets them.
TOP_LEVEL = ("seed_everything", "predict_output_dir", "output_file_prefix", "out_dtype", "deploy_config_file")
# Callbacks each implementation adds on its own (prediction writers, Lightning's defaults).
INFRASTRUCTURE_CALLBACKS = ("CustomWriter", "GeoTIFFPredictionWriter")

_TRANSFORM_WARNING = re.compile(r"(?:not valid for transform|^transform) (\w+)")

BANDS = 6
SIZE = 32


def config_names() -> list[str]:
    """Stems of the corpus configs, sorted."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


# ----------------------------------------------------------------------------- data


def _write_tif(path: Path, array: Any) -> None:
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    path.parent.mkdir(parents=True, exist_ok=True)
    data = array if array.ndim == 3 else array[None]
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32633",
        "transform": from_origin(500000, 4000000, 30, 30),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.ascontiguousarray(data))


def make_data(root: Path) -> Path:
    """Write the tiny GeoTIFF folders the corpus points at; returns ``root``.

    Layout: ``seg_split/{images,labels}/{train,val}`` (separate label roots), ``seg_same`` (labels
    beside images), ``reg/{images,targets}``, ``reg_temporal`` (2 time steps, targets beside),
    ``cls/{train,val}/<class>/`` (ImageFolder), ``splits/*.txt`` and ``custom_modules/``.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    root = Path(root)

    def image(count: int = BANDS) -> Any:
        return rng.integers(0, 3000, size=(count, SIZE, SIZE)).astype("int16")

    def mask(low: int, high: int) -> Any:
        return rng.integers(low, high, size=(SIZE, SIZE)).astype("uint8")

    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            _write_tif(root / "seg_split" / "images" / split / f"{split}{i}_img.tif", image())
            _write_tif(root / "seg_split" / "labels" / split / f"{split}{i}_mask.tif", mask(0, 3))
    for i in range(6):
        _write_tif(root / "seg_same" / f"tile{i}_img.tif", image())
        _write_tif(root / "seg_same" / f"tile{i}_mask.tif", mask(0, 3))
    for i in range(4):
        _write_tif(root / "reg" / "images" / f"r{i}_img.tif", image())
        target = rng.random((SIZE, SIZE), dtype=np.float32)
        _write_tif(root / "reg" / "targets" / f"r{i}_target.tif", target)
        _write_tif(root / "reg_temporal" / f"t{i}_img.tif", image(2 * BANDS))
        _write_tif(root / "reg_temporal" / f"t{i}_target.tif", target)
    for split, count in (("train", 3), ("val", 2)):
        for label in ("forest", "water"):
            for i in range(count):
                _write_tif(root / "cls" / split / label / f"{label}_{split}{i}.tif", image())
    splits = root / "splits"
    splits.mkdir(parents=True, exist_ok=True)
    # With extensions (ignored) and as substrings of the file names.
    (splits / "train.txt").write_text("tile0_img.tif\ntile1_img.tif\ntile2\ntile3\n")
    (splits / "val.txt").write_text("tile4\ntile5_img.tif\n")
    # Exact stems (allow_substring_split_file: false); extensions differ from the files' .tif.
    (splits / "cls_train.txt").write_text(
        "forest_train0.png\nforest_train1.png\nwater_train0.png\nwater_train1.png\n"
    )
    (splits / "cls_val.txt").write_text("forest_train2.png\nwater_train2.png\n")
    custom = root / "custom_modules"
    custom.mkdir(parents=True, exist_ok=True)
    (custom / "__init__.py").write_text("")
    (custom / "golden_custom_helper.py").write_text("MARKER = 'custom modules imported'\n")
    return root


def cli_args(name: str, data_root: Path, work: Path) -> list[str]:
    """``["-c", <config with the placeholder replaced>, *extra flags]`` for config ``name``."""
    text = (CONFIGS / f"{name}.yaml").read_text().replace(PLACEHOLDER, str(data_root))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{name}.yaml"
    path.write_text(text)
    extra = [a.replace(PLACEHOLDER, str(data_root)) for a in EXTRA_ARGS.get(name, [])]
    return ["-c", str(path), *extra]


# ----------------------------------------------------------------------------- facts


def _short(class_path: str) -> str:
    return class_path.rsplit(".", 1)[-1]


def jsonable(value: Any, data_root: str | None = None) -> Any:
    """A JSON-able copy of a parsed config value: class paths shortened, data root made relative."""
    from enum import Enum

    if hasattr(value, "as_dict") and callable(value.as_dict):  # a jsonargparse Namespace
        value = value.as_dict()
    if isinstance(value, dict):
        out = {str(k): jsonable(v, data_root) for k, v in value.items() if k != "__path__"}
        if "class_path" in out and isinstance(out["class_path"], str):
            out["class_path"] = _short(out["class_path"])
            out.setdefault("init_args", {})
        return out
    if isinstance(value, list | tuple):
        return [jsonable(v, data_root) for v in value]
    if isinstance(value, Enum):
        return jsonable(value.value, data_root)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return value.replace(data_root, PLACEHOLDER) if data_root else value
    if value is None or isinstance(value, bool | int | float):
        return value
    return f"<{type(value).__name__}>"


def _config_section(config: Any, key: str) -> Any:
    try:
        return config[key]
    except (KeyError, TypeError):
        return None


def _optimizer_facts(task: Any) -> dict[str, Any]:
    import torch

    try:
        result = task.configure_optimizers()
    except Exception as error:
        return {"error": f"{type(error).__name__}"}
    optimizers: list[str] = []
    schedulers: list[str] = []
    monitors: list[str] = []
    lrs: list[float] = []

    def visit(item: Any) -> None:
        if isinstance(item, torch.optim.Optimizer):
            optimizers.append(type(item).__name__)
            lrs.extend(float(g["lr"]) for g in item.param_groups[:1])
        elif isinstance(item, dict):
            if "monitor" in item:
                monitors.append(str(item["monitor"]))
            for value in item.values():
                visit(value)
        elif isinstance(item, list | tuple):
            for value in item:
                visit(value)
        elif hasattr(item, "step") and hasattr(item, "optimizer"):
            schedulers.append(type(item).__name__)

    visit(result)
    return {"optimizers": optimizers, "lr": lrs, "schedulers": schedulers, "monitors": monitors}


def _sample_facts(dataset: Any) -> dict[str, Any]:
    sample = dataset[0]
    facts: dict[str, Any] = {}
    for key in sorted(sample):
        value = sample[key]
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            facts[key] = {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    return facts


def _dataset_facts(datamodule: Any) -> dict[str, Any]:
    try:
        datamodule.setup("fit")
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    facts: dict[str, Any] = {}
    for split in ("train", "val"):
        dataset = getattr(datamodule, f"{split}_dataset", None)
        if dataset is not None:
            facts[f"{split}_len"] = len(dataset)
    train = getattr(datamodule, "train_dataset", None)
    if train is not None and len(train):
        try:
            facts["train_sample"] = _sample_facts(train)
        except Exception as error:
            facts["train_sample"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    return facts


def collect(build_lightning_cli: Any, name: str, data_root: Path, work: Path) -> dict[str, Any]:
    """Instantiate config ``name`` with ``build_lightning_cli(..., run=False)``; return its facts."""
    args = cli_args(name, data_root, work)
    root = str(data_root)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = build_lightning_cli(args, run=False)
    task = cli.model
    model = getattr(task, "model", task)
    config = cli.config
    data_config = _config_section(config, "data")
    facts: dict[str, Any] = {
        "task": type(task).__name__,
        "layout": {k: list(v.shape) for k, v in model.state_dict().items()},
        "datamodule": type(cli.datamodule).__name__,
        "datamodule_init_args": jsonable(_config_section(data_config, "init_args"), root) or {},
        "callbacks": [
            type(c).__name__
            for c in cli.trainer.callbacks
            if type(c).__name__ not in INFRASTRUCTURE_CALLBACKS
        ],
        "optimization": _optimizer_facts(task),
        "top_level": {k: jsonable(_config_section(config, k), root) for k in TOP_LEVEL},
        # Transforms whose albumentations 1.x arguments were reported (albumentations 2 warns
        # "... not valid for transform X"; ours names the transform as "transform X:").
        "warned_transforms": sorted(
            {m.group(1) for w in caught if (m := _TRANSFORM_WARNING.search(str(w.message))) is not None}
        ),
    }
    facts["datasets"] = _dataset_facts(cli.datamodule)
    return facts


def write(out: Path) -> int:
    """Record the facts of every corpus config into ``out/manifest.json``."""
    import tempfile

    from terratorch.cli_tools import build_lightning_cli

    os.environ.setdefault("TERRATORCH_DISABLE_RICH", "1")
    manifest: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_data(Path(tmp) / "data")
        for name in config_names():
            try:
                manifest[name] = collect(build_lightning_cli, name, data_root, Path(tmp) / "work")
            except BaseException as error:
                manifest[name] = {"reference_error": f"{type(error).__name__}: {str(error)[:500]}"}
            print(f"golden_configs: {name}: {'ok' if 'task' in manifest[name] else manifest[name]}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(manifest)
