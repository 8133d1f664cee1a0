"""Write the golden fixtures in ``tests/compat/golden/`` from the reference release.

Run with the reference venv's interpreter (``tools/reference/venv.sh`` prints its path)::

    "$(tools/reference/venv.sh)" tools/reference/make_golden.py [--only models,signatures,...]

Each part lives in its own ``golden_<part>.py`` module beside this file and writes under
``tests/compat/golden/<part>/``. The fixtures are facts (keys, shapes, signatures) and small
tensors; no code of the reference is copied.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parents[1] / "tests" / "compat" / "golden"
PARTS = tuple(sorted(p.stem[len("golden_") :] for p in HERE.glob("golden_*.py") if p.stem != "golden_cases"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    args = parser.parse_args()
    import torch

    import terratorch

    # Importing the reference sets torch.set_float32_matmul_precision("medium") process-wide, which
    # makes CPU matmuls bf16-accurate; golden figures must be float32.
    torch.set_float32_matmul_precision("highest")

    version = getattr(terratorch, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("terratorch")
    if version != "1.2.11":
        message = f"make_golden: run me with the reference venv (terratorch 1.2.11), found {version}"
        print(message, file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE))
    for part in args.only.split(","):
        part = part.strip()
        if part not in PARTS:
            print(f"make_golden: unknown part {part!r}; valid: {PARTS}", file=sys.stderr)
            return 2
        out = GOLDEN / part
        out.mkdir(parents=True, exist_ok=True)
        module = importlib.import_module(f"golden_{part}")
        count = module.write(out)
        print(f"make_golden: {part}: {count} fixtures in {out.relative_to(HERE.parents[1])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
