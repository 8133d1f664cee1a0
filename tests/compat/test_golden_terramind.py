"""TerraMind encoders against the reference: state-dict layouts and features with the same weights.

The weights file is regenerated in a temporary folder from ``fill_named`` on our own six-modality
encoder in the published key layout, then loaded with ``ckpt_path=...`` for each case (one or two
modalities, each merge method, a missing modality, a band subset); fixtures:
``tools/reference/golden_terramind.py``.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
import torch
from golden_cases import fill_named
from golden_terramind import (
    ALL_MODALITIES,
    FEATURE_VARIANTS,
    FINETUNED,
    FINETUNED_INPUT,
    VARIANTS,
    cases,
    feature_indices,
    finetuned_kwargs,
    flatten,
    inputs_for,
    write_weight_file,
)
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("terramind")
# base (the slow one) on one modality and on two with each merge method; tiny on every case
BASE_CASES = {"case0", "case2", "case3", "case4", "case5", "case6"}


def _cases(variant: str) -> list[dict[str, Any]]:
    return [c for c in cases() if variant == "terramind_v1_tiny" or c["case"] in BASE_CASES]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "terramind" / "features.safetensors"))


def _build(variant: str, **kwargs: Any) -> torch.nn.Module:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    return TERRATORCH_BACKBONE_REGISTRY.build(variant, **kwargs)


@pytest.mark.parametrize("variant", VARIANTS)
def test_terramind_layout_matches_reference(variant: str) -> None:
    with torch.device("meta"):
        enc = _build(variant, modalities=ALL_MODALITIES, merge_method="concat")
    layout = MANIFEST["layouts"][variant]
    diff = layout_diff(layout["state_dict"], {k: list(v.shape) for k, v in enc.state_dict().items()})
    assert not diff, f"{variant}: {diff}"
    assert list(enc.out_channels) == layout["out_channels"]


@pytest.mark.parametrize("variant", FEATURE_VARIANTS)
def test_terramind_features_match_reference(
    variant: str, expected: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    with torch.device("meta"):  # the writer needs only the layout: fill_named sets every tensor
        enc = _build(variant, modalities=ALL_MODALITIES, merge_method="concat")
    enc = enc.to_empty(device="cpu")
    path = tmp_path / f"{variant}.pt"
    write_weight_file(enc, path)
    del enc
    gc.collect()
    worst: dict[str, float] = {}
    for case in _cases(variant):
        key = f"{variant}.{case['case']}"
        info = MANIFEST["cases"][key]
        kwargs = {"bands": case["bands"]} if "bands" in case else {}
        with pytest.warns(UserWarning, match="not used"):  # the decoder tensor of the file
            model = _build(
                variant,
                modalities=case["modalities"],
                merge_method=case["merge_method"],
                ckpt_path=str(path),
                **kwargs,
            ).eval()
        keep = feature_indices(len(model.encoder))
        with torch.no_grad():
            feats = model(inputs_for(case))
        assert len(feats) == info["n_features"]
        ours = flatten(key, feats, keep)
        reference = {k: v for k, v in expected.items() if k.startswith(key + ".")}
        assert sorted(ours) == sorted(reference), f"{key}: outputs differ in structure"
        for name, value in ours.items():
            assert value.shape == reference[name].shape, f"{name}: {tuple(value.shape)}"
            worst[key] = max(worst.get(key, 0.0), (value - reference[name]).abs().max().item())
        del model
    path.unlink()
    print(f"{variant}: max|diff| " + ", ".join(f"{k.split('.')[-1]}={v:.1e}" for k, v in worst.items()))
    assert all(v < ATOL for v in worst.values()), worst


@pytest.mark.parametrize("name", list(FINETUNED))
def test_terramind_finetuned_model_matches_reference(
    name: str, expected: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    """A reference segmentation model (same key layout) loads strictly into ours and predicts the same."""
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory

    model = EncoderDecoderFactory().build_model(**finetuned_kwargs(name))
    layout = {k: list(v.shape) for k, v in model.state_dict().items()}
    diff = layout_diff(MANIFEST["finetuned"][name], layout)
    assert not diff, f"{name}: {diff}"
    fill_named(model, torch)  # the values the reference's model had, key by key
    torch.save(model.state_dict(), tmp_path / "ft.pt")
    fresh = EncoderDecoderFactory().build_model(**finetuned_kwargs(name))
    fresh.load_state_dict(torch.load(tmp_path / "ft.pt", weights_only=True), strict=True)
    fresh.eval()
    with torch.no_grad():
        out = fresh(inputs_for(FINETUNED_INPUT)).output
    reference = expected[f"finetuned.{name}"]
    assert out.shape == reference.shape
    worst = (out - reference).abs().max().item()
    print(f"{name}: max|diff| {worst:.1e}")
    assert worst < ATOL
