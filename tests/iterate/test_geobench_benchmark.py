"""docs/geobench.md's two-backbone GEO-Bench comparison end to end, exactly as the page shows it.

The page's weight-file and benchmark blocks are marked for this test (``tests/test_docs.py`` skips
them), so the comparison runs once per CI: a torchgeo-weight ResNet-18 against Prithvi-EO tiny on
two GEO-Bench tasks in GEO-Bench's on-disk layout, then the summarize config's GEO-Bench-normalised
report with IQM and bootstrap CIs per backbone.
"""

from __future__ import annotations

import csv
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from terratorch.exit_codes import OK

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "geobench.md"
EXPERIMENTS = ("geobench_ssl4eo_resnet18", "geobench_prithvi_tiny")
TASKS = ("m-eurosat", "m-brick-kiln")
REPORT = Path("iterate_storage/geobench/reports/geobench_two_backbones")
CONFIGS = ("ssl4eo_resnet18.yaml", "prithvi_tiny.yaml", "summarize.yaml")  # examples/iterate/geobench/


def _marked_blocks() -> dict[str, str]:
    """The page's blocks that carry this test's skip marker, by language."""
    from tests.test_docs import SKIP

    text = PAGE.read_text()
    blocks: dict[str, str] = {}
    for match in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.S | re.M):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = SKIP.search(before)
        if marker and "tests/iterate/test_geobench_benchmark.py" in marker.group(1):
            blocks[match.group(1)] = match.group(2)
    assert set(blocks) == {"python", "bash"}, f"marked blocks found: {sorted(blocks)}"
    return blocks


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_geobench_two_backbone_comparison_from_the_docs(tmp_path, mlflow_template):
    from tests.test_docs import _shell_lines

    blocks = _marked_blocks()
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    store = tmp_path / "iterate_storage" / "geobench"
    store.mkdir(parents=True)
    shutil.copy(mlflow_template, store / "mlflow.db")  # a migrated store: saves its creation time

    weights = _run([sys.executable, "-c", blocks["python"]], tmp_path)
    assert weights.returncode == 0, weights.stderr[-3000:]
    assert (tmp_path / "weights" / "ssl4eos12_resnet18_sentinel2_all_moco.pth").stat().st_size > 1e6

    commands = _shell_lines(blocks["bash"])
    assert [c.rsplit("/", 1)[-1] for c in commands if "--config" in c] == list(CONFIGS), commands
    result = _run(["bash", "-c", "set -euo pipefail\n" + "\n".join(commands)], tmp_path)
    assert result.returncode == OK, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout

    # The data came in GEO-Bench's layout, written by the configs' demo_data on the first run only.
    for task in TASKS:
        folder = tmp_path / "demo_data" / "geobench" / task / "classification_v1.0" / task
        assert (folder / "task_specs.pkl").is_file() and (folder / "default_partition.json").is_file()
        assert out.count(f"generating demo data: {task}") == 1
        assert out.count(f"task={task} repeat=2/2 seed=") == 2  # once per backbone
        assert out.count(f"task={task} status=finished") == 2

    report = tmp_path / REPORT
    with (report / "aggregate.csv").open() as handle:
        aggregate = {row["experiment"]: row for row in csv.DictReader(handle)}
    assert set(aggregate) == set(EXPERIMENTS)
    assert aggregate["geobench_ssl4eo_resnet18"]["backbone"] == "ssl4eos12_resnet18_sentinel2_all_moco"
    assert aggregate["geobench_prithvi_tiny"]["backbone"] == "prithvi_eo_tiny"
    for row in aggregate.values():
        assert row["tasks_scored"] == row["tasks_total"] == "2"
        low, iqm, high = (float(row[k]) for k in ("ci_low", "iqm_normalized", "ci_high"))
        assert 0.0 <= low <= iqm <= high <= 1.0
    assert "iqm_normalized" in out  # the page's `cat` printed the table

    with (report / "normalized_scores.csv").open() as handle:
        normalized = {row["experiment"]: row for row in csv.DictReader(handle)}
    for task in TASKS:
        # GEO-Bench normalisation: the observed range of all compared scores, not accuracy's [0, 1]
        assert normalized["(range used)"][task].startswith("observed ["), normalized["(range used)"]
        values = [float(normalized[e][task]) for e in EXPERIMENTS]
        assert all(0.0 <= v <= 1.0 for v in values) and not any(math.isnan(v) for v in values)
    assert (report / "report.html").read_text().count("data:image/png;base64,") >= 2
