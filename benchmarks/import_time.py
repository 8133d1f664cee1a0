"""Import-time budget: ``import terratorch`` (and friends) vs ``import torch``, fresh interpreters.

Each command runs ``--repeats`` times in a new interpreter, interleaved so that disk-cache effects hit
every command alike; medians are compared with the ``import torch`` baseline of the same run.
Budgets (DESIGN.md): ``import terratorch`` <= 1.3x torch; ``terratorch --help`` and
``terratorch iterate --help`` < 1 s; ``terratorch fit --help`` <= 2.5x torch. Two reference rows
without a budget: ``import terratorch.cli_tools`` (lazy: no torch, no Lightning) and
``import lightning.pytorch.cli``, the floor of ``fit --help`` (LightningCLI needs it).

Usage: python benchmarks/import_time.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLI = [sys.executable, "-m", "terratorch"]
COMMANDS: dict[str, list[str]] = {
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "python -c 'import terratorch'": [sys.executable, "-c", "import terratorch"],
    "python -c 'import terratorch.registry'": [sys.executable, "-c", "import terratorch.registry"],
    "python -c 'import terratorch.models'": [sys.executable, "-c", "import terratorch.models"],
    "python -c 'from terratorch.models import EncoderDecoderFactory'": [
        sys.executable,
        "-c",
        "from terratorch.models import EncoderDecoderFactory",
    ],
    "python -c 'import terratorch.cli_tools'": [sys.executable, "-c", "import terratorch.cli_tools"],
    "python -c 'import lightning.pytorch.cli' (fit --help floor)": [
        sys.executable,
        "-c",
        "import lightning.pytorch.cli",
    ],
    "terratorch --help": [*CLI, "--help"],
    "terratorch iterate --help": [*CLI, "iterate", "--help"],
    "terratorch fit --help": [*CLI, "fit", "--help"],
}
BASELINE = "python -c 'import torch' (baseline)"
# name -> (kind, limit): "ratio" against the baseline, or "seconds" absolute.
BUDGETS: dict[str, tuple[str, float]] = {
    "python -c 'import terratorch'": ("ratio", 1.3),
    "terratorch --help": ("seconds", 1.0),
    "terratorch iterate --help": ("seconds", 1.0),
    "terratorch fit --help": ("ratio", 2.5),
}


def _time_once(command: list[str]) -> float | None:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, cwd=Path(__file__).parent)
    elapsed = time.perf_counter() - start
    return elapsed if result.returncode == 0 else None


def main() -> None:
    """Measure every command, print medians, ratios and whether each budget holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    for command in COMMANDS.values():  # warm the page cache once
        _time_once(command)
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    failed: set[str] = set()
    for _ in range(args.repeats):
        for name, command in COMMANDS.items():
            elapsed = _time_once(command)
            if elapsed is None:
                failed.add(name)
            else:
                samples[name].append(elapsed)
    base = statistics.median(samples[BASELINE])
    print(f"{'command':62s} {'median s':>9s} {'x torch':>8s}  budget")
    for name in COMMANDS:
        if name in failed or not samples[name]:
            print(f"{name:62s} {'failed':>9s}")
            continue
        median = statistics.median(samples[name])
        verdict = ""
        if name in BUDGETS:
            kind, limit = BUDGETS[name]
            value = median / base if kind == "ratio" else median
            unit = "x" if kind == "ratio" else " s"
            verdict = f"{'ok' if value <= limit else 'OVER'} (limit {limit}{unit})"
        print(f"{name:62s} {median:9.3f} {median / base:8.2f}  {verdict}")


if __name__ == "__main__":
    main()
