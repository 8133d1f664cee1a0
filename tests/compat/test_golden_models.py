"""The model matrix: our state-dict layout and eval outputs equal the reference's, case by case."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from golden_cases import encoder_decoder_cases, fill_named
from safetensors.torch import load_file
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

CASES = {case["name"]: case for case in encoder_decoder_cases()}
ATOL = 1e-4


def build_ours(kwargs: dict[str, Any]) -> torch.nn.Module:
    from terratorch.models import EncoderDecoderFactory
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(kwargs)
    if "aux_decoders" in kwargs:
        kwargs["aux_decoders"] = [AuxiliaryHead(**a) for a in kwargs["aux_decoders"]]
    return EncoderDecoderFactory().build_model(**kwargs)


def test_manifest_covers_every_case():
    assert sorted(load_manifest("models")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_dict_layout_matches_reference(name):
    golden = load_manifest("models")[name]
    model = build_ours(CASES[name]["kwargs"])
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    diff = layout_diff(golden["state_dict"], ours)
    assert not diff, f"{name}: {diff}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_weights_load_strictly_and_outputs_match(name):
    golden = load_manifest("models")[name]
    tensors = load_file(str(GOLDEN / "models" / f"{name}.safetensors"))
    model = build_ours(CASES[name]["kwargs"])
    # the reference's weights for this case: the same named values, built from its layout alone
    ours_sd = model.state_dict()
    state = {}
    for key in golden["state_dict"]:
        like = ours_sd.get(key)
        state[key] = torch.zeros(golden["state_dict"][key], dtype=like.dtype if like is not None else None)
    fill_named_dict(state)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        result = model(tensors["input"])
    assert result.output.shape == tensors["output"].shape
    torch.testing.assert_close(result.output, tensors["output"], atol=ATOL, rtol=0)
    aux = {k[4:]: v for k, v in tensors.items() if k.startswith("aux.")}
    got = result.auxiliary_heads or {}
    assert sorted(got) == sorted(aux)
    for key, expected in aux.items():
        torch.testing.assert_close(got[key], expected, atol=ATOL, rtol=0)


def fill_named_dict(state: dict[str, torch.Tensor]) -> None:
    """``fill_named`` over a plain dict of tensors (keys as the reference names them)."""

    class _Holder(torch.nn.Module):
        def state_dict(self, *args, keep_vars=False, **kwargs):  # type: ignore[override]
            return state

    fill_named(_Holder(), torch)


def test_fill_named_is_a_function_of_key_and_shape():
    a = {"decoder.conv.weight": torch.zeros(2, 3)}
    b = {"decoder.conv.weight": torch.ones(2, 3)}
    fill_named_dict(a)
    fill_named_dict(b)
    torch.testing.assert_close(a["decoder.conv.weight"], b["decoder.conv.weight"])
    assert a["decoder.conv.weight"].abs().sum() > 0
