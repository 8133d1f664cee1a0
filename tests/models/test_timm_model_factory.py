"""TimmModelFactory: timm classifiers returning ModelOutput."""

from __future__ import annotations

import pytest
import timm
import torch

from terratorch.models import TimmModelFactory
from terratorch.models.prithvi_model_factory import PretrainedWeightsNotFoundError
from terratorch.registry import MODEL_FACTORY_REGISTRY, InvalidModelError


@pytest.fixture
def factory() -> TimmModelFactory:
    return MODEL_FACTORY_REGISTRY.build("TimmModelFactory")


def test_classifier_output_and_kwargs(factory):
    model = factory.build_model(
        "classification", "resnet18", num_classes=7, bands=["a", "b", "c", "d"], backbone_drop_rate=0.2
    )
    assert model.timm_model.conv1.in_channels == 4
    assert model.timm_model.drop_rate == 0.2
    assert model(torch.randn(2, 4, 32, 32)).output.shape == (2, 7)


def test_timm_prefix_and_local_weights(factory, tmp_path):
    torch.manual_seed(0)
    state = timm.create_model("resnet18", num_classes=5).state_dict()
    path = tmp_path / "w.pth"
    torch.save(state, path)
    model = factory.build_model(
        "classification",
        "timm_resnet18",
        num_classes=5,
        pretrained=True,
        backbone_kwargs={"pretrained_cfg_overlay": {"file": str(path)}},
    )
    # the body comes from the file; timm re-initialises the classifier when num_classes differs from its cfg
    torch.testing.assert_close(model.timm_model.layer4[0].conv1.weight, state["layer4.0.conv1.weight"])


def test_freeze(factory):
    model = factory.build_model("classification", "resnet18", num_classes=3)
    model.freeze_encoder()
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "timm_model.fc.weight",
        "timm_model.fc.bias",
    ]
    model.freeze_head()
    assert not any(p.requires_grad for p in model.parameters())


def test_bad_input(factory, tmp_path):
    with pytest.raises(InvalidModelError, match=r"'resnet18x'.*resnet18"):
        factory.build_model("classification", "resnet18x", num_classes=2)
    with pytest.raises(ValueError, match="task must be 'classification'"):
        factory.build_model("segmentation", "resnet18", num_classes=2)
    with pytest.raises(ValueError, match=r"Unused argument\(s\) \['decoder'\]"):
        factory.build_model("classification", "resnet18", num_classes=2, decoder="FCNDecoder")
    with pytest.raises(PretrainedWeightsNotFoundError, match="does not exist"):
        factory.build_model(
            "classification",
            "resnet18",
            num_classes=2,
            pretrained=True,
            backbone_pretrained_cfg_overlay={"file": str(tmp_path / "missing.pth")},
        )
