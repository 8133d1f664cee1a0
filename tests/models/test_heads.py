"""Task heads (terratorch.models.heads): shapes, hidden layers, pooling order and bad input."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terratorch.models.heads import ClassificationHead, RegressionHead, ScalarHead, SegmentationHead


def test_segmentation_head_shapes_with_and_without_hidden_layers():
    x = torch.randn(2, 8, 6, 5)
    assert SegmentationHead(8, num_classes=3)(x).shape == (2, 3, 6, 5)
    head = SegmentationHead(8, num_classes=4, channel_list=[16, 6], dropout=0.2)
    assert head(x).shape == (2, 4, 6, 5)
    assert [m.out_channels for m in head.modules() if isinstance(m, nn.Conv2d)] == [16, 6, 4]


def test_regression_head_keeps_the_channel_and_upscales():
    x = torch.randn(2, 8, 4, 4)
    assert RegressionHead(8)(x).shape == (2, 1, 4, 4)
    head = RegressionHead(8, learned_upscale_layers=2, channel_list=[4], dropout=0.1)
    assert head(x).shape == (2, 1, 16, 16)


@pytest.mark.parametrize(("final_act", "low", "high"), [("ReLU", 0.0, None), (nn.Sigmoid(), 0.0, 1.0)])
def test_regression_head_final_activation(final_act, low, high):
    out = RegressionHead(8, final_act=final_act)(torch.randn(4, 8, 5, 5) * 10)
    assert out.min() >= low
    if high is not None:
        assert out.max() <= high


@pytest.mark.parametrize("shape", [(2, 8, 3, 3), (2, 7, 8), (2, 8)])
def test_classification_head_accepts_maps_tokens_and_vectors(shape):
    head = ClassificationHead(8, num_classes=5, dim_list=[6], dropout=0.1)
    assert head(torch.randn(*shape)).shape == (2, 5)


def test_classification_head_pooling_order():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 3, 3)
    before = ClassificationHead(4, num_classes=3, dim_list=[5], linear_after_pool=True).eval()
    after = ClassificationHead(4, num_classes=3, dim_list=[5], linear_after_pool=False).eval()
    after.load_state_dict(before.state_dict())
    positions = x.flatten(2).transpose(1, 2)
    assert torch.allclose(before(x), before.head(positions.mean(dim=1)))
    assert torch.allclose(after(x), after.head(positions).mean(dim=1))
    # with a non-linear hidden layer the two orders are different functions
    assert not torch.allclose(before(x), after(x))


def test_heads_train_end_to_end():
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    heads = [
        SegmentationHead(8, 3, channel_list=[4]),
        RegressionHead(8, learned_upscale_layers=1),
        ClassificationHead(8, 3, dim_list=[4]),
    ]
    loss = sum(h(x).square().mean() for h in heads)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for h in heads for p in h.parameters())


def test_heads_reject_wrong_input_channels_naming_both():
    with pytest.raises(ValueError, match="built with in_channels=8 but received 6 channels"):
        SegmentationHead(8, 2)(torch.randn(2, 6, 4, 4))
    with pytest.raises(ValueError, match="RegressionHead was built with in_channels=8 but received 3"):
        RegressionHead(8)(torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="ClassificationHead was built with in_channels=8 but received 5"):
        ClassificationHead(8, 2)(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r"expects \(B, C, H, W\), \(B, L, C\) or \(B, C\) inputs"):
        ClassificationHead(8, 2)(torch.randn(8))


def test_heads_reject_bad_arguments():
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        SegmentationHead(8, 0)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        ClassificationHead(8, num_classes=0)
    with pytest.raises(ValueError, match="learned_upscale_layers must be >= 0, got -1"):
        RegressionHead(8, learned_upscale_layers=-1)
    with pytest.raises(ValueError, match=r"unknown final_act 'Sigmoidd'"):
        RegressionHead(8, final_act="Sigmoidd")


def test_heads_keep_the_reference_checkpoint_layout():
    seg = SegmentationHead(8, 3, channel_list=[4])
    assert sorted(seg.state_dict()) == [
        "head.0.0.0.bias",
        "head.0.0.0.weight",
        "head.2.bias",
        "head.2.weight",
    ]
    assert sorted(RegressionHead(8).state_dict()) == ["head.1.bias", "head.1.weight"]
    upscale = RegressionHead(8, learned_upscale_layers=1)
    assert (
        "head.0.0.conv.weight" in upscale.state_dict() and "head.0.0.bn.running_var" in upscale.state_dict()
    )
    assert sorted(ScalarHead(8, num_classes=3, dim_list=[4]).state_dict()) == [
        "head.0.0.0.bias",
        "head.0.0.0.weight",
        "head.2.bias",
        "head.2.weight",
    ]


def test_scalar_head_outputs_and_deprecated_alias():
    assert ScalarHead(8, num_outputs=2)(torch.randn(3, 8, 4, 4)).shape == (3, 2)
    with pytest.warns(DeprecationWarning, match="ScalarHead"):
        head = ClassificationHead(8, num_classes=4)
    assert isinstance(head, ScalarHead) and head(torch.randn(2, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="give num_classes"):
        ScalarHead(8)


def test_regression_head_dotted_activation_and_several_outputs():
    head = RegressionHead(8, num_outputs=3, final_act="torch.nn.Sigmoid")
    out = head(torch.randn(2, 8, 4, 4) * 10)
    assert out.shape == (2, 3, 4, 4) and out.min() >= 0 and out.max() <= 1
