"""Importing the data packages stays cheap: no rasterio, Lightning or albumentations until used."""

from __future__ import annotations

import subprocess
import sys


def test_package_imports_are_lazy():
    code = (
        "import sys, terratorch.datasets, terratorch.datamodules\n"
        "heavy = [m for m in ('rasterio', 'lightning', 'albumentations', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "from terratorch.datasets import HLSBands\n"
        "from terratorch.datamodules import GenericNonGeoSegmentationDataModule\n"
        "from terratorch.datamodules import GenericNonGeoClassificationDataModule\n"
        "late = [m for m in ('rasterio', 'albumentations') if m in sys.modules]\n"
        "assert not late, late  # the classes (e.g. for fit --help) load neither\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_lazy_names_resolve():
    import terratorch.datamodules as datamodules
    import terratorch.datasets as datasets

    for name in datasets._LAZY:
        assert getattr(datasets, name) is not None
    for name in datamodules._LAZY:
        assert getattr(datamodules, name) is not None
    assert "make_demo_dataset" in dir(datasets)
