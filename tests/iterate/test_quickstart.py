"""The main job: the README's quickstart block end to end, exactly as shipped, report included.

The quickstart compares two backbones; this test is its acceptance check: the report must show both,
and on the segmentation demo the better backbone's mean test score must beat the other's by more
than the width of either 95% CI (and the CIs must not overlap), from the run's own numbers.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

from terratorch.exit_codes import OK

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = "examples/iterate/quickstart.yaml"
BACKBONES = ("timm_resnet18", "prithvi_eo_tiny")
_README_LS = "ls iterate_storage/quickstart/reports/quickstart_*/report.html"
TASKS = [f"{kind}_{backbone}" for kind in ("segmentation", "classification") for backbone in BACKBONES]


class _Tables(HTMLParser):
    """Collects every ``<table>`` of a page as a list of rows of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _per_task_rows(html: str) -> dict[str, dict[str, str]]:
    """The report's per-task table (the one with mean and CI columns), keyed by task name."""
    parser = _Tables()
    parser.feed(html)
    for header, *rows in (t for t in parser.tables if t):
        if {"task", "mean", "ci_low", "ci_high"} <= set(header):
            return {row[header.index("task")]: dict(zip(header, row)) for row in rows}
    raise AssertionError("the report has no per-task table with mean and ci_low/ci_high columns")


def _readme_quickstart_commands() -> list[str]:
    """The README's quickstart shell block (install lines left out, as in ``tests/test_docs.py``).

    ``tests/test_docs.py`` skips that block, with a marker naming this test, so it runs once per CI.
    """
    from tests.test_docs import INSTALL_LINE, SKIP, _shell_lines

    text = (ROOT / "README.md").read_text()
    for match in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
        if f"--config {QUICKSTART}" in match.group(1):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            marker = SKIP.search(before)
            assert marker and "tests/iterate/test_quickstart.py" in marker.group(1), before
            return [c for c in _shell_lines(match.group(1)) if not INSTALL_LINE.match(c)]
    raise AssertionError(f"README.md has no bash block running {QUICKSTART}")


def test_quickstart_compares_two_backbones_with_separated_cis(tmp_path, mlflow_template):
    commands = _readme_quickstart_commands()
    assert commands == [f".venv/bin/terratorch iterate --config {QUICKSTART}", _README_LS], commands
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    store = tmp_path / "iterate_storage" / "quickstart"
    store.mkdir(parents=True)
    shutil.copy(mlflow_template, store / "mlflow.db")  # a migrated store: saves its creation time
    env = {**os.environ, "MPLBACKEND": "Agg", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + "\n".join(commands)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == OK, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout

    assert (tmp_path / "demo_data" / "quickstart" / "segmentation" / "splits" / "train.txt").exists()
    for task in TASKS:
        assert f"task={task} trial=2/2 value=" in out
        assert f"task={task} repeat=3/3 seed=" in out
        assert f"task={task} status=finished" in out
    rows = list(csv.DictReader((store / "repeated_results.csv").open()))
    assert sorted(r["task"] for r in rows) == sorted(TASKS * 3)
    assert {r["metric"] for r in rows} == {"test/mIoU", "test/Accuracy"}
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)
    assert all(r["task"].endswith(r["backbone"]) for r in rows), [(r["task"], r["backbone"]) for r in rows]

    reports = list(store.glob("reports/*/report.html"))
    assert len(reports) == 1 and f"report written to {reports[0]}" in out
    assert str(reports[0].relative_to(tmp_path)) in out.splitlines()  # the README's `ls` line found it
    html = reports[0].read_text()
    assert "data:image/png;base64," in html
    table = _per_task_rows(html)
    assert set(TASKS) <= set(table), f"tasks in the report: {sorted(table)}"

    assert all(table[task]["backbone"] == task.split("_", 1)[1] for task in TASKS), table
    seg = {b: table[f"segmentation_{b}"] for b in BACKBONES}
    assert all(row["n_scores"] == "3" for row in seg.values())
    mean = {b: float(row["mean"]) for b, row in seg.items()}
    low = {b: float(row["ci_low"]) for b, row in seg.items()}
    high = {b: float(row["ci_high"]) for b, row in seg.items()}
    better, other = sorted(BACKBONES, key=mean.get, reverse=True)
    # The README tells this story: the CNN wins on the textured, noisy segmentation demo.
    assert better == "timm_resnet18", f"segmentation means: {mean}"
    gap = mean[better] - mean[other]
    assert gap > high[better] - low[better] and gap > high[other] - low[other], (mean, low, high)
    assert low[better] > high[other], (mean, low, high)
