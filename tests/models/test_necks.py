"""Necks (terratorch.models.necks): shapes, channel bookkeeping, chaining and bad input."""

from __future__ import annotations

import pytest
import torch

from terratorch.models.necks import (
    AddBottleneckLayer,
    AggregateTokens,
    InterpolateToPyramidal,
    LearnedInterpolateToPyramidal,
    MaxpoolToPyramidal,
    Neck,
    NeckSequential,
    PermuteDims,
    ReshapeTokensToImage,
    SelectIndices,
    build_neck_list,
)
from terratorch.registry import NECK_REGISTRY, InvalidModelError

EMBED = 16


def tokens(count: int, grid: tuple[int, int], cls: bool = True, embed: int = EMBED, steps: int = 1):
    """``count`` fake ViT outputs ``(2, [1 +] steps*h*w, embed)``; token value encodes its position."""
    h, w = grid
    length = steps * h * w
    base = torch.arange(length, dtype=torch.float32).view(1, length, 1).expand(2, length, embed).clone()
    if cls:
        base = torch.cat([torch.full((2, 1, embed), -1.0), base], dim=1)
    return [base + 1000 * i for i in range(count)]


def maps(channels, size=8):
    return [torch.randn(2, c, size, size) for c in channels]


def run(necks, features):
    for neck in necks:
        features = neck(features)
    return features


# -- SelectIndices -----------------------------------------------------------------------------


def test_select_indices_positive_and_negative():
    features = maps([1, 2, 3, 4, 5])
    neck = SelectIndices([1, 2, 3, 4, 5], indices=[0, -1, 2])
    out = neck(features)
    assert [f.shape[1] for f in out] == [1, 5, 3]
    assert out[1] is features[4]
    assert neck.process_channel_list([1, 2, 3, 4, 5]) == [1, 5, 3]
    assert neck.out_channels == [1, 5, 3]


def test_channel_list_must_be_a_list_of_ints():
    with pytest.raises(TypeError, match=r"channel_list must be a list of ints.*got 768"):
        SelectIndices(768, indices=[0])


def test_select_indices_out_of_range_index_is_rejected():
    with pytest.raises(ValueError, match=r"indices \[0, 12\] are invalid for 12 feature maps.*-12\.\.11"):
        SelectIndices([8] * 12, indices=[0, 12])


def test_select_indices_wrong_number_of_features_says_got_and_needed():
    neck = SelectIndices([8] * 12, indices=[2, 7])
    with pytest.raises(ValueError, match=r"received 6 feature maps but selects indices \[2, 7\]"):
        neck(maps([8] * 6))


# -- PermuteDims -------------------------------------------------------------------------------


def test_permute_dims_nhwc_to_nchw():
    features = [torch.randn(2, 5, 6, 3)]
    out = PermuteDims([3], new_order=[0, 3, 1, 2])(features)
    assert out[0].shape == (2, 3, 5, 6)
    assert torch.equal(out[0][:, :, 1, 2], features[0][:, 1, 2, :])


def test_permute_dims_rejects_bad_order_and_rank():
    with pytest.raises(ValueError, match="not a permutation"):
        PermuteDims([3], new_order=[0, 1, 1])
    with pytest.raises(ValueError, match="has 3 dimensions"):
        PermuteDims([3], new_order=[0, 3, 1, 2])([torch.randn(2, 4, 3)])


# -- Interpolate / Maxpool pyramids -----------------------------------------------------------


def test_interpolate_to_pyramidal_scales_like_the_reference():
    # feature i of N is scaled by scale_factor ** (N - i): x16, x8, x4, x2 for 4 maps
    neck = InterpolateToPyramidal([4, 4, 4, 4])
    out = neck(maps([4, 4, 4, 4], size=2))
    assert [tuple(f.shape[-2:]) for f in out] == [(32, 32), (16, 16), (8, 8), (4, 4)]
    assert neck.process_channel_list([4, 4, 4, 4]) == [4, 4, 4, 4]


def test_interpolate_to_pyramidal_rejects_unknown_mode_with_suggestion():
    with pytest.raises(ValueError, match=r"unknown interpolation mode 'bilinar'.*Did you mean 'bilinear'"):
        InterpolateToPyramidal([4], mode="bilinar")


def test_maxpool_to_pyramidal_halves_each_level():
    features = maps([3, 3, 3, 3], size=16)
    out = MaxpoolToPyramidal([3, 3, 3, 3])(features)
    assert [tuple(f.shape[-2:]) for f in out] == [(16, 16), (8, 8), (4, 4), (2, 2)]
    assert torch.equal(out[3][:, :, 0, 0], features[3][:, :, :8, :8].amax(dim=(-2, -1)))


# -- ReshapeTokensToImage ----------------------------------------------------------------------


def test_reshape_tokens_square_grid_with_cls_token():
    out = ReshapeTokensToImage([EMBED])(tokens(1, (4, 4)))
    assert out[0].shape == (2, EMBED, 4, 4)
    # token k (after the cls token) lands at row k // 4, column k % 4
    assert out[0][0, 0, 2, 3].item() == 2 * 4 + 3


def test_reshape_tokens_square_grid_without_cls_token():
    out = ReshapeTokensToImage([EMBED], remove_cls_token=False)(tokens(1, (3, 3), cls=False))
    assert out[0].shape == (2, EMBED, 3, 3)
    assert out[0][1, 5, 2, 0].item() == 6


def test_reshape_tokens_non_square_from_h_w():
    out = ReshapeTokensToImage([EMBED], h=2, w=5)(tokens(1, (2, 5)))
    assert out[0].shape == (2, EMBED, 2, 5)
    assert out[0][0, 0, 1, 4].item() == 9


def test_reshape_tokens_non_square_from_one_side_image_size_or_grid_size():
    assert ReshapeTokensToImage([EMBED], w=5)(tokens(1, (2, 5)))[0].shape == (2, EMBED, 2, 5)
    neck = ReshapeTokensToImage([EMBED], image_size=(32, 80), patch_size=16)
    assert neck(tokens(1, (2, 5)))[0].shape == (2, EMBED, 2, 5)
    neck = ReshapeTokensToImage([EMBED])
    neck.grid_size = (5, 2)
    assert neck(tokens(1, (5, 2)))[0].shape == (2, EMBED, 5, 2)


def test_reshape_tokens_time_dimension_folds_into_channels():
    neck = ReshapeTokensToImage([EMBED * 3], effective_time_dim=3)
    out = neck(tokens(1, (2, 2), steps=3))
    # backbones already report embed * T channels, so the channel list is unchanged
    assert neck.process_channel_list([EMBED * 3]) == [EMBED * 3]
    assert out[0].shape == (2, EMBED * 3, 2, 2)
    # channel t * E + e holds time step t: token index t * 4 + position
    assert out[0][0, 2 * EMBED + 0, 1, 1].item() == 2 * 4 + 3
    assert out[0][0, 1 * EMBED + 5, 0, 1].item() == 1 * 4 + 1


def test_reshape_tokens_passes_4d_maps_through():
    features = maps([EMBED])
    assert ReshapeTokensToImage([EMBED])(features)[0] is features[0]


def test_reshape_tokens_non_square_without_grid_is_a_clear_error():
    with (
        pytest.warns(UserWarning, match="keeping the first token"),
        pytest.raises(
            ValueError, match=r"cannot lay 11 tokens.*pass h and w, or let the model pass image_size"
        ),
    ):
        ReshapeTokensToImage([EMBED])(tokens(1, (2, 5)))


def test_reshape_tokens_keeps_the_first_token_when_the_backbone_has_no_cls():
    neck = ReshapeTokensToImage([EMBED])
    with pytest.warns(UserWarning, match="Set remove_cls_token=False"):
        out = neck(tokens(1, (4, 4), cls=False))
    assert out[0].shape == (2, EMBED, 4, 4) and neck.remove_cls_token is False


def test_reshape_tokens_non_square_grid_from_the_image_size_the_model_passes():
    out = ReshapeTokensToImage([EMBED])(tokens(1, (2, 5)), image_size=(32, 80))
    assert out[0].shape == (2, EMBED, 2, 5)
    assert out[0][0, 0, 1, 0].item() == 5  # row-major token order


def test_reshape_tokens_grid_mismatch_and_embedding_mismatch():
    with pytest.raises(ValueError, match=r"cannot lay 10 tokens.*h=3, w=3"):
        ReshapeTokensToImage([EMBED], h=3, w=3)(tokens(1, (2, 5)))
    with pytest.raises(ValueError, match="image_size and patch_size must be given together"):
        ReshapeTokensToImage([EMBED], image_size=64)


# -- LearnedInterpolateToPyramidal / AddBottleneckLayer / AggregateTokens ---------------------


def test_learned_interpolate_makes_stride_4_to_32_pyramid():
    neck = LearnedInterpolateToPyramidal([16, 16, 16, 16])
    out = neck(maps([16] * 4, size=4))
    assert [tuple(f.shape) for f in out] == [(2, 4, 16, 16), (2, 8, 8, 8), (2, 16, 4, 4), (2, 16, 2, 2)]
    assert neck.out_channels == [4, 8, 16, 16]
    assert sorted({k.split(".")[0] for k in neck.state_dict()}) == ["fpn1", "fpn2"]  # the reference's layout


def test_learned_interpolate_needs_exactly_four_maps():
    with pytest.raises(ValueError, match="needs exactly 4 feature maps but channel_list has 3"):
        LearnedInterpolateToPyramidal([16, 16, 16])
    neck = LearnedInterpolateToPyramidal([16] * 4)
    with pytest.raises(ValueError, match="received 3 feature maps but needs 4"):
        neck(maps([16] * 3))


def test_add_bottleneck_layer_appends_a_halved_level():
    neck = AddBottleneckLayer([4, 8])
    features = maps([4, 8], size=8)
    out = neck(features)
    assert [tuple(f.shape) for f in out] == [(2, 4, 8, 8), (2, 8, 8, 8), (2, 4, 8, 8)]
    assert len(features) == 2  # the input list is not modified
    assert neck.process_channel_list([4, 8]) == [4, 8, 4]
    assert sorted(neck.state_dict()) == ["bottleneck.bias", "bottleneck.weight"]


@pytest.mark.parametrize("pooling", ["mean", "max"])
def test_aggregate_tokens_pools_sequences_and_maps(pooling):
    sequence = torch.randn(2, 5, EMBED)
    image = torch.randn(2, EMBED, 3, 3)
    out = AggregateTokens([EMBED, EMBED], pooling=pooling, indices=[0, 1])([sequence, image])
    reduce = (lambda x, d: x.amax(dim=d)) if pooling == "max" else (lambda x, d: x.mean(dim=d))
    assert torch.allclose(out[0], reduce(sequence, 1))
    assert torch.allclose(out[1], reduce(image, (2, 3)))


def test_aggregate_tokens_cls_and_remove_cls():
    sequence = torch.randn(2, 5, EMBED)
    assert torch.equal(AggregateTokens([EMBED], pooling="cls")([sequence])[0], sequence[:, 0])
    pooled = AggregateTokens([EMBED], remove_cls_token=True)([sequence])[0]
    assert torch.allclose(pooled, sequence[:, 1:].mean(dim=1))
    with pytest.raises(ValueError, match="pooling must be one of"):
        AggregateTokens([EMBED], pooling="median")


# -- registry and build_neck_list ---------------------------------------------------------------


def test_every_neck_is_registered_and_buildable_by_name():
    for name in [
        "SelectIndices",
        "PermuteDims",
        "InterpolateToPyramidal",
        "MaxpoolToPyramidal",
        "ReshapeTokensToImage",
        "LearnedInterpolateToPyramidal",
        "AddBottleneckLayer",
        "AggregateTokens",
    ]:
        assert name in NECK_REGISTRY
        assert issubclass(NECK_REGISTRY[name], Neck)
    neck = NECK_REGISTRY.build("SelectIndices", [1, 2, 3], indices=[-1])
    assert isinstance(neck, SelectIndices)


def test_unknown_neck_name_raises_invalid_model_error_with_suggestion():
    with pytest.raises(InvalidModelError, match=r"SelectIndice.*Did you mean.*'SelectIndices'"):
        build_neck_list([{"name": "SelectIndice", "indices": [0]}], [8])


@pytest.mark.parametrize(
    ("cls", "grid", "extra"),
    [
        (True, (4, 4), {}),
        (False, (4, 4), {"remove_cls_token": False}),
        (True, (2, 4), {"h": 2, "w": 4}),
        (False, (4, 2), {"remove_cls_token": False, "image_size": [64, 32], "patch_size": 16}),
    ],
)
def test_vit_recipe_select_reshape_learned_pyramid(cls, grid, extra):
    configs = [
        {"name": "SelectIndices", "indices": [1, 3, 5, 7]},
        {"name": "ReshapeTokensToImage", **extra},
        {"name": "LearnedInterpolateToPyramidal"},
    ]
    necks, channels = build_neck_list(configs, [EMBED] * 8)
    assert [type(n).__name__ for n in necks] == [c["name"] for c in configs]
    assert channels == [EMBED // 4, EMBED // 2, EMBED, EMBED]
    out = run(necks, tokens(8, grid, cls=cls))
    h, w = grid
    assert [tuple(f.shape) for f in out] == [
        (2, EMBED // 4, 4 * h, 4 * w),
        (2, EMBED // 2, 2 * h, 2 * w),
        (2, EMBED, h, w),
        (2, EMBED, h // 2, w // 2),
    ]
    assert [f.shape[1] for f in out] == channels


def test_build_neck_list_chains_channel_lists_and_accepts_instances():
    bottleneck = AddBottleneckLayer([24, 24])
    necks, channels = build_neck_list(
        [
            {"name": "SelectIndices", "indices": [0, 2]},
            {"name": "ReshapeTokensToImage", "effective_time_dim": 3},
            {"name": "SelectIndices", "indices": [0, 1]},
            bottleneck,
        ],
        [24, 16, 24],
    )
    assert channels == [24, 24, 12]
    assert necks[-1] is bottleneck
    assert build_neck_list(None, [3, 4]) == ([], [3, 4])


def test_build_neck_list_bad_configs():
    with pytest.raises(ValueError, match="must be a dict with a 'name' key"):
        build_neck_list([{"indices": [0]}], [8])
    with pytest.raises(TypeError, match=r"Neck config #1 \(SelectIndices\).*unexpected keyword"):
        build_neck_list(
            [{"name": "PermuteDims", "new_order": [0, 1]}, {"name": "SelectIndices", "index": 0}], [8]
        )


def test_gradients_flow_through_learned_necks():
    necks, _ = build_neck_list(
        [
            {"name": "ReshapeTokensToImage"},
            {"name": "LearnedInterpolateToPyramidal"},
            {"name": "AddBottleneckLayer"},
        ],
        [EMBED] * 4,
    )
    features = [t.requires_grad_() for t in tokens(4, (2, 2))]
    out = run(necks, features)
    sum(f.sum() for f in out).backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in features)
    assert all(p.grad is not None for n in necks for p in n.parameters())


def test_neck_sequential_passes_image_size_only_to_necks_that_take_it():
    from terratorch.models.necks import NeckSequential

    necks, _ = build_neck_list(
        [{"name": "SelectIndices", "indices": [0]}, {"name": "ReshapeTokensToImage"}], [EMBED]
    )
    out = NeckSequential(*necks)(tokens(1, (2, 5)), image_size=(32, 80))
    assert out[0].shape == (2, EMBED, 2, 5)


def test_feature_pyramid_network_neck_layout_and_outputs():
    from terratorch.models.necks import FeaturePyramidNetworkNeck

    neck = FeaturePyramidNetworkNeck([4, 8], out_channel=6, output_ordered_dict=False)
    out = neck([torch.randn(2, 4, 8, 8), torch.randn(2, 8, 4, 4)])
    assert [tuple(f.shape) for f in out] == [(2, 6, 8, 8), (2, 6, 4, 4)]
    assert neck.process_channel_list([4, 8]) == [6, 6]
    assert "fpn.inner_blocks.0.0.weight" in neck.state_dict()


def test_necks_declare_their_input_multiple():
    assert SelectIndices([8, 8, 8, 8], indices=[0, 1]).input_multiple == 1
    assert LearnedInterpolateToPyramidal([16, 16, 16, 16]).input_multiple == 2
    assert MaxpoolToPyramidal([8, 8, 8, 8], kernel_size=2).input_multiple == 8  # last map pooled by 2**3
    assert MaxpoolToPyramidal([8, 8, 8], kernel_size=3).input_multiple == 9
    chain = NeckSequential(SelectIndices([8] * 6, indices=[0, 1, 2]), MaxpoolToPyramidal([8] * 3))
    assert chain.input_multiple == 4


def test_model_pads_to_what_its_necks_declare():
    """A 3-level max-pool pyramid on a patch-4 backbone needs a token grid divisible by 4: 16-px multiples."""
    from terratorch.models.pixel_wise_model import PixelWiseModel

    class Patches(torch.nn.Module):
        patch_size = 4
        out_channels = [8, 8, 8]

        def forward(self, x):
            f = torch.nn.functional.avg_pool2d(x[:, :1], 4).repeat(1, 8, 1, 1)
            return [f, f, f]

    seen = []

    class Decoder(torch.nn.Module):
        out_channels = 8

        def forward(self, features):
            seen.append([tuple(f.shape[-2:]) for f in features])
            return torch.nn.functional.interpolate(features[0], scale_factor=4)

    necks = [MaxpoolToPyramidal([8, 8, 8], kernel_size=2)]
    model = PixelWiseModel(
        "segmentation",
        Patches(),
        Decoder(),
        head_kwargs={"num_classes": 2},
        patch_size=4,
        padding="reflect",
        neck=necks,
    )
    out = model(torch.randn(1, 3, 40, 40)).output
    assert out.shape[-2:] == (40, 40)  # cropped back
    assert seen[-1] == [(12, 12), (6, 6), (3, 3)]  # 40 -> 48 px (multiple of 16), every level exact
