"""SMPModelFactory: whole segmentation_models_pytorch models as TerraTorch models."""

from __future__ import annotations

import pytest
import torch

from terratorch.models import SMPModelFactory
from terratorch.models.model import ModelOutput
from terratorch.registry import MODEL_FACTORY_REGISTRY, InvalidModelError


@pytest.fixture
def factory() -> SMPModelFactory:
    return MODEL_FACTORY_REGISTRY.build("SMPModelFactory")


def _small(**extra):
    """smp kwargs that keep a resnet18 U-Net tiny."""
    return {"smp_encoder_depth": 3, "smp_decoder_channels": [16, 8, 8], **extra}


def test_segmentation_shapes_and_padding(factory):
    model = factory.build_model(
        "segmentation", "resnet18", "Unet", bands=["B", "G", "R", "N"], num_classes=3, **_small()
    )
    assert model.smp_model.encoder.conv1.in_channels == 4  # in_channels defaults to len(bands)
    out = model(torch.randn(2, 4, 45, 50))  # not a multiple of the encoder stride: padded, cropped
    assert isinstance(out, ModelOutput) and out.auxiliary_heads is None
    assert out.output.shape == (2, 3, 45, 50)


def test_regression_squeezes_and_relu(factory):
    model = factory.build_model(
        "regression", "resnet18", "unet", in_channels=2, regression_relu=True, **_small()
    )
    out = model(torch.randn(2, 2, 32, 32)).output
    assert out.shape == (2, 32, 32)
    assert (out >= 0).all()


def test_aux_params_give_a_classification_output(factory):
    model = factory.build_model(
        "segmentation",
        "resnet18",
        "FPN",
        in_channels=3,
        num_classes=2,
        aux_classes=5,
        aux_dropout=0.1,
        smp_encoder_depth=5,
        smp_decoder_segmentation_channels=32,
    )
    out = model(torch.randn(2, 3, 64, 64))
    assert out.output.shape == (2, 2, 64, 64)
    assert out.auxiliary_heads["classification"].shape == (2, 5)


def test_freeze_parts(factory):
    model = factory.build_model("segmentation", "resnet18", "Unet", in_channels=3, num_classes=2, **_small())
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.smp_model.encoder.parameters())
    assert all(p.requires_grad for p in model.smp_model.decoder.parameters())
    model.freeze_decoder()
    assert not any(p.requires_grad for p in model.smp_model.decoder.parameters())
    model.freeze_head()
    assert not any(p.requires_grad for p in model.smp_model.segmentation_head.parameters())


def test_bad_input(factory):
    with pytest.raises(InvalidModelError, match=r"'Unett'.*'Unet'"):
        factory.build_model("segmentation", "resnet18", "Unett", in_channels=3)
    with pytest.raises(InvalidModelError, match=r"'resnet_18'.*resnet18.*tu-"):
        factory.build_model("segmentation", "resnet_18", "Unet", in_channels=3)
    with pytest.raises(ValueError, match=r"Unused argument\(s\) \['decoder_channels'\].*'smp_\*'"):
        factory.build_model("segmentation", "resnet18", "Unet", in_channels=3, decoder_channels=[8])
    with pytest.raises(ValueError, match=r"supports tasks \['segmentation', 'regression'\]"):
        factory.build_model("classification", "resnet18", "Unet", in_channels=3)
    with pytest.raises(ValueError, match="prepare_features_for_image_model cannot be applied"):
        factory.build_model(
            "segmentation", "resnet18", "Unet", in_channels=3, prepare_features_for_image_model=list
        )
