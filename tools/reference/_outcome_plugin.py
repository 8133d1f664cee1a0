"""pytest plugin: per-test outcome and crash line, as JSON in ``$REFTESTS_OUTCOME_JSON``.

The file is rewritten after each test.

Loaded with ``-p _outcome_plugin`` by ``reference_tests.py``; kept separate from junit XML so test ids
are the plain pytest node ids and failures carry their one-line crash message.
"""

from __future__ import annotations

import json
import os
from typing import Any

_RESULTS: dict[str, dict[str, Any]] = {}


def _crash_line(report: Any) -> str:
    longrepr = report.longrepr
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return f"{os.path.basename(crash.path)}:{crash.lineno}: {crash.message}".splitlines()[0][:400]
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).splitlines()[0][:400]
    text = str(longrepr or "").strip().splitlines()
    return text[-1][:400] if text else ""


def _dump() -> None:
    path = os.environ.get("REFTESTS_OUTCOME_JSON")
    if path:
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(_RESULTS, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)


def pytest_runtest_logreport(report: Any) -> None:
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": "passed", "message": ""})
    if report.when == "call":
        if report.outcome == "failed" and hasattr(report, "wasxfail"):
            return
        if entry["outcome"] == "passed":
            entry["outcome"] = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        if report.failed:
            entry["message"] = _crash_line(report)
    elif report.failed:
        entry["outcome"] = "error"
        entry["message"] = entry["message"] or _crash_line(report)
    elif report.skipped and report.when == "setup":
        entry["outcome"] = "skipped"
        entry["message"] = _crash_line(report)
    if report.when == "teardown":
        _dump()  # after every test, so a file killed by the hard timeout keeps what it ran


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _RESULTS[report.nodeid or "<collection>"] = {"outcome": "error", "message": _crash_line(report)}
        _dump()


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    _dump()
