"""Fixtures of the benchmark-tool tests: tiny demo data, config builders, a fake training function."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


@pytest.fixture(scope="session")
def demo_roots(tmp_path_factory) -> dict[str, Path]:
    """Tiny segmentation and classification demo datasets (32 px, a handful of chips), made once."""
    from terratorch.datasets.demo import make_demo_dataset

    base = tmp_path_factory.mktemp("iterate_demo")
    roots = {}
    for task, kwargs in {
        "segmentation": {"n_train": 8, "n_val": 4, "n_test": 4},
        "classification": {"n_train": 12, "n_val": 6, "n_test": 6},
    }.items():
        roots[task] = make_demo_dataset(base / task, task, size=32, seed=1, **kwargs).root
    return roots


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory) -> Path:
    """An empty, migrated MLflow SQLite database; creating one costs seconds, copying it does not."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow_template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def storage(tmp_path, mlflow_template) -> Path:
    """A fresh benchmark storage directory whose MLflow database is already initialised."""
    import shutil

    folder = tmp_path / "store"
    folder.mkdir()
    shutil.copy(mlflow_template, folder / "mlflow.db")
    return folder


def segmentation_datamodule(root: Path) -> dict[str, Any]:
    """``datamodule`` entry reading the segmentation demo dataset at ``root``."""
    init = {
        "batch_size": 4,
        "num_workers": 0,
        "img_grep": "*_img.tif",
        "label_grep": "*_mask.tif",
        "means": str(root / "means.txt"),
        "stds": str(root / "stds.txt"),
        "dataset_bands": BANDS,
        "constant_scale": 0.0001,
        "no_data_replace": 0.0,
        "no_label_replace": -1,
        "num_classes": 3,
    }
    for split in ("train", "val", "test"):
        init[f"{split}_data_root"] = str(root / "images")
        init[f"{split}_label_data_root"] = str(root / "labels")
        init[f"{split}_split"] = str(root / "splits" / f"{split}.txt")
    return {"class_path": "GenericNonGeoSegmentationDataModule", "init_args": init}


def classification_datamodule(root: Path) -> dict[str, Any]:
    """``datamodule`` entry reading the classification demo dataset at ``root``."""
    init = {
        "batch_size": 4,
        "num_workers": 0,
        "img_grep": "*.tif",
        "means": str(root / "means.txt"),
        "stds": str(root / "stds.txt"),
        "dataset_bands": BANDS,
        "constant_scale": 0.0001,
        "no_data_replace": 0.0,
        "num_classes": 3,
    }
    for split in ("train", "val", "test"):
        init[f"{split}_data_root"] = str(root / "images")
        init[f"{split}_split"] = str(root / "splits" / f"{split}.txt")
    return {"class_path": "GenericNonGeoClassificationDataModule", "init_args": init}


def base_config(storage: Path, seg_root: Path | None = None, cls_root: Path | None = None) -> dict[str, Any]:
    """A small backbone-centric config with one segmentation task (and a classification task)."""
    seg_root = seg_root or Path("/nonexistent/segmentation")
    tasks = [
        {
            "name": "seg",
            "type": "segmentation",
            "metric": "val/mIoU",
            "direction": "max",
            "decoder": "FCNDecoder",
            "decoder_args": {"channels": 16},
            "num_classes": 3,
            "bands": BANDS,
            "loss": "ce",
            "ignore_index": -1,
            "datamodule": segmentation_datamodule(seg_root),
        }
    ]
    if cls_root is not None:
        tasks.append(
            {
                "name": "cls",
                "type": "classification",
                "decoder": "IdentityDecoder",
                "num_classes": 3,
                "bands": BANDS,
                "datamodule": classification_datamodule(cls_root),
            }
        )
    return {
        "experiment_name": "unit",
        "storage_uri": str(storage),
        "seed": 7,
        "backbone": {"backbone": "timm_resnet18", "backbone_args": {"pretrained": False}},
        "defaults": {
            "trainer_args": {
                "accelerator": "cpu",
                "max_epochs": 2,
                "num_sanity_val_steps": 0,
                "enable_progress_bar": False,
                "log_every_n_steps": 1,
            },
            "terratorch_task": {"plot_on_val": False},
        },
        "n_trials": 3,
        "heartbeat_interval": 1,
        "optimization_space": {"lr": {"min": 1.0e-4, "max": 1.0e-1, "type": "real", "log": True}},
        "tasks": tasks,
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Dump ``config`` as YAML to ``path``."""
    path.write_text(yaml.safe_dump(copy.deepcopy(config), sort_keys=False))
    return path


def fake_value(resolved: dict[str, Any]) -> float:
    """Deterministic stand-in score: best at lr = 1e-2."""
    lr = resolved["task"]["lr"]
    return 1.0 - abs(math.log10(lr) + 2.0) / 4.0


@pytest.fixture
def fake_training(monkeypatch):
    """Replace the Lightning training by a fast fake; ``calls`` records every call.

    Set ``fail_if(resolved) -> bool`` on the returned object to make some trials raise.
    """
    from terratorch.iterate import trial

    class Fake:
        calls: list[dict[str, Any]] = []
        fail_if = staticmethod(lambda resolved: False)

        def __call__(self, resolved, *, metric, direction, seed, on_epoch=None, test=False, **kwargs):
            self.calls.append({"resolved": resolved, "seed": seed, "metric": metric, "test": test, **kwargs})
            if self.fail_if(resolved):
                raise FloatingPointError(f"loss is NaN at lr={resolved['task']['lr']}")
            value = fake_value(resolved)
            for epoch in range(2):
                epoch_value = value - 0.1 * (1 - epoch)
                if on_epoch is not None:
                    on_epoch(epoch, {metric: epoch_value, "val/loss": 1.0 - value})
                stub = SimpleNamespace(
                    sanity_checking=False, current_epoch=epoch, callback_metrics={metric: epoch_value}
                )
                for callback in kwargs.get("extra_callbacks", ()):
                    callback.on_validation_end(stub, None)  # PruningCallback may raise TrialPruned
            test_metrics = {metric.replace("val/", "test/"): value - 0.05, "test/loss": 0.5} if test else {}
            return trial.TrainingResult(
                value=value,
                best_epoch=1,
                epochs=2,
                history=[value - 0.1, value],
                test_metrics=test_metrics,
                input_shape=(6, 32, 32),
            )

    fake = Fake()
    fake.calls = []
    monkeypatch.setattr(trial, "run_training", fake)
    # The efficiency measurement builds the real model; tests that want it use real training.
    from terratorch.iterate import efficiency

    figures = {"params": 1000.0, "gflops": 0.5, "samples_per_s": 10.0, "peak_mem_mb": 1.0}
    monkeypatch.setattr(efficiency, "measure_efficiency", lambda model, shape, **kwargs: dict(figures))
    monkeypatch.setattr("terratorch.iterate.trial.build_task", lambda config: SimpleNamespace(model=None))
    return fake


@pytest.fixture
def helpers():
    """The builder functions of this module (test modules cannot import conftest directly)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        base_config=base_config,
        write_config=write_config,
        segmentation_datamodule=segmentation_datamodule,
        classification_datamodule=classification_datamodule,
        fake_value=fake_value,
        bands=list(BANDS),
    )
