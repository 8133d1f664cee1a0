"""terratorch.models.utils and the shared backbone helpers of terratorch.models.backbone_adapter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terratorch.models.backbone_adapter import (
    accepted_kwargs,
    channel_list_of,
    check_feature_channels,
    instantiate_spec,
    pad_to_multiple,
    patch_size_of,
)
from terratorch.models.utils import TemporalWrapper, extract_prefix_keys


def test_extract_prefix_keys_splits_and_strips():
    extracted, remaining = extract_prefix_keys(
        {"backbone_img_size": 64, "backbone_in_chans": 4, "decoder_channels": 8, "other": 1}, "backbone_"
    )
    assert extracted == {"img_size": 64, "in_chans": 4}
    assert remaining == {"decoder_channels": 8, "other": 1}


def test_extract_prefix_keys_leaves_input_untouched():
    source = {"head_dropout": 0.1}
    extracted, remaining = extract_prefix_keys(source, "head_")
    assert extracted == {"dropout": 0.1} and remaining == {}
    assert source == {"head_dropout": 0.1}


def test_temporal_wrapper_public_path():
    from terratorch.models.temporal_wrapper import TemporalWrapper as Direct

    assert TemporalWrapper is Direct


def test_channel_list_from_out_channels(token_backbone):
    assert channel_list_of(token_backbone) == [16, 16, 16, 16]


def test_channel_list_from_feature_info(pyramid_backbone):
    assert not hasattr(pyramid_backbone, "out_channels")
    assert channel_list_of(pyramid_backbone) == [8, 16, 24, 32]


def test_channel_list_from_list_of_dicts():
    module = nn.Identity()
    module.feature_info = [{"num_chs": 3, "reduction": 1}, {"num_chs": 5, "reduction": 2}]
    assert channel_list_of(module) == [3, 5]


def test_channel_list_missing_attributes_names_them():
    with pytest.raises(TypeError, match=r"out_channels.*feature_info"):
        channel_list_of(nn.ReLU())


def test_patch_size_sources(token_backbone, pyramid_backbone):
    assert patch_size_of(token_backbone) == (8, 8)
    assert patch_size_of(pyramid_backbone) == (32, 32)  # largest FeatureInfo reduction
    assert patch_size_of(nn.Identity()) is None
    module = nn.Identity()
    module.patch_size = (1, 14, 14)
    assert patch_size_of(module) == (14, 14)
    module.patch_size = "big"
    with pytest.raises(TypeError, match="patch_size must be an int or a tuple"):
        patch_size_of(module)


@pytest.mark.parametrize("shape", [(2, 3, 30, 45), (2, 3, 2, 30, 45)])
def test_pad_to_multiple_pads_bottom_right(shape):
    x = torch.randn(shape)
    padded = pad_to_multiple(x, (16, 16), "reflect")
    assert padded.shape[:-2] == x.shape[:-2]
    assert padded.shape[-2:] == (32, 48)
    torch.testing.assert_close(padded[..., :30, :45], x)
    # reflect: the first padded row mirrors the row before the last one
    torch.testing.assert_close(padded[..., 30, :45], x[..., 28, :])


def test_pad_to_multiple_noop_and_tiny_inputs():
    x = torch.randn(1, 2, 32, 32)
    assert pad_to_multiple(x, (16, 16)) is x
    assert pad_to_multiple(x, None) is x
    tiny = torch.randn(1, 2, 3, 3)  # reflect impossible (pad >= size): replicate instead
    padded = pad_to_multiple(tiny, (16, 16), "reflect")
    assert padded.shape == (1, 2, 16, 16)
    torch.testing.assert_close(padded[..., 15, 15], tiny[..., 2, 2])
    zeros = pad_to_multiple(tiny, (8, 8), "constant")
    assert zeros[..., 5:, :].abs().sum() == 0


def test_accepted_kwargs():
    class Plain(nn.Module):
        def forward(self, x, temporal_coords=None):
            return x

    class Open(nn.Module):
        def forward(self, x, **kwargs):
            return x

    assert accepted_kwargs(Plain()) == {"temporal_coords"}
    assert accepted_kwargs(Open()) is None


def test_check_feature_channels_reports_both_lists():
    maps = [torch.zeros(1, 8, 4, 4), torch.zeros(1, 16, 2, 2)]
    check_feature_channels(maps, [8, 16], "Model")
    with pytest.raises(ValueError, match=r"built for 2 features with channels \[8, 32\].*\[8, 16\]"):
        check_feature_channels(maps, [8, 32], "Model")
    with pytest.raises(ValueError, match=r"returned 2 features"):
        check_feature_channels(maps, [8, 16, 32], "Model")
    check_feature_channels([torch.zeros(1, 5, 16)], [16], "Model")  # tokens: channels last


def test_instantiate_spec():
    built = instantiate_spec(
        {
            "class_path": "torch.nn.Conv2d",
            "init_args": {"in_channels": 2, "out_channels": 3, "kernel_size": 1},
        },
        "backbone",
    )
    assert isinstance(built, nn.Conv2d) and built.out_channels == 3
    assert instantiate_spec("resnet18", "backbone") == "resnet18"
    with pytest.raises(ValueError, match="unknown keys"):
        instantiate_spec({"class_path": "torch.nn.Identity", "args": {}}, "backbone")
    with pytest.raises(ImportError, match="cannot import module 'no_such_pkg'"):
        instantiate_spec({"class_path": "no_such_pkg.Thing"}, "backbone")
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        instantiate_spec({"class_path": "torch.nn.Nope"}, "backbone")
