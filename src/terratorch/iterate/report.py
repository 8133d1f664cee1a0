"""A self-contained HTML report of a benchmark summary.

Everything lives in the one file: styles are inline and plots are embedded as base64 ``data:``
URIs, so the report can be mailed, attached to an MLflow run or opened offline. No scripts, fonts
or other external resources are referenced.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from terratorch.iterate.results import BenchmarkResults

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0 1rem; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f4f6; } td:first-child, th:first-child { text-align: left; }
tr.failed td { background: #fdecea; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9rem; }
.notes { font-size: 0.85rem; color: #444; }
.scroll { overflow-x: auto; }
"""

_NOTES = (
    "Scores are the test-split values of the repeat runs (one per seed) or, for tasks that were "
    "not repeated, the best validation value of the HPO. mean and std are over seeds; IQM is the "
    "interquartile mean (25% of the scores trimmed from each end); the 95% CI is a seeded percentile "
    "bootstrap of the mean. Normalised "
    "scores map each task onto its reference range (1 = best end, direction-aware); tasks without "
    "a given range use [0, 1] for bounded metrics (mIoU, accuracy, F1, ...), else the min-max of "
    "the scores of all experiments shown (the range used is listed under the normalised table); a "
    "task with neither is left out of the aggregate. The aggregate IQM pools every normalised "
    "per-seed score, its CI resamples seeds within each task. Efficiency figures are measured once "
    "per backbone on the first task's best model: parameters, GFLOPs per sample (torch's "
    "FlopCounterMode, multiply and add counted separately), inference samples/s and peak memory."
)


def image_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` for the PNG at ``path``."""
    payload = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"data:image/png;base64,{payload}"


def format_value(value: Any) -> str:
    """Compact text for a table cell: 4 decimals, scientific for tiny/huge, "-" for NaN/None."""
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:.1f}"
    return "-" if value is None else str(value)


def html_table(rows: Sequence[Mapping[str, Any]], highlight_failed: bool = False) -> str:
    """An HTML table of dict rows (numbers formatted like the markdown tables, text escaped)."""
    if not rows:
        return "<p><em>No rows.</em></p>"
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for row in rows:
        failed = highlight_failed and str(row.get("status", "finished")) not in ("finished", "")
        cells = "".join(f"<td>{html.escape(format_value(row.get(c)))}</td>" for c in columns)
        body.append(f'<tr class="failed">{cells}</tr>' if failed else f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _figure(caption: str, path: Path) -> str:
    alt = html.escape(caption)
    return f'<figure><img src="{image_data_uri(path)}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def render_report(
    results: BenchmarkResults,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    figures: Mapping[str, Path],
) -> str:
    """Build the report HTML.

    Args:
        results: Provides experiment names, backbones and the tracking URI for the header.
        tables: ``aggregate``, ``tasks`` and ``normalized`` rows from :mod:`~terratorch.iterate.summarize`.
        figures: Caption → PNG path, embedded in this order.
    """
    experiments = "".join(
        f"<li><strong>{html.escape(e.label)}</strong>: backbone <code>{html.escape(e.backbone)}</code>, "
        f"run <code>{html.escape(e.run_id)}</code></li>"
        for e in results.experiments
    )
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "<h1>TerraTorch benchmark report</h1>",
        f'<p class="meta">Generated {stamp} from <code>{html.escape(results.tracking_uri or "-")}</code></p>',
        f"<ul>{experiments}</ul>",
        "<h2>Aggregate across tasks</h2>",
        html_table(tables.get("aggregate", [])),
        "<h2>Per task</h2>",
        html_table(tables.get("tasks", []), highlight_failed=True),
        "<h2>Normalised score per task</h2>",
        html_table(tables.get("normalized", [])),
        "<h2>Plots</h2>",
        *(_figure(caption, path) for caption, path in figures.items()),
        f'<h2>How to read this</h2><p class="notes">{html.escape(_NOTES)}</p>',
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>TerraTorch benchmark report</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(
    results: BenchmarkResults,
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    figures: Mapping[str, Path],
    path: str | Path,
) -> Path:
    """Write :func:`render_report` to ``path`` (UTF-8) and return the path."""
    out = Path(path)
    out.write_text(render_report(results, tables, figures), encoding="utf-8")
    return out
