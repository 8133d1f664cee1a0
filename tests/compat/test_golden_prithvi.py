"""Prithvi encoders and MAEs against the reference's features, loaded through the weights path.

Weight files are regenerated in a temporary folder from ``fill_named`` on our own masked
autoencoder, in the v1 (flat) and v2 (``encoder.``/``decoder.``) layouts, then loaded with
``pretrained=True, ckpt_path=...``; fixtures: ``tools/reference/golden_prithvi.py``.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest
import torch
from golden_cases import make_input
from golden_prithvi import LAYOUTS, MAE_CASES, VARIANTS, coords_for, write_weight_files
from tests.compat.conftest import GOLDEN, layout_diff, load_manifest

ATOL = 1e-4
MANIFEST = load_manifest("prithvi")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(GOLDEN / "prithvi" / "features.safetensors"))


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != reference {tuple(b.shape)}"
    return (a - b).abs().max().item()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_prithvi_features_match_reference(
    variant: str, expected: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from terratorch.models.backbones.prithvi_vit import _create_prithvi

    layouts = MANIFEST["layouts"][variant]
    variant_cases = [c for c in MANIFEST["cases"].values() if c["variant"] == variant]
    frames = variant_cases[0]["num_frames"]
    # the writer only needs the layout: skip its random init (fill_named sets every tensor)
    with torch.device("meta"):
        mae = _create_prithvi(variant, encoder_only=False, num_frames=frames)
    mae = mae.to_empty(device="cpu")
    diff = layout_diff(layouts["mae_state_dict"], _shapes(mae))
    assert not diff, f"{variant} MAE layout: {diff}"
    files = write_weight_files(mae, tmp_path, variant)
    del mae
    gc.collect()
    report = {}
    for layout in LAYOUTS:
        enc = _create_prithvi(
            variant, pretrained=True, ckpt_path=str(files[layout]), num_frames=frames
        ).eval()
        diff = layout_diff(layouts["encoder_state_dict"], _shapes(enc))
        assert not diff, f"{variant} encoder layout: {diff}"
        assert list(enc.out_channels) == layouts["out_channels"]
        worst = 0.0
        for case in variant_cases:
            x = make_input(torch, tuple(case["input_shape"]))
            temporal, location = coords_for(frames) if case["coords"] else (None, None)
            with torch.no_grad():
                feats = enc(x, temporal_coords=temporal, location_coords=location)
                maps = enc.prepare_features_for_image_model([feats[-1]])
            assert len(feats) == case["n_features"]
            for i in case["blocks"]:
                worst = max(worst, _max_diff(feats[i], expected[f"{case['case']}.{layout}.block{i}"]))
            worst = max(worst, _max_diff(maps[0], expected[f"{case['case']}.{layout}.map_last"]))
        report[layout] = worst
        del enc
        gc.collect()
        if variant in MAE_CASES:
            _check_mae(variant, layout, frames, files[layout], expected)
    print(f"{variant}: max|diff| " + ", ".join(f"{k}={v:.2e}" for k, v in report.items()))
    for path in files.values():  # up to 0.9 GB per variant; pytest keeps the last runs' tmp folders
        path.unlink(missing_ok=True)
    assert all(v < ATOL for v in report.values()), f"{variant}: {report}"


def _check_mae(variant: str, layout: str, frames: int, path: Path, expected: dict[str, torch.Tensor]) -> None:
    from terratorch.models.backbones.prithvi_vit import _create_prithvi

    info = MANIFEST["mae"][variant]
    case = MANIFEST["cases"][info["case"]]
    mae = _create_prithvi(
        variant, encoder_only=False, pretrained=True, ckpt_path=str(path), num_frames=frames
    )
    mae.eval()
    x = make_input(torch, tuple(case["input_shape"]))
    temporal, location = coords_for(frames) if case["coords"] else (None, None)
    torch.manual_seed(1)
    with torch.no_grad():
        loss, pred, mask = mae(x, temporal, location)
    key = f"mae.{variant}.{layout}"
    assert sorted(loss) == info["loss_keys"]
    assert _max_diff(mask, expected[f"{key}.mask"]) == 0.0
    assert _max_diff(pred, expected[f"{key}.pred"]) < ATOL
    assert _max_diff(loss["loss"].reshape(1), expected[f"{key}.loss"]) < ATOL
