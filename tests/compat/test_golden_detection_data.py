"""Detection datamodules against the reference: the first batch of each on the same tiny files.

The generic per-image JSON layout, m-VHR10 (padding, centre crop, instance masks, ImageNet
normalisation) and Substation in detection mode must give the reference's keys, boxes, labels,
mask sums and normalised image statistics. Fixtures: ``tools/reference/golden_detection_data.py``.
"""

from __future__ import annotations

import importlib

import pytest
from golden_detection_data import CASES, batch_facts, case_kwargs, write_layouts
from tests.compat.conftest import load_manifest

MANIFEST = load_manifest("detection_data")
MODULES = {
    "GenericNonGeoObjectDetectionDataModule": "terratorch.datamodules.generic_nongeo_od_data_module",
    "mVHR10DataModule": "terratorch.datamodules.m_VHR10",
    "SubstationDataModule": "terratorch.datamodules.substation",
}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("detection_layouts")
    write_layouts(root)
    return root


@pytest.mark.parametrize("name", sorted(CASES))
def test_first_batch_matches_the_reference(layouts, name):
    case = CASES[name]
    cls = getattr(importlib.import_module(MODULES[case["class"]]), case["class"])
    datamodule = cls(**case_kwargs(name, layouts))
    datamodule.setup(case["stage"])
    batch = next(iter(getattr(datamodule, f"{case['loader']}_dataloader")()))
    ours = batch_facts(datamodule.on_after_batch_transfer(batch, 0))
    expected = MANIFEST["cases"][name]
    for key in ("keys", "image_shape", "image_dtype", "boxes", "boxes_dtype", "labels", "labels_dtype"):
        assert ours[key] == expected[key], key
    assert ours["image_mean"] == pytest.approx(expected["image_mean"], abs=1e-3)
    assert ours["image_std"] == pytest.approx(expected["image_std"], abs=1e-3)
    assert ours.get("masks") == expected.get("masks")
