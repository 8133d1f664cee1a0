"""The model-layer examples of the user documentation, run as written (imports added where omitted)."""

from __future__ import annotations

import pytest
import torch

from terratorch.registry import MODEL_FACTORY_REGISTRY


def test_basic_backbone_registration_and_builds(restore_registries):
    from torch import nn

    from terratorch.registry import BACKBONE_REGISTRY, TERRATORCH_BACKBONE_REGISTRY

    # make sure this is in the import path for terratorch
    @TERRATORCH_BACKBONE_REGISTRY.register
    class BasicBackbone(nn.Module):
        def __init__(self, out_channels=64):
            super().__init__()
            self.flatten = nn.Flatten()
            self.layer = nn.Linear(224 * 224, out_channels)
            self.out_channels = [out_channels]

        def forward(self, x):
            return [self.layer(self.flatten(x))]

    built = BACKBONE_REGISTRY.build("BasicBackbone", out_channels=64)
    assert repr(built) == (
        "BasicBackbone(\n"
        "  (flatten): Flatten(start_dim=1, end_dim=-1)\n"
        "  (layer): Linear(in_features=50176, out_features=64, bias=True)\n"
        ")"
    )

    @TERRATORCH_BACKBONE_REGISTRY.register
    def basic_backbone_128():
        return BasicBackbone(out_channels=128)

    built = BACKBONE_REGISTRY.build("basic_backbone_128")
    assert repr(built) == (
        "BasicBackbone(\n"
        "  (flatten): Flatten(start_dim=1, end_dim=-1)\n"
        "  (layer): Linear(in_features=50176, out_features=128, bias=True)\n"
        ")"
    )
    assert built(torch.randn(2, 1, 224, 224))[0].shape == (2, 128)


@pytest.mark.filterwarnings("ignore:.*is now replaced")
def test_smp_model_factory_example(restore_registries):
    import segmentation_models_pytorch as smp
    from torch import nn

    from terratorch.models.model import Model, ModelFactory, ModelOutput, register_factory

    @register_factory
    class SMPModelFactory(ModelFactory):
        def build_model(
            self,
            task: str,
            backbone: str | nn.Module,
            decoder: str | nn.Module,
            in_channels: int,
            **kwargs,
        ) -> Model:
            model = smp.Unet(
                encoder_name="resnet34", encoder_weights=None, in_channels=in_channels, classes=1
            )
            return SMPModelWrapper(model)

    class SMPModelWrapper(Model, nn.Module):
        def __init__(self, smp_model) -> None:
            super().__init__()
            self.smp_model = smp_model

        def forward(self, *args, **kwargs):
            return ModelOutput(self.smp_model(*args, **kwargs).squeeze(1))

        def freeze_encoder(self):
            pass

        def freeze_decoder(self):
            pass

    factory = MODEL_FACTORY_REGISTRY.build("SMPModelFactory")
    assert type(factory) is SMPModelFactory
    model = factory.build_model(task="regression", backbone="resnet34", decoder="Unet", in_channels=3)
    out = model(torch.randn(1, 3, 64, 64))
    assert isinstance(out, ModelOutput) and out.output.shape == (1, 64, 64)


def test_builtin_smp_factory_is_back_after_the_example():
    from terratorch.models.smp_model_factory import SMPModelFactory

    assert MODEL_FACTORY_REGISTRY["SMPModelFactory"] is SMPModelFactory


def test_registered_decoder_receives_the_channel_list_first(restore_registries, pyramid_backbone):
    from torch import nn

    from terratorch.models import EncoderDecoderFactory
    from terratorch.registry import TERRATORCH_DECODER_REGISTRY

    received = {}

    @TERRATORCH_DECODER_REGISTRY.register
    class LastMapDecoder(nn.Module):
        def __init__(self, channel_list, width=6):
            super().__init__()
            received["channel_list"] = channel_list
            self.proj = nn.Conv2d(channel_list[-1], width, 1)
            self.out_channels = width

        def forward(self, features):
            return self.proj(features[-1])

    model = EncoderDecoderFactory().build_model(
        "segmentation", pyramid_backbone, "LastMapDecoder", num_classes=2, decoder_width=5
    )
    assert received["channel_list"] == [8, 16, 24, 32]
    assert model.decoder.out_channels == 5
    assert model(torch.randn(1, 4, 64, 64)).output.shape == (1, 2, 64, 64)
