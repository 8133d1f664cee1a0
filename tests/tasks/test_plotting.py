"""Validation figures (terratorch/tasks/plotting.py): panels, colour handling, headless rendering."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from terratorch.tasks.plotting import plot_sample, rgb_composite


def _render(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def test_rgb_composite_stretches_and_selects_bands():
    image = torch.zeros(4, 8, 8)
    image[2] = torch.linspace(0, 100, 64).reshape(8, 8)
    rgb = rgb_composite(image, rgb_indices=[2, 1, 0])
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
    assert rgb[..., 0].max() == pytest.approx(1.0) and rgb[..., 1].max() == 0.0
    temporal = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)], dim=1)  # (C, T, H, W)
    assert rgb_composite(temporal).shape == (4, 4, 3)
    assert rgb_composite(torch.rand(1, 5, 5)).shape == (5, 5, 3)  # single band → grey


def test_segmentation_figure_has_image_target_prediction_and_legend():
    mask = torch.randint(0, 3, (16, 16))
    mask[0] = -1
    figure = plot_sample(
        torch.rand(3, 16, 16),
        mask,
        torch.randint(0, 3, (16, 16)),
        "segmentation",
        class_names=["water", "land", "cloud"],
        num_classes=3,
        ignore_index=-1,
        title="epoch 2",
    )
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["image", "target", "prediction"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["water", "land", "cloud"]
    assert _render(figure).startswith(b"\x89PNG")


def test_regression_figure_shares_the_colour_range():
    target = torch.rand(8, 8)
    target[0, 0] = -9999
    figure = plot_sample(torch.rand(6, 8, 8), target, torch.rand(8, 8) * 2, "regression", ignore_index=-9999)
    images = [ax.images[0] for ax in figure.axes[1:3]]
    assert images[0].get_clim() == images[1].get_clim()
    assert images[0].get_clim()[0] >= 0.0  # the ignored value does not stretch the scale
    assert np.ma.getmaskarray(images[0].get_array())[0, 0]  # NaN (ignored) pixel is blank
    _render(figure)


def test_classification_and_multilabel_titles():
    figure = plot_sample(
        torch.rand(3, 8, 8), torch.tensor(1), torch.tensor(0), "classification", class_names=["a", "b"]
    )
    assert figure.axes[0].get_title() == "true: b | predicted: a"
    multi = plot_sample(
        torch.rand(3, 8, 8),
        torch.tensor([1.0, 0.0, 1.0]),
        torch.tensor([0, 0, 1]),
        "multilabel_classification",
    )
    assert multi.axes[0].get_title() == "true: 0, 2 | predicted: 2"
    scalar = plot_sample(torch.rand(3, 8, 8), torch.tensor(2.5), torch.tensor(2.0), "scalar_regression")
    assert scalar.axes[0].get_title() == "true: 2.5 | predicted: 2"
    _render(multi)
