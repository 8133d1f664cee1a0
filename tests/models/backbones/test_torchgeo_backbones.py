"""Backbones with torchgeo weights: shapes per family, band-aware loading of a local file, offline errors.

Weight files are written here in torchgeo's layout (the bare timm/torchvision model's state dict);
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from terratorch.models.backbones import torchgeo_weights
from terratorch.models.weights import BandMismatchError, PretrainedWeightsNotFoundError
from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

S2 = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@pytest.fixture(scope="module")
def s2_resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A 13-band Sentinel-2 ResNet-18 weights file in torchgeo's layout (no classifier, like SSL files)."""
    import timm

    torch.manual_seed(0)
    state = {k: v for k, v in timm.create_model("resnet18", in_chans=13).state_dict().items()}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    path = tmp_path_factory.mktemp("tg") / "resnet18_sentinel2_all_moco.pth"
    torch.save(state, path)
    return path, state


def test_every_reference_name_is_registered() -> None:
    from terratorch.models.backbones import torchgeo_resnet, torchgeo_swin_satlas, torchgeo_vit

    names = [
        *torchgeo_resnet.RESNET_VARIANTS,
        *torchgeo_vit.VIT_VARIANTS,
        *torchgeo_swin_satlas.SWIN_VARIANTS,
    ]
    assert len(names) == 65
    for name in names:
        assert name in TERRATORCH_BACKBONE_REGISTRY
    meta = TERRATORCH_BACKBONE_REGISTRY.metadata("satlas_swin_b_sentinel2_si_ms")
    assert meta == {
        "family": "torchgeo_swin_satlas",
        "arch": "swin_v2_b",
        "weights": "Swin_V2_B_Weights.SENTINEL2_SI_MS_SATLAS",
    }


@pytest.mark.parametrize(
    ("out_indices", "channels", "strides"),
    [
        (None, [512], [32]),
        ([0, 1, 2, 3, 4], [64, 64, 128, 256, 512], [2, 4, 8, 16, 32]),
        ([-2, 1], [64, 256], [4, 16]),
    ],
)
def test_resnet18_features(out_indices: list[int] | None, channels: list[int], strides: list[int]) -> None:
    model = BACKBONE_REGISTRY.build(
        "ssl4eos12_resnet18_sentinel2_all_moco", model_bands=["RED", "GREEN", "BLUE"], out_indices=out_indices
    ).eval()
    assert model.out_channels == channels
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 32, 32))
    assert isinstance(feats, list)
    assert [tuple(f.shape) for f in feats] == [(1, c, 32 // s, 32 // s) for c, s in zip(channels, strides)]


def test_vit_small_features_and_out_indices() -> None:
    name = "ssl4eos12_vit_small_patch16_224_sentinel2_all_dino"
    model = BACKBONE_REGISTRY.build(name, model_bands=S2[:4], img_size=32, depth=4)
    assert model.out_channels == [384] * 4  # every block by default, as TerraTorch 1.2
    feats = model(torch.randn(2, 4, 32, 32))
    assert len(feats) == 4 and feats[-1].shape == (2, 384, 2, 2)
    picked = BACKBONE_REGISTRY.build(name, model_bands=S2[:4], img_size=32, depth=4, out_indices=[1, -1])
    assert picked.out_indices == [1, 3] and picked.out_channels == [384, 384]
    assert len(picked(torch.randn(1, 4, 32, 32))) == 2


def test_swin_t_features_are_channels_last() -> None:
    model = BACKBONE_REGISTRY.build(
        "satlas_swin_t_sentinel2_si_ms",
        model_bands=["RED", "GREEN", "BLUE", "NIR_BROAD"],
        out_indices=[1, 3, 5, 7],
    ).eval()
    assert model.out_channels == [96, 192, 384, 768]
    with torch.no_grad():
        feats = model(torch.randn(1, 4, 64, 64))
    assert isinstance(feats, tuple)
    assert [tuple(f.shape) for f in feats] == [
        (1, 16, 16, 96),
        (1, 8, 8, 192),
        (1, 4, 4, 384),
        (1, 2, 2, 768),
    ]
    assert model.swin_model.features[0][0].in_channels == 4


def test_model_bands_subset_and_reorder_from_a_local_file(s2_resnet18_file, recwarn) -> None:
    path, state = s2_resnet18_file
    # TerraTorch names, the weights' own names and band enums all address the same channels
    from terratorch.datasets import HLSBands

    bands = ["SWIR_1", "B04", HLSBands.BLUE, "NIR_NARROW"]
    model = BACKBONE_REGISTRY.build(
        "ssl4eos12_resnet18_sentinel2_all_moco", model_bands=bands, pretrained=True, ckpt_data=str(path)
    )
    conv = model.resnet_model.conv1.weight
    assert conv.shape[1] == 4
    for j, band in enumerate(["B11", "B04", "B02", "B8A"]):
        torch.testing.assert_close(conv[:, j], state["conv1.weight"][:, S2.index(band)])
    torch.testing.assert_close(model.resnet_model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_new_bands_keep_fresh_weights_and_are_named(s2_resnet18_file) -> None:
    path, state = s2_resnet18_file
    with pytest.warns(UserWarning, match="EXTRA"):
        model = BACKBONE_REGISTRY.build(
            "ssl4eos12_resnet18_sentinel2_all_moco",
            model_bands=["RED", "EXTRA"],
            pretrained=True,
            ckpt_data=str(path),
        )
    conv = model.resnet_model.conv1.weight
    torch.testing.assert_close(conv[:, 0], state["conv1.weight"][:, S2.index("B04")])
    assert not any(torch.allclose(conv[:, 1], state["conv1.weight"][:, i]) for i in range(13))
    with pytest.raises(BandMismatchError, match="None of the model bands"):
        BACKBONE_REGISTRY.build(
            "ssl4eos12_resnet18_sentinel2_all_moco", model_bands=["X1"], pretrained=True, ckpt_data=str(path)
        )


def test_landsat_bands_follow_the_sensor() -> None:
    tm = torchgeo_weights.pretrained_bands("ResNet18_Weights.LANDSAT_TM_TOA_MOCO")
    assert tm[:4] == ["BLUE", "GREEN", "RED", "NIR_NARROW"]
    etm_sr = torchgeo_weights.pretrained_bands("ResNet18_Weights.LANDSAT_ETM_SR_MOCO")
    assert etm_sr == ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    oli = torchgeo_weights.pretrained_bands("ResNet18_Weights.LANDSAT_OLI_TIRS_TOA_MOCO")
    assert oli[:2] == ["COASTAL_AEROSOL", "BLUE"] and oli[-1] == "THERMAL_INFRARED_2"
    # fMoW publishes no band list: its three channels are RGB
    assert torchgeo_weights.pretrained_bands("ResNet50_Weights.FMOW_RGB_GASSL") == ["RED", "GREEN", "BLUE"]
    with pytest.raises(ValueError, match="SENTINEL2_ALL_MOCO"):
        torchgeo_weights.resolve_weights("ResNet18_Weights.SENTINEL2_ALL_MOC")


def test_offline_error_names_the_file_and_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        BACKBONE_REGISTRY.build(
            "seco_resnet18_sentinel2_rgb_seco", model_bands=["RED", "GREEN", "BLUE"], pretrained=True
        )
    message = str(info.value)
    file = "resnet18_sentinel2_rgb_seco-cefca942.pth"
    assert str(tmp_path / "hub" / "checkpoints" / file) in message
    assert "https://hf.co/torchgeo/" in message and file in message
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"missing\.pth"):
        BACKBONE_REGISTRY.build(
            "seco_resnet18_sentinel2_rgb_seco",
            model_bands=["RED"],
            pretrained=True,
            ckpt_data=str(tmp_path / "missing.pth"),
        )


def test_weights_found_in_the_torch_hub_cache(s2_resnet18_file, tmp_path: Path, monkeypatch) -> None:
    path, state = s2_resnet18_file
    from terratorch.models.backbones.torchgeo_weights import resolve_weights

    url = resolve_weights("ResNet18_Weights.SENTINEL2_ALL_MOCO").url
    cached = tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    model = BACKBONE_REGISTRY.build("ssl4eos12_resnet18_sentinel2_all_moco", model_bands=S2, pretrained=True)
    torch.testing.assert_close(model.resnet_model.conv1.weight, state["conv1.weight"])


def test_vit_checkpoint_of_another_grid_is_resampled(tmp_path: Path) -> None:
    import timm

    state = timm.create_model("vit_small_patch16_224", in_chans=13, depth=1).state_dict()
    path = tmp_path / "vit.pth"
    torch.save(state, path)
    model = BACKBONE_REGISTRY.build(
        "ssl4eos12_vit_small_patch16_224_sentinel2_all_moco",
        model_bands=["RED", "GREEN"],
        img_size=32,
        depth=1,
        pretrained=True,
        ckpt_data=str(path),
    )
    assert model.vit_model.pos_embed.shape == (1, 5, 384)
    torch.testing.assert_close(model.vit_model.cls_token, state["cls_token"])
