"""TerraMind v1 LULC/NDVI tokenizers against the reference: layouts, token ids and decoded maps.

Both sides fill the tokenizer with ``fill_named`` and encode the same seeded inputs; token ids must
be equal, latents and the LULC reconstruction within 1e-4. Fixtures:
``tools/reference/golden_terramind_tokenizer.py``.
"""

from __future__ import annotations

import gc

import pytest
import torch
from golden_cases import fill_named
from golden_terramind_tokenizer import TOKENIZERS, inputs_for, rounding_margin, run_cases
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("terramind_tokenizer")
#: Reference keys we do not build: the NDVI tokenizer's diffusion (UNet) decoder.
NOT_SHIPPED = {"terramind_v1_tokenizer_ndvi": "decoder."}


def _build(name: str) -> torch.nn.Module:
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    return TERRATORCH_FULL_MODEL_REGISTRY.build(name)


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "terramind_tokenizer" / "encode.safetensors"))


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenizer_layout_matches_reference(name: str) -> None:
    with torch.device("meta"):
        model = _build(name)
    reference = MANIFEST["layouts"][name]
    skipped = NOT_SHIPPED.get(name)
    if skipped:
        assert any(k.startswith(skipped) for k in reference)
        reference = {k: v for k, v in reference.items() if not k.startswith(skipped)}
    diff = layout_diff(reference, {k: list(v.shape) for k, v in model.state_dict().items()})
    assert not diff, f"{name}: {diff}"


@pytest.mark.parametrize("name", TOKENIZERS)
def test_tokenizer_encode_matches_reference(name: str, expected: dict[str, torch.Tensor]) -> None:
    torch.set_float32_matmul_precision("highest")
    model = _build(name)  # on the CPU: the quantizer's level tables are non-persistent buffers
    fill_named(model, torch)
    info = MANIFEST["encode"][name]
    with torch.no_grad():
        _, loss, tokens = model.encode(next(iter(inputs_for(name).values())))
    assert list(loss.shape) == info["loss_shape"]
    assert str(tokens.dtype) == info["token_dtype"]
    margin = min(rounding_margin(model, x) for x in inputs_for(name).values())
    assert margin > 1e-4, f"latents too close to an FSQ boundary for an exact comparison ({margin})"
    ours = run_cases(name, model)
    del model
    gc.collect()
    assert sorted(ours) == sorted(k for k in expected if k.startswith(name + "."))
    for key, value in ours.items():
        if key.endswith(".tokens"):
            assert torch.equal(value, expected[key]), key
        else:
            torch.testing.assert_close(value, expected[key], atol=ATOL, rtol=0, msg=key)
