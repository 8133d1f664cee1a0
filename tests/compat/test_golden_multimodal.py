"""Our GenericMultiModalDataModule against the reference's first batches (``tests/compat/golden/multimodal``).

Same files (written by ``golden_multimodal.write_dataset``), same arguments: the batch keys, shapes,
dtypes, file names and normalised tensors must match.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from golden_multimodal import CASES, datamodule_kwargs, first_batches, summarize, write_dataset
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, load_manifest

MANIFEST = load_manifest("multimodal")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(GOLDEN / "multimodal" / "batches.safetensors"))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("multimodal_golden")
    write_dataset(path)
    return path


@pytest.mark.parametrize("case", sorted(MANIFEST))
def test_first_batches_match_reference(case: str, root: Path, expected: dict[str, torch.Tensor]) -> None:
    from terratorch.datamodules import GenericMultiModalDataModule

    assert MANIFEST[case]["kwargs"] == CASES[case], (
        "golden_multimodal.CASES changed since the fixtures were written; "
        "rerun make_golden.py --only multimodal"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = first_batches(GenericMultiModalDataModule(**datamodule_kwargs(case, root)))
    for split, batch in batches.items():
        layout, tensors = summarize(batch, f"{case}/{split}")
        assert layout == MANIFEST[case][split], f"{case} {split}: batch layout differs"
        for key, ours in tensors.items():
            torch.testing.assert_close(ours, expected[key], rtol=1e-6, atol=1e-6, msg=f"{key} differs")
