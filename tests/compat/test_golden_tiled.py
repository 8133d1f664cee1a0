"""Our tiled inference against the reference's outputs (``tests/compat/golden/tiled``), to 1e-5."""

from __future__ import annotations

import warnings

import pytest
import torch
from golden_tiled import CASES, run
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, load_manifest

MANIFEST = load_manifest("tiled")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(GOLDEN / "tiled" / "outputs.safetensors"))


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_tiled_inference_matches_reference(name: str, expected: dict[str, torch.Tensor]) -> None:
    from terratorch.tasks.tiled_inference import TiledInferenceParameters, tiled_inference

    assert MANIFEST[name]["kwargs" if "kwargs" in CASES[name] else "parameters"] == CASES[name].get(
        "kwargs", CASES[name].get("parameters")
    ), "golden_tiled.CASES changed since the fixtures were written; rerun make_golden.py --only tiled"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = run(tiled_inference, TiledInferenceParameters, torch, CASES[name])
    reference = expected[name]
    assert tuple(ours.shape) == tuple(reference.shape)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_uncovered_pixels_raise_like_the_reference() -> None:
    """Crop 12, stride 8, delta 2 leaves rows no trimmed crop reaches; the reference raises too."""
    from terratorch.tasks.tiled_inference import tiled_inference

    x = torch.zeros(1, 1, 33, 29)
    with pytest.raises(RuntimeError, match="covered by no crop"):
        tiled_inference(lambda t: t, x, crop=12, stride=8, delta=2, padding="replicate")
