"""EncoderDecoderFactory and the models it assembles (PixelWiseModel, ScalarOutputModel)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from terratorch.models import EncoderDecoderFactory, PixelWiseModel, ScalarOutputModel
from terratorch.models.model import AuxiliaryHead, ModelOutput
from terratorch.models.temporal_wrapper import TemporalWrapper
from terratorch.registry import DECODER_REGISTRY, MODEL_FACTORY_REGISTRY, InvalidModelError


@pytest.fixture
def factory() -> EncoderDecoderFactory:
    return EncoderDecoderFactory()


def _dropouts(module: nn.Module) -> list[float]:
    return [m.p for m in module.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]


class PerPixel(nn.Module):
    """A 1x1-conv "backbone": every output pixel depends only on the same input pixel."""

    def __init__(self, in_chans: int = 4, patch_size: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chans, 6, 1)
        self.out_channels = [6]
        self.patch_size = patch_size

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.conv(x)]


class Recorder(nn.Module):
    """A backbone remembering the keyword arguments it was called with."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 5, 1)
        self.out_channels = [5]
        self.seen: dict = {}

    def forward(self, x: Tensor, temporal_coords: Tensor | None = None) -> list[Tensor]:
        self.seen = {"temporal_coords": temporal_coords}
        return [self.conv(x)]


class OpenRecorder(Recorder):
    def forward(self, x: Tensor, **kwargs) -> list[Tensor]:  # type: ignore[override]
        self.seen = dict(kwargs)
        return [self.conv(x)]


# -- registration and model types --------------------------------------------------------------
def test_registered_and_importable():
    assert isinstance(MODEL_FACTORY_REGISTRY.build("EncoderDecoderFactory"), EncoderDecoderFactory)
    from terratorch.models.encoder_decoder_factory import EncoderDecoderFactory as Direct

    assert Direct is EncoderDecoderFactory


@pytest.mark.parametrize(
    ("task", "model_type", "shape"),
    [
        ("segmentation", PixelWiseModel, (2, 3, 64, 64)),
        ("regression", PixelWiseModel, (2, 64, 64)),
        ("classification", ScalarOutputModel, (2, 3)),
        ("scalar_regression", ScalarOutputModel, (2, 3)),  # num_classes outputs, not squeezed
    ],
)
def test_heads_by_task(factory, pyramid_backbone, task, model_type, shape):
    model = factory.build_model(task, pyramid_backbone, "UperNetDecoder", num_classes=3, decoder_channels=8)
    assert isinstance(model, model_type)
    out = model(torch.randn(2, 4, 64, 64))
    assert isinstance(out, ModelOutput) and out.auxiliary_heads == {}  # the reference returns {}
    assert out.output.shape == shape


# -- kwargs routing ----------------------------------------------------------------------------
def test_prefix_routing_reaches_each_part(factory):
    model = factory.build_model(
        "segmentation",
        "resnet18",
        "FCNDecoder",
        num_classes=2,
        backbone_in_chans=5,
        backbone_pretrained=False,
        backbone_out_indices=(1, 2),
        decoder_channels=12,
        decoder_num_convs=1,
        head_dropout=0.25,
    )
    assert model.encoder.model.conv1.in_channels == 5
    assert model.encoder.out_channels == [64, 128]
    assert model.decoder.out_channels == 12
    assert _dropouts(model.head) == [0.25]
    assert model(torch.randn(1, 5, 40, 40)).output.shape == (1, 2, 40, 40)


def test_explicit_kwargs_dicts_merge_with_prefixed(factory, pyramid_backbone):
    model = factory.build_model(
        "segmentation",
        pyramid_backbone,
        "FCNDecoder",
        num_classes=2,
        decoder_kwargs={"channels": 10},
        decoder_num_convs=1,
        head_kwargs={"dropout": 0.1},
    )
    assert model.decoder.out_channels == 10 and _dropouts(model.head) == [0.1]
    with pytest.raises(ValueError, match=r"'decoder_channels'\] given both"):
        factory.build_model(
            "segmentation",
            pyramid_backbone,
            "FCNDecoder",
            num_classes=2,
            decoder_kwargs={"channels": 10},
            decoder_channels=12,
        )


def test_unused_kwarg_is_named(factory, pyramid_backbone):
    with pytest.raises(
        ValueError, match=r"Unused argument\(s\) 'learning_rate'.*'backbone_', 'decoder_', 'head_'"
    ):
        factory.build_model("segmentation", pyramid_backbone, "FCNDecoder", num_classes=2, learning_rate=0.1)


def test_misspelled_prefix_suggests_the_right_one(factory, pyramid_backbone):
    with pytest.raises(ValueError, match=r"'decodr_channels' \(did you mean 'decoder_channels'\?\)"):
        factory.build_model("segmentation", pyramid_backbone, "FCNDecoder", num_classes=2, decodr_channels=8)


def test_backbone_kwargs_with_an_instance_are_rejected(factory, pyramid_backbone):
    with pytest.raises(ValueError, match=r"already built PyramidBackbone.*\['in_chans'\]"):
        factory.build_model(
            "segmentation", pyramid_backbone, "FCNDecoder", num_classes=2, backbone_in_chans=3
        )


# -- bad input ---------------------------------------------------------------------------------
def test_unknown_task_lists_valid_ones(factory, pyramid_backbone):
    with pytest.raises(
        ValueError, match=r"Unknown task 'segmentaton'.*'regression'.*Did you mean 'segmentation'"
    ):
        factory.build_model("segmentaton", pyramid_backbone, "FCNDecoder", num_classes=2)


def test_num_classes_required(factory, pyramid_backbone):
    with pytest.raises(ValueError, match="needs num_classes"):
        factory.build_model("classification", pyramid_backbone, "IdentityDecoder")


def test_unknown_backbone_name(factory):
    with pytest.raises(InvalidModelError, match=r"Unknown name 'resnet18x'.*resnet18"):
        factory.build_model("segmentation", "resnet18x", "FCNDecoder", num_classes=2)


def test_unknown_decoder_name(factory, pyramid_backbone):
    with pytest.raises(
        InvalidModelError, match=r"Unknown name 'UperNetDecodr'.*Did you mean.*'UperNetDecoder'"
    ):
        factory.build_model("segmentation", pyramid_backbone, "UperNetDecodr", num_classes=2)


def test_unknown_neck_name(factory, pyramid_backbone):
    with pytest.raises(InvalidModelError, match=r"'SelectIndex'.*SelectIndices"):
        factory.build_model(
            "segmentation",
            pyramid_backbone,
            "FCNDecoder",
            num_classes=2,
            necks=[{"name": "SelectIndex", "indices": [0]}],
        )


def test_unknown_factory_name():
    with pytest.raises(InvalidModelError, match=r"'EncoderDecoderFactroy'.*'EncoderDecoderFactory'"):
        MODEL_FACTORY_REGISTRY.build("EncoderDecoderFactroy")


def test_backbone_without_channel_information(factory):
    with pytest.raises(TypeError, match=r"out_channels.*feature_info"):
        factory.build_model("segmentation", nn.ReLU(), "FCNDecoder", num_classes=2)


def test_neck_with_wrong_number_of_features(factory, pyramid_backbone):
    with pytest.raises(ValueError, match=r"indices \[7\] are invalid for 4 feature maps"):
        factory.build_model(
            "segmentation",
            pyramid_backbone,
            "FCNDecoder",
            num_classes=2,
            necks=[{"name": "SelectIndices", "indices": [7]}],
        )
    with pytest.raises(ValueError, match=r"exactly 4 feature maps.*has 2"):
        factory.build_model(
            "segmentation",
            pyramid_backbone,
            "FCNDecoder",
            num_classes=2,
            necks=[{"name": "SelectIndices", "indices": [0, 1]}, {"name": "LearnedInterpolateToPyramidal"}],
        )


def test_decoder_instance_for_other_channels(factory, pyramid_backbone):
    decoder = DECODER_REGISTRY.build("FCNDecoder", [8, 16, 24, 64], channels=8, num_convs=1)
    with pytest.raises(ValueError, match=r"built for 64 input channels.*produces \[8, 16, 24, 32\]"):
        factory.build_model("segmentation", pyramid_backbone, decoder, num_classes=2)
    smp_decoder = DECODER_REGISTRY.build("smp_Unet", [8, 16, 24], decoder_channels=[16, 8])
    with pytest.raises(ValueError, match=r"built for channel list \[8, 16, 24\]"):
        factory.build_model("segmentation", pyramid_backbone, smp_decoder, num_classes=2)


def test_backbone_lying_about_its_channels(factory, backbone_classes):
    backbone = backbone_classes["pyramid"]()
    backbone.out_channels = [8, 16, 24, 40]  # forward really returns 32 channels last
    model = factory.build_model("segmentation", backbone, "IdentityDecoder", num_classes=2)
    with pytest.raises(ValueError, match=r"channels \[8, 16, 24, 40\].*channels \[8, 16, 24, 32\]"):
        model(torch.randn(1, 4, 64, 64))


def test_decoder_instance_without_out_channels(factory, pyramid_backbone):
    with pytest.raises(TypeError, match="must expose `out_channels`"):
        factory.build_model("segmentation", pyramid_backbone, nn.Identity(), num_classes=2)


# -- decoders, necks, aux heads ----------------------------------------------------------------
def test_decoder_instance_is_used_as_is(factory, pyramid_backbone):
    decoder = DECODER_REGISTRY.build("IdentityDecoder", [8, 16, 24, 32])
    model = factory.build_model("segmentation", pyramid_backbone, decoder, num_classes=2)
    assert model.decoder is decoder


def test_necks_change_the_decoder_channel_list(factory, token_backbone):
    model = factory.build_model(
        "segmentation",
        token_backbone,
        "UperNetDecoder",
        num_classes=2,
        decoder_channels=8,
        necks=[{"name": "ReshapeTokensToImage"}, {"name": "LearnedInterpolateToPyramidal"}],
    )
    assert model.decoder.embed_dim == [4, 8, 16, 16]
    assert model.patch_size == 8  # inputs are padded to twice the patch size
    assert model(torch.randn(2, 4, 40, 40)).output.shape == (2, 2, 40, 40)  # padded to a 6 x 6 grid


def test_aux_heads_use_their_own_head_args(factory, pyramid_backbone):
    aux = [
        AuxiliaryHead("fcn", "FCNDecoder", {"channels": 8, "num_convs": 1, "head_dropout": 0.3}),
        {"name": "plain", "decoder": "IdentityDecoder", "decoder_args": None},
    ]
    model = factory.build_model(
        "segmentation",
        pyramid_backbone,
        "UperNetDecoder",
        num_classes=4,
        decoder_channels=8,
        head_dropout=0.1,
        aux_decoders=aux,
    )
    assert _dropouts(model.head) == [0.1]
    assert _dropouts(model.aux_heads["fcn"]) == [0.3]
    assert _dropouts(model.aux_heads["plain"]) == [0.1]  # like the reference: the main head's args
    out = model(torch.randn(2, 4, 50, 50))
    assert set(out.auxiliary_heads) == {"fcn", "plain"}
    assert all(t.shape == (2, 4, 50, 50) for t in out.auxiliary_heads.values())


def test_aux_head_names_must_be_unique(factory, pyramid_backbone):
    aux = [AuxiliaryHead("a", "IdentityDecoder"), AuxiliaryHead("a", "FCNDecoder")]
    with pytest.raises(ValueError, match="Two auxiliary decoders are named 'a'"):
        factory.build_model(
            "segmentation", pyramid_backbone, "IdentityDecoder", num_classes=2, aux_decoders=aux
        )


# -- padding, cropping, rescale ----------------------------------------------------------------
def test_padding_then_crop_keeps_pixels_aligned(factory):
    torch.manual_seed(0)
    model = factory.build_model("segmentation", PerPixel(), "IdentityDecoder", num_classes=3).eval()
    big = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        full = model(big).output
        part = model(big[..., :50, :37]).output  # padded to 64 x 48, then cropped back
    assert part.shape == (1, 3, 50, 37)
    torch.testing.assert_close(part, full[..., :50, :37])


def test_rescale_false_keeps_decoder_resolution(factory, pyramid_backbone):
    model = factory.build_model(
        "segmentation", pyramid_backbone, "IdentityDecoder", num_classes=2, rescale=False
    )
    assert model(torch.randn(1, 4, 64, 64)).output.shape == (1, 2, 2, 2)
    rescaled = factory.build_model("regression", pyramid_backbone, "IdentityDecoder", rescale=True)
    assert rescaled(torch.randn(1, 4, 64, 64)).output.shape == (1, 64, 64)


# -- batch kwargs, prepare_features ------------------------------------------------------------
def test_extra_batch_keys_only_reach_a_forward_that_accepts_them(factory):
    coords = torch.zeros(1, 2)
    closed = Recorder()
    model = factory.build_model("segmentation", closed, "IdentityDecoder", num_classes=2)
    model(torch.randn(1, 4, 8, 8), temporal_coords=coords, location_coords=coords)
    assert closed.seen == {"temporal_coords": coords}
    opened = OpenRecorder()
    model = factory.build_model("segmentation", opened, "IdentityDecoder", num_classes=2)
    model(torch.randn(1, 4, 8, 8), temporal_coords=coords, location_coords=coords)
    assert set(opened.seen) == {"temporal_coords", "location_coords"}


def _tokens_to_maps(features: list[Tensor]) -> list[Tensor]:
    out = []
    for tokens in features:
        grid = tokens[:, 1:]
        side = int(grid.shape[1] ** 0.5)
        out.append(grid.transpose(1, 2).reshape(grid.shape[0], grid.shape[2], side, side))
    return out


def test_prepare_features_as_argument(factory, token_backbone):
    model = factory.build_model(
        "segmentation",
        token_backbone,
        "FCNDecoder",
        num_classes=2,
        decoder_channels=8,
        decoder_num_convs=1,
        prepare_features_for_image_model=_tokens_to_maps,
    )
    assert model(torch.randn(1, 4, 32, 32)).output.shape == (1, 2, 32, 32)


def test_prepare_features_as_backbone_method(factory, token_backbone):
    token_backbone.prepare_features_for_image_model = _tokens_to_maps
    model = factory.build_model("segmentation", token_backbone, "IdentityDecoder", num_classes=2)
    assert model(torch.randn(1, 4, 32, 32)).output.shape == (1, 2, 32, 32)


# -- temporal wrapper through the factory -------------------------------------------------------
def test_backbone_use_temporal(factory, pyramid_backbone):
    model = factory.build_model(
        "segmentation",
        pyramid_backbone,
        "UperNetDecoder",
        num_classes=2,
        decoder_channels=8,
        backbone_use_temporal=True,
        backbone_temporal_pooling="concat",
        backbone_temporal_n_timestamps=3,
    )
    assert isinstance(model.encoder, TemporalWrapper)
    assert model.decoder.embed_dim == [24, 48, 72, 96]
    assert model(torch.randn(2, 4, 3, 40, 40)).output.shape == (2, 2, 40, 40)


def test_temporal_options_without_use_temporal(factory, pyramid_backbone):
    with pytest.raises(
        ValueError, match=r"backbone_temporal_pooling.*only apply with backbone_use_temporal=True"
    ):
        factory.build_model(
            "segmentation",
            pyramid_backbone,
            "IdentityDecoder",
            num_classes=2,
            backbone_temporal_pooling="max",
        )


# -- freezing ----------------------------------------------------------------------------------
def _trainable(module: nn.Module) -> set[bool]:
    return {p.requires_grad for p in module.parameters()}


def test_freeze_encoder_decoder_head(factory, token_backbone):
    model = factory.build_model(
        "segmentation",
        token_backbone,
        "UperNetDecoder",
        num_classes=2,
        decoder_channels=8,
        necks=[{"name": "ReshapeTokensToImage"}, {"name": "LearnedInterpolateToPyramidal"}],
    )
    model.freeze_encoder()
    assert _trainable(model.encoder) == {False}
    assert _trainable(model.decoder) == {True} and _trainable(model.head) == {True}
    model.freeze_decoder()
    assert _trainable(model.decoder) == {False}
    assert _trainable(model.neck) == {True}  # as in the reference, necks stay trainable
    assert _trainable(model.head) == {True}
    model.freeze_head()
    assert _trainable(model.head) == {False}


def test_gradients_flow_end_to_end(factory, pyramid_backbone):
    model = factory.build_model(
        "classification", pyramid_backbone, "FCNDecoder", num_classes=3, decoder_channels=8
    )
    model(torch.randn(2, 4, 32, 32)).output.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_class_path_spec_backbone(factory):
    spec = {"class_path": "torch.nn.Identity"}
    with pytest.raises(TypeError, match="Cannot tell the channels of backbone Identity"):
        factory.build_model("segmentation", spec, "IdentityDecoder", num_classes=2)


def test_string_backbone_patch_size_padding(factory):
    model = factory.build_model(
        "regression",
        "vit_tiny_patch16_224",
        "IdentityDecoder",
        backbone_pretrained=False,
        backbone_img_size=32,
        backbone_depth=2,
        backbone_dynamic_img_size=True,
        backbone_out_indices=[1],
    )
    assert model.patch_size == (16, 16)
    assert model(torch.randn(1, 3, 40, 20)).output.shape == (1, 40, 20)


def test_temporal_model_with_batch_keys(factory, pyramid_backbone):
    model = factory.build_model(
        "segmentation", pyramid_backbone, "IdentityDecoder", num_classes=2, backbone_use_temporal=True
    )
    out = model(torch.randn(1, 4, 2, 32, 32), temporal_coords=torch.zeros(1, 2, 2))
    assert out.output.shape == (1, 2, 32, 32)


def test_pretrained_timm_backbone_never_downloads(factory, empty_caches):
    from terratorch.models.backbone_adapter import PretrainedWeightsNotFoundError

    with pytest.raises(PretrainedWeightsNotFoundError, match=r"'resnet18'.*pass pretrained=False"):
        factory.build_model(
            "segmentation", "timm_resnet18", "FCNDecoder", num_classes=2, backbone_pretrained=True
        )


def test_models_can_be_built_directly(pyramid_backbone):
    decoder = DECODER_REGISTRY.build("IdentityDecoder", [8, 16, 24, 32])
    model = PixelWiseModel("segmentation", pyramid_backbone, decoder, {"num_classes": 2}, 32, "constant")
    assert model.patch_size == 32 and model.padding == "constant"
    assert model(torch.randn(1, 4, 40, 40)).output.shape == (1, 2, 40, 40)
    scalar = ScalarOutputModel("classification", pyramid_backbone, decoder, {"num_classes": 3})
    assert scalar.patch_size is None and scalar.padding == "reflect"  # the reference's defaults
    assert scalar(torch.randn(1, 4, 40, 40)).output.shape == (1, 3)
    with pytest.raises(
        ValueError, match=r"PixelWiseModel task must be one of \['segmentation', 'regression'\]"
    ):
        PixelWiseModel("classification", pyramid_backbone, decoder, {"num_classes": 2})
    with pytest.raises(ValueError, match=r"ScalarOutputModel task must be one of \['classification'"):
        ScalarOutputModel("segmentation", pyramid_backbone, decoder, {"num_classes": 2})


def test_inputs_are_padded_evenly_to_twice_the_patch_and_cropped_back(factory, token_backbone):
    model = factory.build_model(
        "segmentation",
        token_backbone,
        "UperNetDecoder",
        num_classes=2,
        decoder_channels=8,
        necks=[{"name": "ReshapeTokensToImage"}, {"name": "MaxpoolToPyramidal"}],
    )
    assert model.patch_size == 8 and model.padding == "reflect"
    assert model(torch.randn(2, 4, 60, 60)).output.shape == (2, 2, 60, 60)  # padded 2 + 2 to 64


def test_backbone_padding_and_patch_size_kwargs_set_the_padding():
    from terratorch.models.utils import center_crop, pad_images

    x = torch.arange(2 * 10 * 10, dtype=torch.float32).reshape(1, 2, 10, 10)
    padded = pad_images(x, 4, "constant")
    assert padded.shape == (1, 2, 16, 16)
    assert torch.equal(padded[..., 3:13, 3:13], x)  # 3 before, 3 after
    assert torch.equal(center_crop(padded, (10, 10)), x)
    assert pad_images(x, [1, 5, 5], "reflect").shape == (1, 2, 10, 10)


def test_non_square_token_grid_is_inferred_from_the_input(token_backbone):
    """Tokens of a 40x72 image (5x9 patches) reshape correctly without h/w in the neck config."""
    model = EncoderDecoderFactory().build_model(
        task="segmentation",
        backbone=token_backbone,
        decoder="UperNetDecoder",
        num_classes=3,
        necks=[
            {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
            {"name": "ReshapeTokensToImage"},
            {"name": "LearnedInterpolateToPyramidal"},
        ],
    )
    model.eval()
    out = model(torch.randn(2, 4, 40, 72)).output
    assert out.shape == (2, 3, 40, 72)
    out = model(torch.randn(1, 4, 72, 40)).output  # the grid follows each input
    assert out.shape == (1, 3, 72, 40)


class _HeadedDecoder(nn.Module):
    """A decoder instance that already ends in the class projection."""

    includes_head = True

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.out_channels = num_classes
        self.conv = nn.Conv2d(in_channels, num_classes, 1)

    def forward(self, features):
        return self.conv(features[-1])


def test_decoder_instance_that_includes_its_head_gets_no_head(factory, pyramid_backbone):
    model = factory.build_model("segmentation", pyramid_backbone, _HeadedDecoder(32, 5), num_classes=5)
    assert isinstance(model.head, nn.Identity)
    assert model(torch.randn(1, 4, 64, 64)).output.shape == (1, 5, 64, 64)
    scalar = factory.build_model("classification", pyramid_backbone, _HeadedDecoder(32, 4), num_classes=4)
    assert isinstance(scalar.head, nn.Identity) and scalar(torch.randn(2, 4, 64, 64)).output.shape == (2, 4)
    with pytest.raises(ValueError, match="already includes its head"):
        factory.build_model(
            "segmentation", pyramid_backbone, _HeadedDecoder(32, 5), num_classes=5, head_dropout=0.1
        )


def test_linear_decoder_gets_a_head_like_in_the_reference(factory, pyramid_backbone):
    model = factory.build_model(
        "segmentation", pyramid_backbone, "LinearDecoder", num_classes=3, decoder_upsampling_size=32
    )
    assert sorted(k for k in model.state_dict() if k.startswith("head.")) == [
        "head.head.2.bias",
        "head.head.2.weight",
    ]
    assert model(torch.randn(1, 4, 64, 64)).output.shape == (1, 3, 64, 64)


def test_unused_and_unprefixed_kwargs_are_errors(factory, pyramid_backbone):
    with pytest.raises(ValueError, match="Unused argument"):
        factory.build_model("segmentation", pyramid_backbone, "IdentityDecoder", num_classes=2, channels=3)
    with pytest.raises(NotImplementedError, match="Unknown task"):
        factory.build_model("detection", pyramid_backbone, "IdentityDecoder", num_classes=2)
    with pytest.raises(ValueError, match="only one of num_classes and num_outputs"):
        factory.build_model("segmentation", pyramid_backbone, "IdentityDecoder", num_classes=2, num_outputs=2)


def test_num_outputs_for_regression_and_image_size_out(factory, pyramid_backbone):
    model = factory.build_model(
        "regression", pyramid_backbone, "IdentityDecoder", num_outputs=2, image_size_out=(48, 40)
    )
    assert model(torch.randn(1, 4, 64, 64)).output.shape == (1, 2, 48, 40)  # centre crop
