"""Fixtures of the reliability tests: tiny GeoTIFF data, a tiny backbone, in-process CLI runners.

Everything runs the real ``terratorch`` entry points in-process (``terratorch.__main__.main``), so a
bad-input case costs a config parse or a datamodule setup, not a Python start-up.
"""

from __future__ import annotations

import copy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from tests.tiny_backbones import tiny_cnn_module

BACKBONE_NAME = "reliability_cnn"
BACKBONE_MODULE = tiny_cnn_module(BACKBONE_NAME, channels=(8, 8))
MODULE_PACKAGE = "reliability_modules"
BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


@dataclass
class Run:
    """The outcome of one in-process command: exit code and captured streams."""

    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Any:
    """Tiny segmentation and classification demo datasets (32 px chips, 6 bands), made once."""
    from terratorch.datasets.demo import make_demo_dataset

    base = tmp_path_factory.mktemp("reliability_data")
    seg = make_demo_dataset(base / "seg", "segmentation", n_train=4, n_val=2, n_test=2, size=32, seed=3)
    cls = make_demo_dataset(base / "cls", "classification", n_train=6, n_val=3, n_test=3, size=32, seed=3)
    modules = base / "modules"
    (modules / MODULE_PACKAGE).mkdir(parents=True)
    (modules / MODULE_PACKAGE / "__init__.py").write_text("")
    (modules / MODULE_PACKAGE / "backbones.py").write_text(BACKBONE_MODULE)
    return type("Data", (), {"seg": seg, "cls": cls, "modules": modules / MODULE_PACKAGE, "base": base})


@pytest.fixture(autouse=True)
def lightning_logs_to_current_stderr() -> None:
    """Point Lightning's log handlers at this test's ``sys.stderr``.

    Lightning creates its handlers once per process, on the stream of the test that first imported
    it; a later test would log into that closed capture, and logging prints a traceback instead.
    """
    import logging

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("lightning")]:
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stderr  # not setStream(): it would flush the closed stream


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run each case in its own directory, with no custom modules picked up from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    monkeypatch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
    monkeypatch.delenv("TERRATORCH_DEBUG", raising=False)
    return tmp_path


def fit_config(data: Any, workdir: Path) -> dict[str, Any]:
    """A complete, valid ``terratorch fit`` config on the segmentation demo data (one short epoch)."""
    init = data.seg.datamodule_kwargs(batch_size=2, num_workers=0)
    return {
        "seed_everything": 0,
        "custom_modules_path": str(data.modules),
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "default_root_dir": str(workdir / "run"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "enable_checkpointing": False,
            "logger": False,
            "num_sanity_val_steps": 0,
            "limit_train_batches": 1,
            "limit_val_batches": 1,
        },
        "data": {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": init},
        "model": {
            "class_path": "SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    "backbone": BACKBONE_NAME,
                    "backbone_in_chans": 6,
                    "decoder": "FCNDecoder",
                    "decoder_channels": 8,
                    "decoder_num_convs": 1,
                    "num_classes": 3,
                },
                "ignore_index": -1,
                "plot_on_val": False,
            },
        },
    }


def write_yaml(path: Path, content: Any) -> str:
    """Dump ``content`` as YAML to ``path``; returns the path as str."""
    path.write_text(yaml.safe_dump(copy.deepcopy(content), sort_keys=False))
    return str(path)


def run_main(argv: list[str], capfd) -> Run:
    """Run ``terratorch <argv>`` in-process; return its exit code and what it printed (fd level)."""
    from terratorch.__main__ import main

    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    captured = capfd.readouterr()
    return Run(int(code or 0), captured.out, captured.err)


@pytest.fixture
def helpers() -> Any:
    """The builders of this module (test modules cannot import conftest directly)."""
    return type(
        "Helpers",
        (),
        {
            "fit_config": staticmethod(fit_config),
            "bench_config": staticmethod(bench_config),
            "write_chips": staticmethod(write_chips),
            "use_chips": staticmethod(use_chips),
            "write_yaml": staticmethod(write_yaml),
            "run_main": staticmethod(run_main),
            "bands": list(BANDS),
        },
    )


def write_chips(
    root: Path,
    n: int = 2,
    *,
    image: np.ndarray | None = None,
    images: dict[int, np.ndarray] | None = None,
    label: np.ndarray | None = None,
    labels: dict[int, np.ndarray] | None = None,
    label_crs: int | str = 32633,
    label_shift: float = 0.0,
    label_size: int = 32,
    nodata: float | None = None,
) -> tuple[Path, Path]:
    """Write ``n`` 6-band 32 px image chips and their label rasters under ``root``/images and /labels.

    ``image``/``label`` replace every chip's pixels, ``images``/``labels`` single chips'; ``label_crs``,
    ``label_shift`` (metres east) and ``label_size`` put the labels on another grid than the images.
    """
    from affine import Affine

    from terratorch.datasets.utils import write_geotiff

    grid = Affine(30.0, 0.0, 500_000.0, 0.0, -30.0, 5_000_000.0)
    label_grid = Affine(30.0, 0.0, 500_000.0 + label_shift, 0.0, -30.0, 5_000_000.0)
    if label_crs == 4326:
        label_grid = Affine(0.0003, 0.0, 15.0, 0.0, -0.0003, 45.0)
    rng = np.random.default_rng(0)
    for index in range(n):
        pixels = image if image is not None else rng.random((6, 32, 32), dtype=np.float32)
        pixels = (images or {}).get(index, pixels)
        write_geotiff(root / "images" / f"chip{index}_img.tif", pixels, nodata=nodata, transform=grid)
        mask = label if label is not None else rng.integers(0, 3, (label_size, label_size)).astype(np.int16)
        mask = (labels or {}).get(index, mask)
        write_geotiff(root / "labels" / f"chip{index}_mask.tif", mask, crs=label_crs, transform=label_grid)
    return root / "images", root / "labels"


def use_chips(config: dict[str, Any], images: Path, labels: Path) -> dict[str, Any]:
    """Point every split of a fit config's datamodule at ``images``/``labels`` (no split files, no stats)."""
    init = config["data"]["init_args"]
    for split in ("train", "val", "test"):
        init[f"{split}_data_root"] = str(images)
        init[f"{split}_label_data_root"] = str(labels)
        init.pop(f"{split}_split", None)
    init.update(img_grep="*_img.tif", label_grep="*_mask.tif", constant_scale=1.0)
    init.pop("means", None)
    init.pop("stds", None)
    return config


def bench_config(data: Any, workdir: Path) -> dict[str, Any]:
    """A valid two-task benchmark config (segmentation, classification) on the demo data."""

    def datamodule(demo: Any) -> dict[str, Any]:
        class_path = demo.datamodule_class_path.rsplit(".", 1)[-1]
        return {"class_path": class_path, "init_args": demo.datamodule_kwargs(batch_size=2, num_workers=0)}

    return {
        "experiment_name": "reliability",
        "storage_uri": str(workdir / "store"),
        "custom_modules_path": str(data.modules),
        "backbone": {"backbone": BACKBONE_NAME},
        "defaults": {
            "trainer_args": {"accelerator": "cpu", "max_epochs": 1, "enable_progress_bar": False},
            "terratorch_task": {"plot_on_val": False},
        },
        "n_trials": 1,
        "tasks": [
            {
                "name": "seg",
                "type": "segmentation",
                "metric": "val/mIoU",
                "decoder": "FCNDecoder",
                "decoder_args": {"channels": 8, "num_convs": 1},
                "num_classes": 3,
                "bands": list(BANDS),
                "ignore_index": -1,
                "datamodule": datamodule(data.seg),
            },
            {
                "name": "cls",
                "type": "classification",
                "decoder": "IdentityDecoder",
                "num_classes": 3,
                "bands": list(BANDS),
                "datamodule": datamodule(data.cls),
            },
        ],
    }


@pytest.fixture
def no_training(monkeypatch) -> None:
    """Make a benchmark that gets past validation fail at once: bad input must stop before it runs."""
    from terratorch.iterate import runner

    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("the benchmark started although its input is invalid")

    monkeypatch.setattr(runner.BenchmarkRunner, "__init__", refuse)
