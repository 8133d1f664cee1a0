"""``terratorch iterate`` on a TerraMind task: two modalities, LoRA, a search over rank and lr.

Runs ``examples/iterate/terramind.yaml`` as shipped (2 trials of 1 epoch on a tiny two-modality demo
dataset). Each trial must finish, be logged with its sampled LoRA rank, and train a model whose
encoder carries LoRA adapters of that rank.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mlflow import MlflowClient

from terratorch.exit_codes import OK
from terratorch.iterate.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
CONFIG = "examples/iterate/terramind.yaml"
RANK = "model_args.peft_config.peft_config_kwargs.r"

pytest.importorskip("peft")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_template: Path) -> Path:
    """A directory like the repository root with the demo data the config reads and an MLflow store."""
    from terratorch.datasets import make_multimodal_demo

    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (tmp_path / "store").mkdir()
    shutil.copy(mlflow_template, tmp_path / "store" / "mlflow.db")
    make_multimodal_demo(tmp_path / "demo_data" / "terramind", n_train=8, n_val=4, n_test=2, size=32)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _runs(store: Path, level: str) -> list:
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("terramind_lora")
    level_filter = f"tags.`terratorch.level` = '{level}'"
    return client.search_runs([experiment.experiment_id], filter_string=level_filter)


def test_terramind_lora_rank_search_runs(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from terratorch.tasks.base import TerraTorchTask

    ranks: list[int] = []
    original = TerraTorchTask.build_from_factory

    def record_rank(self, *args, **kwargs):  # the LoRA rank each trial's model was built with
        model = original(self, *args, **kwargs)
        lora_a = next(p for n, p in model.encoder.named_parameters() if "q_linear.lora_A" in n)
        ranks.append(lora_a.shape[0])
        return model

    monkeypatch.setattr(TerraTorchTask, "build_from_factory", record_rank)
    assert main(["--config", CONFIG, "--storage_uri", str(workdir / "store")]) == OK
    (task,) = _runs(workdir / "store", "task")
    assert task.data.tags["terratorch.status"] == "finished"
    trials = _runs(workdir / "store", "trial")
    assert len(trials) == 2
    assert all(t.data.tags["terratorch.status"] == "finished" for t in trials)
    logged = sorted(int(t.data.params[RANK]) for t in trials)
    assert set(logged) <= {2, 8} and all("lr" in t.data.params for t in trials)
    assert sorted(ranks) == logged  # the sampled rank reached the LoRA adapters
