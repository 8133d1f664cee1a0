"""FullModelFactory: whole models from FULL_MODEL_REGISTRY (or instances) returning ModelOutput."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from terratorch.models import FullModelFactory
from terratorch.models.model import ModelOutput
from terratorch.registry import MODEL_FACTORY_REGISTRY, TERRATORCH_FULL_MODEL_REGISTRY, InvalidModelError


class TinyAutoencoder(nn.Module):
    """Returns (loss, reconstruction, mask) like the masked autoencoders."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(channels, 4, 1)
        self.decoder = nn.Conv2d(4, channels, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        reconstruction = self.decoder(self.encoder(x))
        return (reconstruction - x).pow(2).mean(), reconstruction, torch.ones_like(x[:, 0])


@pytest.fixture
def factory() -> FullModelFactory:
    return MODEL_FACTORY_REGISTRY.build("FullModelFactory")


@pytest.fixture
def registered(restore_registries):
    TERRATORCH_FULL_MODEL_REGISTRY.register(TinyAutoencoder)


def test_builds_registered_model_with_kwargs(factory, registered):
    model = factory.build_model("TinyAutoencoder", channels=5, task="reconstruction")
    out = model(torch.randn(2, 5, 8, 8))
    assert isinstance(out, ModelOutput)
    loss, reconstruction, mask = out.output
    assert loss.ndim == 0 and reconstruction.shape == (2, 5, 8, 8) and mask.shape == (2, 8, 8)


def test_instance_and_tensor_outputs(factory):
    model = factory.build_model(nn.Conv2d(3, 2, 1), task="segmentation")
    assert model(torch.randn(1, 3, 4, 4)).output.shape == (1, 2, 4, 4)


def test_freeze_uses_encoder_and_decoder(factory, registered):
    model = factory.build_model("TinyAutoencoder", task="reconstruction")
    model.freeze_encoder()
    assert not any(p.requires_grad for p in model.model.encoder.parameters())
    assert all(p.requires_grad for p in model.model.decoder.parameters())
    model.freeze_decoder()
    assert not any(p.requires_grad for p in model.parameters())
    model.freeze_head()  # no head and no freeze_head: nothing to do, no error


def test_bad_input(factory, registered):
    with pytest.raises(InvalidModelError, match=r"'TinyAutoencodr'.*'TinyAutoencoder'"):
        factory.build_model("TinyAutoencodr", task="reconstruction")
    with pytest.raises(ValueError, match=r"already built Conv2d; arguments \['channels'\]"):
        factory.build_model(nn.Conv2d(3, 2, 1), channels=3, task="segmentation")
    with pytest.raises(TypeError, match=r"FULL_MODEL_REGISTRY name or an nn\.Module"):
        factory.build_model(42, task="segmentation")
