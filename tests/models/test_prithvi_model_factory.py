"""PrithviModelFactory: string backbones through the registries, instances with FeatureInfo, weights."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import FeatureInfo
from torch import Tensor, nn

from terratorch.models import PrithviModelFactory
from terratorch.models.prithvi_model_factory import PretrainedWeightsNotFoundError
from terratorch.registry import MODEL_FACTORY_REGISTRY

BANDS3 = ["RED", "GREEN", "BLUE"]
BANDS6 = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]


@pytest.fixture
def factory() -> PrithviModelFactory:
    return MODEL_FACTORY_REGISTRY.build("PrithviModelFactory")


@pytest.fixture
def resnet18_weights(tmp_path):
    """A resnet18 state dict saved to a local file, and the state dict itself."""
    torch.manual_seed(3)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    path = tmp_path / "resnet18_weights.pth"
    torch.save(state, path)
    return path, state


def test_local_weights_through_pretrained_cfg_overlay(factory, resnet18_weights):
    path, state = resnet18_weights
    model = factory.build_model(
        "segmentation",
        "resnet18",
        "FCNDecoder",
        bands=BANDS3,
        num_classes=2,
        pretrained=True,
        backbone_pretrained_cfg_overlay={"file": str(path)},
        decoder_channels=8,
        decoder_num_convs=1,
    )
    loaded = model.encoder.model
    torch.testing.assert_close(loaded.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(loaded.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert model(torch.randn(1, 3, 64, 64)).output.shape == (1, 2, 64, 64)


def test_in_channels_defaults_to_bands_and_adapts_weights(factory, resnet18_weights):
    path, state = resnet18_weights
    model = factory.build_model(
        "regression",
        "resnet18",
        "IdentityDecoder",
        bands=BANDS6,
        pretrained=True,
        backbone_pretrained_cfg_overlay={"file": str(path)},
    )
    conv1 = model.encoder.model.conv1
    assert conv1.in_channels == 6
    # timm repeats the RGB kernels over the new bands (scaled): the weights came from the file
    assert not torch.allclose(conv1.weight[:, :3], torch.zeros_like(conv1.weight[:, :3]))
    torch.testing.assert_close(model.encoder.model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert model(torch.randn(2, 6, 64, 64)).output.shape == (2, 64, 64)


def test_explicit_in_channels_wins(factory):
    model = factory.build_model(
        "classification",
        "resnet18",
        "IdentityDecoder",
        bands=BANDS6,
        in_channels=4,
        num_classes=3,
        pretrained=False,
    )
    assert model.encoder.model.conv1.in_channels == 4
    assert model(torch.randn(2, 4, 32, 32)).output.shape == (2, 3)


def test_pretrained_without_local_weights_is_a_clear_error(factory, empty_caches):
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"'resnet18'.*pass pretrained=False"):
        factory.build_model("segmentation", "resnet18", "FCNDecoder", bands=BANDS3, num_classes=2)


def test_pretrained_uses_the_local_hugging_face_cache(factory, empty_caches):
    torch.manual_seed(4)
    state = timm.create_model("resnet18", pretrained=False).state_dict()
    repo = empty_caches / "models--timm--resnet18.a1_in1k"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("rev0")
    (repo / "snapshots" / "rev0").mkdir(parents=True)
    from safetensors.torch import save_file

    save_file(state, str(repo / "snapshots" / "rev0" / "model.safetensors"))
    model = factory.build_model("regression", "resnet18", "IdentityDecoder", bands=BANDS3, pretrained=True)
    torch.testing.assert_close(model.encoder.model.conv1.weight, state["conv1.weight"])


def test_missing_overlay_file_names_the_path(factory, tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(PretrainedWeightsNotFoundError, match=r"nope\.pth.*does not exist"):
        factory.build_model(
            "segmentation",
            "resnet18",
            "FCNDecoder",
            bands=BANDS3,
            num_classes=2,
            backbone_pretrained_cfg_overlay={"file": str(missing)},
        )


# -- nn.Module backbones as described in "Benchmarking a new backbone" ----------------------------
class NHWCBackbone(nn.Module):
    """Returns NHWC stage outputs; declares channels only through a timm FeatureInfo."""

    def __init__(self, in_chans: int = 6) -> None:
        super().__init__()
        info, stages, previous = [], [], in_chans
        for i, width in enumerate((8, 16, 16, 24)):
            stages.append(nn.Conv2d(previous, width, 4 if i == 0 else 2, stride=4 if i == 0 else 2))
            info.append({"num_chs": width, "reduction": 1, "module": f"stages.{i}"})  # dummy reductions
            previous = width
        self.stages = nn.ModuleList(stages)
        self.feature_info = FeatureInfo(info, out_indices=(0, 1, 2, 3))

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x.permute(0, 2, 3, 1))
        return out


def _nhwc_to_nchw(features: list[Tensor]) -> list[Tensor]:
    return [f.permute(0, 3, 1, 2).contiguous() for f in features]


def test_module_backbone_with_prepare_argument(factory):
    model = factory.build_model(
        "segmentation",
        NHWCBackbone(),
        "UperNetDecoder",
        bands=BANDS6,
        num_classes=4,
        prepare_features_for_image_model=_nhwc_to_nchw,
        decoder_channels=8,
    )
    assert model.decoder.embed_dim == [8, 16, 16, 24]
    assert model(torch.randn(2, 6, 64, 64)).output.shape == (2, 4, 64, 64)


def test_module_backbone_with_prepare_method(factory):
    class WithMethod(NHWCBackbone):
        def prepare_features_for_image_model(self, features: list[Tensor]) -> list[Tensor]:
            return _nhwc_to_nchw(features)

    model = factory.build_model(
        "classification", WithMethod(), "IdentityDecoder", bands=BANDS6, num_classes=5
    )
    assert model(torch.randn(2, 6, 64, 64)).output.shape == (2, 5)


def test_module_backbone_feeding_the_wrong_layout_is_reported(factory):
    model = factory.build_model(
        "segmentation", NHWCBackbone(), "IdentityDecoder", bands=BANDS6, num_classes=2
    )
    with pytest.raises(ValueError, match=r"built for 4 features with channels \[8, 16, 16, 24\]"):
        model(torch.randn(1, 6, 64, 64))


def test_terratorch_backbone_gets_bands_and_num_frames(factory):
    model = factory.build_model(
        "segmentation",
        "prithvi_eo_tiny",
        "UperNetDecoder",
        bands=BANDS6,
        num_classes=2,
        pretrained=False,
        backbone_img_size=32,
        backbone_depth=2,
        decoder_channels=8,
        necks=[
            {"name": "SelectIndices", "indices": [0, 1, 1, 1]},
            {"name": "ReshapeTokensToImage"},  # with necks, the backbone's own reshaping is not applied
            {"name": "LearnedInterpolateToPyramidal"},
        ],
    )
    assert model(torch.randn(2, 6, 32, 32)).output.shape == (2, 2, 32, 32)


# -- bad input ----------------------------------------------------------------------------------
def test_bad_input(factory):
    with pytest.raises(ValueError, match="bands must list the input bands"):
        factory.build_model("segmentation", "resnet18", "FCNDecoder", bands=[], num_classes=2)
    with pytest.raises(ValueError, match=r"Unused argument\(s\) 'bakcbone_depth'"):
        factory.build_model(
            "segmentation",
            "resnet18",
            "FCNDecoder",
            bands=BANDS3,
            num_classes=2,
            pretrained=False,
            bakcbone_depth=2,
        )
    with pytest.raises(ValueError, match="Unknown task 'detection'"):
        factory.build_model("detection", "resnet18", "FCNDecoder", bands=BANDS3, num_classes=2)
