"""Tests for terratorch.iterate.report: a self-contained report.html whose plots load in a browser."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from terratorch.iterate import report
from terratorch.iterate.summarize import (
    BenchmarkResults,
    ExperimentResult,
    TaskResult,
    TrialRecord,
    write_summary,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
MARKER_SCRIPT = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var loaded = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var div = document.createElement('div');
  div.id = 'tt-marker';
  div.textContent = 'images=' + imgs.length + ' loaded=' + loaded;
  document.body.appendChild(div);
});
</script>"""
BROKEN_IMAGE = '<img src="data:image/png;base64,bm90IGEgcG5n" alt="broken">'


def _results() -> BenchmarkResults:
    base = ExperimentResult("unet <baseline>", "unet", "unet_scratch", run_id="b" * 32)
    vit = ExperimentResult("vit", "vit", "vit_small", run_id="a" * 32, efficiency={"samples_per_s": 40.0})
    for exp, shift in ((vit, 0.1), (base, 0.0)):
        trials = [TrialRecord(i, "finished", 0.3 + 0.05 * i + shift) for i in range(3)]
        exp.tasks["seg"] = TaskResult(
            "seg", "segmentation", "val/mIoU", "max", best_value=0.4 + shift, trials=trials,
            test_scores=[0.4 + shift, 0.42 + shift, 0.38 + shift],
        )  # fmt: skip
    base.efficiency = {"samples_per_s": 90.0}
    base.tasks["cls"] = TaskResult("cls", "classification", "val/Accuracy", "max", status="failed")
    return BenchmarkResults([vit, base], tracking_uri="sqlite:///store/mlflow.db")


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    return write_summary(_results(), tmp_path_factory.mktemp("summary"))


def test_report_is_self_contained(written):
    page = written.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert len(sources) == 3 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "url(" not in page  # no CSS resources either


def test_report_shows_tables_escaped_and_failed_tasks_highlighted(written):
    page = written.read_text(encoding="utf-8")
    assert "unet &lt;baseline&gt;" in page and "unet <baseline>" not in page
    assert '<tr class="failed">' in page
    failed_row = page.split('<tr class="failed">', 1)[1].split("</tr>", 1)[0]
    assert "cls" in failed_row and "failed" in failed_row
    for heading in ("Aggregate across tasks", "Per task", "Normalised score per task", "Plots"):
        assert f"<h2>{heading}</h2>" in page


def test_html_table_formats_numbers_and_handles_empty():
    table = report.html_table([{"a": 0.123456, "b": math.nan, "c": "x&y"}])
    assert "<td>0.1235</td>" in table and "<td>-</td>" in table and "x&amp;y" in table
    assert "No rows" in report.html_table([])


def test_image_data_uri_round_trips(tmp_path):
    import base64

    png = tmp_path / "p.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nabc")
    uri = report.image_data_uri(png)
    assert base64.b64decode(uri.split(",", 1)[1]) == png.read_bytes()


def _render(page: Path, tmp_path: Path) -> str:
    """Load ``page`` in headless Chromium (network off) and return the DOM after the load event."""
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
        "--dump-dom", page.as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _marker(dom: str) -> str:
    found = re.search(r'<div id="tt-marker">([^<]*)</div>', dom)
    assert found, "the page's load handler did not run:\n" + dom[-1000:]
    return found.group(1)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (CI installs it via .ci/system-packages)"
)
def test_report_plots_load_in_headless_chromium(written, tmp_path):
    page = written.read_text(encoding="utf-8")
    probe = tmp_path / "report_probe.html"
    probe.write_text(page.replace("</body>", MARKER_SCRIPT + "</body>"), encoding="utf-8")
    dom = _render(probe, tmp_path)
    assert _marker(dom) == "images=3 loaded=3"
    assert "TerraTorch benchmark report" in dom and "unet &lt;baseline&gt;" in dom
    # Control: the same probe reports an image that does not decode, so the check above can fail.
    broken = tmp_path / "broken_probe.html"
    broken.write_text(page.replace("</body>", BROKEN_IMAGE + MARKER_SCRIPT + "</body>"), encoding="utf-8")
    assert _marker(_render(broken, tmp_path)) == "images=4 loaded=3"
