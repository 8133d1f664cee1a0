"""Golden fixtures of the Prithvi encoders and masked autoencoders, loaded through the weights path.

For each variant a full-size masked autoencoder is filled with :func:`golden_cases.fill_named`
and saved as a weights file in both published layouts: ``v2`` (``encoder.``/``decoder.`` keys, as
in the Prithvi EO 2.0 files) and ``v1`` (the same tensors with flat keys, as in
``Prithvi_EO_V1_100M.pt``). The encoder is then built with ``pretrained=True, ckpt_path=<file>``
and its features for a tiny seeded input are stored (one middle block and the last), with and
without date/location coordinates for the ``_tl`` variants. For a few variants the MAE forward
(seeded masking) is stored too. The helpers here import no ``terratorch``, so the golden test uses
the same cases and file writer with our implementation.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

VARIANTS = {
    # name: (input side, frames, coordinates encoded)
    "prithvi_eo_tiny": (32, 1, False),
    "prithvi_eo_v1_100": (32, 2, False),
    "prithvi_eo_v2_tiny_tl": (32, 1, True),
    "prithvi_eo_v2_100_tl": (32, 2, True),
    "prithvi_eo_v2_300": (32, 2, False),
    "prithvi_eo_v2_300_tl": (32, 2, True),
    "prithvi_eo_v2_600": (28, 2, False),
    "prithvi_eo_v2_600_tl": (28, 2, True),
}
LAYOUTS = ("v1", "v2")
MAE_CASES = ("prithvi_eo_tiny", "prithvi_eo_v2_300", "prithvi_eo_v2_100_tl")


def cases() -> list[dict[str, Any]]:
    """One entry per (variant, coordinates used) pair."""
    out = []
    for name, (side, frames, coords) in VARIANTS.items():
        for with_coords in (False, True) if coords else (False,):
            out.append(
                {
                    "case": f"{name}{'_coords' if with_coords else ''}",
                    "variant": name,
                    "num_frames": frames,
                    "input_shape": [1, 6, frames, side, side] if frames > 1 else [1, 6, side, side],
                    "coords": with_coords,
                }
            )
    return out


def coords_for(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed-free date (year, day of year) and location (lat, lon) inputs."""
    temporal = torch.tensor([[[2020.0, 100.0 + 60.0 * i] for i in range(frames)]])
    location = torch.tensor([[45.5, -122.25]])
    return temporal, location


def write_weight_files(mae: torch.nn.Module, folder: Path, stem: str) -> dict[str, Path]:
    """Fill ``mae`` by key name and save its state dict in both layouts; returns layout → file."""
    fill_named(mae, torch)
    state = mae.state_dict()
    files = {"v2": folder / f"{stem}_v2.pt", "v1": folder / f"{stem}_v1.pt"}
    torch.save(state, files["v2"])
    flat = {k.split(".", 1)[1]: v for k, v in state.items()}
    torch.save(flat, files["v1"])
    return files


def feature_indices(depth: int) -> list[int]:
    """The blocks whose outputs are stored: a middle one and the last."""
    return [depth // 2 - 1, depth - 1]


def write(out: Path) -> int:
    import gc
    import tempfile

    from safetensors.torch import save_file

    from terratorch.models.backbones.prithvi_vit import _create_prithvi

    # Importing the reference sets float32 matmul precision to "medium" process-wide (bf16 matmuls
    # on CPU); the fixtures are computed at full precision.
    torch.set_float32_matmul_precision("highest")

    manifest: dict[str, Any] = {"cases": {}, "mae": {}, "layouts": {}}
    tensors: dict[str, torch.Tensor] = {}
    by_variant: dict[str, list[dict[str, Any]]] = {}
    for case in cases():
        by_variant.setdefault(case["variant"], []).append(case)
    with tempfile.TemporaryDirectory() as tmp:
        for variant, variant_cases in by_variant.items():
            frames = variant_cases[0]["num_frames"]
            with torch.device("meta"):  # the writer needs only the layout: fill_named sets every tensor
                mae = _create_prithvi(variant, encoder_only=False, num_frames=frames)
            mae = mae.to_empty(device="cpu")
            files = write_weight_files(mae, Path(tmp), variant)
            manifest["layouts"][variant] = {
                "mae_state_dict": {k: list(v.shape) for k, v in mae.state_dict().items()},
            }
            del mae
            gc.collect()
            for layout in LAYOUTS:
                torch.manual_seed(0)
                enc = _create_prithvi(
                    variant, pretrained=True, ckpt_path=str(files[layout]), num_frames=frames
                )
                enc.eval()
                if layout == "v2":
                    manifest["layouts"][variant]["encoder_state_dict"] = {
                        k: list(v.shape) for k, v in enc.state_dict().items()
                    }
                    manifest["layouts"][variant]["out_channels"] = list(enc.out_channels)
                keep = feature_indices(len(enc.blocks))
                for case in variant_cases:
                    x = make_input(torch, tuple(case["input_shape"]))
                    temporal, location = coords_for(frames) if case["coords"] else (None, None)
                    with torch.no_grad():
                        feats = enc(x, temporal_coords=temporal, location_coords=location)
                        maps = enc.prepare_features_for_image_model([feats[-1]])
                    for i in keep:
                        tensors[f"{case['case']}.{layout}.block{i}"] = feats[i].contiguous()
                    tensors[f"{case['case']}.{layout}.map_last"] = maps[0].contiguous()
                    manifest["cases"][case["case"]] = {**case, "blocks": keep, "n_features": len(feats)}
                del enc
                gc.collect()
                if variant in MAE_CASES:
                    torch.manual_seed(0)
                    mae = _create_prithvi(
                        variant,
                        encoder_only=False,
                        pretrained=True,
                        ckpt_path=str(files[layout]),
                        num_frames=frames,
                    )
                    mae.eval()
                    case = variant_cases[-1]
                    x = make_input(torch, tuple(case["input_shape"]))
                    temporal, location = coords_for(frames) if case["coords"] else (None, None)
                    torch.manual_seed(1)
                    with torch.no_grad():
                        loss, pred, mask = mae(x, temporal, location)
                    key = f"mae.{variant}.{layout}"
                    tensors[f"{key}.loss"] = loss["loss"].reshape(1)
                    tensors[f"{key}.pred"] = pred.contiguous()
                    tensors[f"{key}.mask"] = mask.contiguous()
                    manifest["mae"][variant] = {"case": case["case"], "loss_keys": sorted(loss)}
                    del mae
            for path in files.values():
                path.unlink()
    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest["cases"])
