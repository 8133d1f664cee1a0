"""DOFA and Scale-MAE against torchgeo's layouts and the reference's features (loaded from checkpoints).

Layouts of the published sizes are compared on the meta device; features come from tiny
configurations whose checkpoints are regenerated in a temporary folder by ``fill_named`` on our own
networks; fixtures: ``tools/reference/golden_dofa_scalemae.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from golden_dofa_scalemae import (
    DOFA_CASES,
    DOFA_TINY,
    SCALEMAE_CASES,
    SCALEMAE_TINY_NAME,
    dofa_encoder,
    dofa_input,
    register_tiny_scalemae,
    scalemae_create_kwargs,
    scalemae_forward_kwargs,
    scalemae_input,
    shapes,
    write_dofa_checkpoint,
    write_scalemae_checkpoint,
)
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("dofa_scalemae")
DOFA_NAMES = [name for name in MANIFEST["torchgeo"] if name.startswith("dofa_")]


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "dofa_scalemae" / "features.safetensors"))


@pytest.fixture(autouse=True)
def _full_precision() -> Iterator[None]:
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(previous)


@pytest.fixture
def tiny_scalemae() -> Iterator[None]:
    from terratorch.models.backbones import scalemae

    register_tiny_scalemae(scalemae)
    yield
    scalemae.scalemae_model_registry.pop(SCALEMAE_TINY_NAME, None)


@pytest.mark.parametrize("name", DOFA_NAMES)
def test_dofa_layout_is_torchgeo_and_reference(name: str) -> None:
    from terratorch.registry import BACKBONE_REGISTRY

    with torch.device("meta"):
        encoder = BACKBONE_REGISTRY.build(name, model_bands=["RED"])
    diff = layout_diff(MANIFEST["reference"][name], shapes(encoder))
    assert not diff, f"{name} encoder layout: {diff}"
    diff = layout_diff(MANIFEST["torchgeo"][name], shapes(encoder.dofa_model))
    assert not diff, f"{name} network vs torchgeo: {diff}"


def test_scalemae_layouts_are_torchgeo_and_reference() -> None:
    from terratorch.models.backbones import scalemae
    from terratorch.registry import BACKBONE_REGISTRY

    with torch.device("meta"):
        for key, layout in MANIFEST["reference"].items():
            if key.startswith("scalemae."):
                diff = layout_diff(layout, shapes(scalemae.create_model(key.removeprefix("scalemae."))))
                assert not diff, f"{key}: {diff}"
        large = BACKBONE_REGISTRY.build("scalemae_large_patch16")
    torchgeo = {
        k: v for k, v in MANIFEST["torchgeo"]["scalemae_large_patch16"].items() if not k.startswith("head.")
    }
    diff = layout_diff(torchgeo, shapes(large))
    assert not diff, f"scalemae_large_patch16 vs torchgeo (without its classifier head): {diff}"


@pytest.mark.parametrize("name", list(DOFA_CASES))
def test_dofa_matches_reference(name: str, expected: dict[str, torch.Tensor], tmp_path: Path) -> None:
    from terratorch.models.backbones import dofa_vit

    case, ref = DOFA_CASES[name], MANIFEST["dofa"][name]
    path = tmp_path / f"{name}.pth"
    write_dofa_checkpoint(dofa_vit.DOFA(img_size=case["ckpt_img_size"], **DOFA_TINY), path)
    model = dofa_encoder(dofa_vit, dofa_vit.DOFA, case, str(path))
    diff = layout_diff(ref["state_dict"], shapes(model))
    assert not diff, f"{name} layout: {diff}"
    saved = torch.load(path, weights_only=True)
    loaded = model.dofa_model.state_dict()
    resized = case["ckpt_img_size"] != case["img_size"]
    for key, tensor in saved.items():
        if not (resized and key == "pos_embed"):
            assert torch.equal(loaded[key], tensor), f"{name}: {key} was not loaded from the checkpoint"
    assert list(model.out_channels) == ref["out_channels"]
    assert model.wavelengths == pytest.approx(ref["wavelengths"])
    with torch.no_grad():
        feats = model(dofa_input(case))
    assert len(feats) == ref["num_features"]
    report = {}
    for i, tensor in enumerate(feats):
        want = expected[f"dofa.{name}.{i}"]
        assert tensor.shape == want.shape, f"{name}[{i}]: {tuple(tensor.shape)} != {tuple(want.shape)}"
        report[i] = (tensor - want).abs().max().item()
    assert max(report.values()) <= ATOL, f"{name}: max |ours - reference| per feature: {report}"


@pytest.mark.parametrize("name", list(SCALEMAE_CASES))
@pytest.mark.usefixtures("tiny_scalemae")
def test_scalemae_matches_reference(name: str, expected: dict[str, torch.Tensor], tmp_path: Path) -> None:
    from terratorch.models.backbones import scalemae

    case, ref = SCALEMAE_CASES[name], MANIFEST["scalemae"][name]
    path = tmp_path / f"{name}.pth"
    write_scalemae_checkpoint(scalemae.create_model(SCALEMAE_TINY_NAME), path)
    model = scalemae.create_model(SCALEMAE_TINY_NAME, **scalemae_create_kwargs(case, str(path))).eval()
    diff = layout_diff(ref["state_dict"], shapes(model))
    assert not diff, f"{name} layout: {diff}"
    assert list(model.out_channels) == ref["out_channels"]
    assert not model.pos_embed.requires_grad
    with torch.no_grad():
        feats = model(scalemae_input(case), **scalemae_forward_kwargs(case))
    assert len(feats) == ref["num_features"]
    report = {}
    for i, tensor in enumerate(feats):
        want = expected[f"scalemae.{name}.{i}"]
        assert tensor.shape == want.shape, f"{name}[{i}]: {tuple(tensor.shape)} != {tuple(want.shape)}"
        report[i] = (tensor - want).abs().max().item()
    assert max(report.values()) <= ATOL, f"{name}: max |ours - reference| per feature: {report}"
