"""TemporalWrapper: per-frame encoding of (B, C, T, H, W) inputs and pooling over time."""

from __future__ import annotations

import pytest
import torch

from terratorch.models.temporal_wrapper import TemporalWrapper


def _frames(encoder, x):
    """Reference: run the encoder frame by frame, features stacked as (B, T, ...)."""
    per_frame = [encoder(x[:, :, t]) for t in range(x.shape[2])]
    return [torch.stack([f[i] for f in per_frame], dim=1) for i in range(len(per_frame[0]))]


@pytest.fixture
def clip():
    torch.manual_seed(1)
    return torch.randn(2, 4, 3, 32, 32)


@pytest.mark.parametrize(
    ("pooling", "reduce"),
    [("mean", lambda f: f.mean(1)), ("max", lambda f: f.amax(1))],
)
def test_mean_max_match_frame_by_frame(pyramid_backbone, clip, pooling, reduce):
    wrapper = TemporalWrapper(pyramid_backbone, pooling=pooling)
    out = wrapper(clip)
    expected = [reduce(f) for f in _frames(pyramid_backbone, clip)]
    assert wrapper.out_channels == [8, 16, 24, 32]
    for got, want in zip(out, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_concat_multiplies_channels(pyramid_backbone, clip):
    wrapper = TemporalWrapper(pyramid_backbone, pooling="concat", n_timestamps=3)
    out = wrapper(clip)
    assert wrapper.out_channels == [24, 48, 72, 96]
    assert [f.shape[1] for f in out] == wrapper.out_channels
    first = pyramid_backbone(clip[:, :, 0])[0]
    torch.testing.assert_close(out[0][:, :8], first, rtol=1e-5, atol=1e-5)


def test_diff_and_keep(pyramid_backbone):
    pair = torch.randn(1, 4, 2, 32, 32)
    diff = TemporalWrapper(pyramid_backbone, pooling="diff")(pair)
    reference = _frames(pyramid_backbone, pair)
    torch.testing.assert_close(diff[1], reference[1][:, 0] - reference[1][:, 1], rtol=1e-5, atol=1e-5)
    kept = TemporalWrapper(pyramid_backbone, pooling="keep")(pair)
    assert kept[0].shape == (1, 2, 8, 8, 8)  # (B, T, C, H, W), as the reference keeps frames


def test_tokens_concat_on_last_dim(token_backbone):
    wrapper = TemporalWrapper(token_backbone, pooling="concat", n_timestamps=2)
    out = wrapper(torch.randn(1, 4, 2, 16, 16))
    assert out[0].shape == (1, 5, 32)
    assert wrapper.out_channels == [32] * 4


def test_single_frame_needs_time_axis_and_patch_size_kept(token_backbone):
    wrapper = TemporalWrapper(token_backbone)
    assert wrapper.patch_size == 8
    out = wrapper(torch.randn(2, 4, 1, 16, 16))
    assert out[0].shape == (2, 5, 16)
    with pytest.raises(ValueError, match=r"Expected input shape \[B, C, T, H, W\].*unsqueeze\(2\)"):
        wrapper(torch.randn(2, 4, 16, 16))


def test_helper_methods_of_the_reference(pyramid_backbone):
    wrapper = TemporalWrapper(pyramid_backbone, features_permute_op=[0, 2, 3, 1])
    assert wrapper.reverse_permute_op == [0, 3, 1, 2]
    x = torch.randn(2, 3, 4, 5)
    y = wrapper.permute_op(x, wrapper.features_permute_op)
    assert y.shape == (2, 4, 5, 3)
    assert torch.equal(wrapper.permute_op(y, wrapper.reverse_permute_op), x)
    assert wrapper.permute_op(x, None) is x
    with pytest.raises(ValueError, match="3 dims"):
        wrapper.permute_op(x, [0, 2, 1])
    tokens = torch.randn(6, 10, 8)  # (B*T, L, C)
    stacked = wrapper.reshape_5d(tokens, 2, 3)
    assert stacked.shape == (2, 3, 8, 10, 1)
    assert torch.equal(wrapper.vit_postprocess(stacked[:, 0]), tokens.reshape(2, 3, 10, 8)[:, 0])
    maps = torch.randn(2, 8, 10, 4)
    assert wrapper.vit_postprocess(maps) is maps


def test_gradients_reach_the_encoder(pyramid_backbone, clip):
    wrapper = TemporalWrapper(pyramid_backbone, pooling="mean")
    sum(f.sum() for f in wrapper(clip)).backward()
    assert pyramid_backbone.stages[0][0].weight.grad is not None


def test_bad_configuration_messages(pyramid_backbone):
    with pytest.raises(
        ValueError, match=r"Unsupported pooling 'sum'.*'mean', 'max', 'diff', 'keep', 'concat'"
    ):
        TemporalWrapper(pyramid_backbone, pooling="sum")
    with pytest.warns(UserWarning, match="n_timestamps"):
        assert TemporalWrapper(pyramid_backbone, pooling="concat").out_channels is None
    with pytest.raises(ValueError, match="exactly 2 frames"):
        TemporalWrapper(pyramid_backbone, pooling="diff", n_timestamps=3)


def test_bad_input_messages(pyramid_backbone):
    wrapper = TemporalWrapper(pyramid_backbone, pooling="concat", n_timestamps=2)
    with pytest.raises(ValueError, match=r"n_timestamps=2 frames \(pooling='concat'\) but the input has T=3"):
        wrapper(torch.randn(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match=r"Expected input shape \[B, C, T, H, W\]"):
        wrapper(torch.randn(4, 32, 32))
    with pytest.raises(ValueError, match="T=3"):
        TemporalWrapper(pyramid_backbone, pooling="diff")(torch.randn(1, 4, 3, 32, 32))


def test_batch_keys_reach_the_encoder_only_if_accepted(pyramid_backbone):
    seen = {}

    class WithCoords(type(pyramid_backbone)):
        def forward(self, x, temporal_coords=None):
            seen["temporal_coords"] = temporal_coords
            return super().forward(x)

    coords = torch.zeros(1, 2)
    TemporalWrapper(pyramid_backbone)(torch.randn(1, 4, 2, 32, 32), temporal_coords=coords)  # dropped
    TemporalWrapper(WithCoords())(
        torch.randn(1, 4, 2, 32, 32), temporal_coords=coords, location_coords=coords
    )
    assert seen == {"temporal_coords": coords}


def test_subset_lengths_average_groups_before_pooling(pyramid_backbone):
    clip = torch.randn(1, 4, 5, 32, 32)
    frames = _frames(pyramid_backbone, clip)
    out = TemporalWrapper(pyramid_backbone, pooling="diff", subset_lengths=[2, 3])(clip)
    expected = frames[0][:, :2].mean(dim=1) - frames[0][:, 2:].mean(dim=1)
    torch.testing.assert_close(out[0], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exactly two subsets"):
        TemporalWrapper(pyramid_backbone, pooling="diff", subset_lengths=[1, 1, 1])
    with pytest.raises(ValueError, match=r"\(4\) must equal timesteps \(5\)"):
        TemporalWrapper(pyramid_backbone, pooling="mean", subset_lengths=[2, 2])(torch.randn(1, 4, 5, 32, 32))
