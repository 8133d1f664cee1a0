"""Our named datasets give the reference's samples on the same tiny files (``golden_named_datasets.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from golden_named_datasets import CASES, SIGNATURES, data_writers, samples, signatures
from tests.compat.conftest import GOLDEN, load_manifest

MANIFEST = load_manifest("named_datasets")
#: MultiTemporalCropClassification/FireScars locations: the reference reprojects a one-pixel raster.
LOCATION_ATOL = 1e-3


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "named_datasets" / "samples.safetensors"))


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("named_golden")
    return {name: writer(base / name) for name, writer in data_writers().items()}


@pytest.mark.parametrize("name", list(CASES))
def test_samples_match_reference(name: str, expected, roots) -> None:
    case = CASES[name]
    ours = samples(case, roots[case["writer"]])
    assert sorted(ours) == sorted(MANIFEST["cases"][name]), f"{name}: sample keys differ"
    for key, value in ours.items():
        ref = expected[f"{name}/{key}"]
        assert value.dtype == ref.dtype and value.shape == ref.shape, (
            f"{name}/{key}: {value.dtype} {value.shape}"
        )
        if key.endswith("location_coords"):
            torch.testing.assert_close(value, ref, atol=LOCATION_ATOL, rtol=0)
        else:
            torch.testing.assert_close(value, ref, atol=0, rtol=0, equal_nan=True, msg=f"{name}/{key}")


#: Sen4MapLucasDataModule: the reference's ``**kwargs`` options are explicit parameters here (appended).
SEN4MAP_EXTRA = {
    "train_hdf5_keys_save_path",
    "test_hdf5_keys_save_path",
    "val_hdf5_keys_save_path",
    "shuffle",
    "train_shuffle",
    "val_shuffle",
    "test_shuffle",
    "train_data_fraction",
    "val_data_fraction",
    "test_data_fraction",
    "all_hdf5_data_path",
    "resize",
    "resize_to",
    "resize_interpolation",
    "resize_antialiasing",
    "crop_size",
    "dataset_bands",
    "input_bands",
    "reverse_tile",
    "reverse_tile_size",
    "classification_map",
}


@pytest.mark.parametrize("name", [name for _, name in SIGNATURES])
def test_constructor_signatures_match_reference(name: str) -> None:
    ours = dict(signatures()[name])
    ref = MANIFEST["signatures"][name]
    ours_order = [
        p for p, _ in signatures()[name] if not (name == "Sen4MapLucasDataModule" and p in SEN4MAP_EXTRA)
    ]
    assert ours_order == [p for p, _ in ref], f"{name}: parameter names/order differ"
    for parameter, default in ref:
        assert ours[parameter] == default, (
            f"{name}.{parameter}: ours {ours[parameter]!r}, reference {default!r}"
        )
