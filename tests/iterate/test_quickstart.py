"""The main job: examples/iterate/quickstart.yaml end to end (reduced budget), report included."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from terratorch.iterate.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = "examples/iterate/quickstart.yaml"


def test_quickstart_writes_data_trials_repeats_and_report(tmp_path, monkeypatch, capsys, mlflow_template):
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    store = tmp_path / "iterate_storage" / "quickstart"
    store.mkdir(parents=True)
    shutil.copy(mlflow_template, store / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    reduced = ["--n_trials", "2", "--run_repetitions", "1", "--defaults.trainer_args.max_epochs", "1"]
    assert main(["--config", QUICKSTART, *reduced]) == 0
    out = capsys.readouterr().out

    assert (tmp_path / "demo_data" / "quickstart" / "segmentation" / "splits" / "train.txt").exists()
    for task in ("demo_segmentation", "demo_classification"):
        assert f"task={task} trial=2/2 value=" in out
        assert f"task={task} status=finished" in out
    rows = list(csv.DictReader((store / "repeated_results.csv").open()))
    assert sorted(r["task"] for r in rows) == ["demo_classification", "demo_segmentation"]
    assert {r["metric"] for r in rows} == {"test/mIoU", "test/Accuracy"}
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    reports = list(store.glob("reports/*/report.html"))
    assert len(reports) == 1 and f"report written to {reports[0]}" in out
    html = reports[0].read_text()
    assert "demo_segmentation" in html and "data:image/png;base64," in html
