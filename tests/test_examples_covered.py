"""Every runnable file in examples/ is exercised by a test (its path appears in a test module)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = {".yaml", ".yml", ".py"}


def _example_entry_points() -> list[Path]:
    files = []
    for path in sorted((ROOT / "examples").rglob("*")):
        if path.suffix not in RUNNABLE or "__pycache__" in path.parts:
            continue
        # modules imported by an example (custom_modules/, registration modules) run through it
        if any(part in ("custom_modules",) for part in path.parts) or path.name == "__init__.py":
            continue
        files.append(path)
    return files


def test_every_example_is_referenced_by_a_test():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    missing = []
    for example in _example_entry_points():
        relative = example.relative_to(ROOT / "examples").as_posix()
        if relative not in sources and example.name not in sources:
            missing.append(relative)
    assert not missing, f"examples not exercised by any test: {missing}"
