"""Import lightness (DESIGN.md budgets): heavy libraries load only where used."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("lightning", "timm", "segmentation_models_pytorch", "mlflow", "optuna", "ray", "rasterio")


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import terratorch",
        "import terratorch.registry",
        "import terratorch.models",
        "import terratorch.datasets",
        "import terratorch.datamodules",
        "import terratorch.tasks",
        "import terratorch.iterate",
    ],
)
def test_package_imports_no_heavy_library(statement):
    loaded = _loaded_after(statement)
    assert not loaded & set(HEAVY), f"{statement!r} imported {sorted(loaded & set(HEAVY))}"


def test_import_terratorch_does_not_import_torch():
    assert "torch" not in _loaded_after("import terratorch")


def test_cli_help_lists_subcommands_without_torch():
    code = (
        "import sys, contextlib, io\n"
        "from terratorch.__main__ import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    main(['--help'])\n"
        "assert 'torch' not in sys.modules, 'terratorch --help imported torch'\n"
        "print(buf.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for sub in ("fit", "validate", "test", "predict", "compute_statistics", "iterate"):
        assert sub in result.stdout


def test_unknown_subcommand_suggests():
    result = subprocess.run([sys.executable, "-m", "terratorch", "fitt"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "unknown subcommand 'fitt'" in result.stderr and "fit" in result.stderr
