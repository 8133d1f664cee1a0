"""The GEO-Bench benchmark configs for an smp Unet on an SSL4EO ResNet-50 and for DOFA run end to end.

Each config runs through ``terratorch iterate`` as shipped, only cut down by the CLI's dotted
overrides (one epoch, one repetition, fewer and smaller demo chips): its demo_data writes the
GEO-Bench task, the task trains, tests and finishes, and the report is written. The ResNet reads a
seeded stand-in weight file in torchgeo's layout from the config's ``backbone_ckpt_data``.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from terratorch.exit_codes import OK

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "examples" / "iterate" / "geobench"
STORE = Path("iterate_storage/geobench")
# Smallest run that still exercises every phase: one train/valid/test batch of four 32-px chips.
CUT_DOWN = [
    "--run_repetitions", "1",
    "--defaults.trainer_args.max_epochs", "1",
    "--demo_data.0.n_train", "4",
    "--demo_data.0.size", "32",
    "--tasks.0.datamodule.init_args.batch_size", "4",
]  # fmt: skip


@pytest.fixture
def workdir(tmp_path, mlflow_template, monkeypatch) -> Path:
    """A working directory with the examples folder and a migrated MLflow store, made current."""
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (tmp_path / STORE).mkdir(parents=True)
    shutil.copy(mlflow_template, tmp_path / STORE / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


def _iterate(config: str, capsys: pytest.CaptureFixture[str]) -> str:
    from terratorch.iterate.__main__ import main

    code = main(["--config", f"examples/iterate/geobench/{config}", *CUT_DOWN])
    out = capsys.readouterr().out
    assert code == OK, out[-3000:]
    return out


def _check_finished(
    workdir: Path, out: str, experiment: str, backbone: str, task: str, benchmark: str
) -> None:
    assert out.count(f"generating demo data: {task}") == 1
    folder = workdir / "demo_data" / "geobench" / task / benchmark / task
    assert (folder / "task_specs.pkl").is_file() and (folder / "default_partition.json").is_file()
    assert f"task={task} repeat=1/1 seed=" in out
    assert f"task={task} status=finished" in out
    reports = list((workdir / STORE / "reports").glob(f"{experiment}_*/report.html"))
    assert len(reports) == 1, sorted(p.name for p in (workdir / STORE / "reports").iterdir())
    assert "data:image/png;base64," in reports[0].read_text()
    with (workdir / STORE / "repeated_results.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["experiment"] == experiment]
    assert [(row["task"], row["backbone"]) for row in rows] == [(task, backbone)]
    assert rows[0]["metric"].startswith("test/") and 0.0 <= float(rows[0]["score"]) <= 1.0


def test_ssl4eo_resnet50_smp_unet_config(workdir, capsys):
    import torch
    from torchgeo.models import resnet50

    torch.manual_seed(0)
    (workdir / "weights").mkdir()
    stand_in = resnet50(in_chans=13).state_dict()  # torchgeo's layout: conv1 ... layer4, fc
    torch.save(stand_in, workdir / "weights" / "ssl4eos12_resnet50_sentinel2_all_moco.pth")

    out = _iterate("ssl4eo_smp_unet.yaml", capsys)
    backbone = "ssl4eos12_resnet50_sentinel2_all_moco"
    _check_finished(workdir, out, "geobench_ssl4eo_smp_unet", backbone, "m-cashew-plant", "segmentation_v1.0")


def test_dofa_config(workdir, capsys):
    out = _iterate("dofa.yaml", capsys)
    backbone = "dofa_small_patch16_224"
    _check_finished(workdir, out, "geobench_dofa", backbone, "m-eurosat", "classification_v1.0")
