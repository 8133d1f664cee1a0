"""terratorch.utils: dataloader statistics and state-dict helpers with the reference's interface."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import DataLoader

from terratorch.utils import (
    compute_float_mask_statistics,
    compute_int_mask_statistics,
    compute_mask_statistics,
    compute_statistics,
    remove_unexpected_prefix,
    view_api,
)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, images, masks):
        self.images, self.masks = images, masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": self.masks[i]}


def _loader(images, masks, batch_size=2):
    return DataLoader(_Samples(images, masks), batch_size=batch_size)


def test_compute_statistics_matches_direct_computation_and_ignores_nan():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 3, 4, 4, generator=gen, dtype=torch.float64) * 10
    images[0, 1, 0, 0] = float("nan")
    stats = compute_statistics(_loader(images, torch.zeros(5, 4, 4)))
    per_band = images.transpose(0, 1).reshape(3, -1)
    for band in range(3):
        values = per_band[band][~per_band[band].isnan()]
        assert stats["means"][band] == pytest.approx(values.mean().item(), rel=1e-12)
        assert stats["stds"][band] == pytest.approx(values.std(unbiased=False).item(), rel=1e-12)


def test_int_mask_statistics_counts_and_fractions():
    masks = torch.tensor([[[0, 1], [1, 2]], [[2, 2], [2, 0]]])
    stats = compute_mask_statistics(_loader(torch.zeros(2, 1, 2, 2), masks))
    assert stats == compute_int_mask_statistics(_loader(torch.zeros(2, 1, 2, 2), masks))
    assert stats == {
        0: {"count": 2, "percentage": 0.25},
        1: {"count": 2, "percentage": 0.25},
        2: {"count": 4, "percentage": 0.5},
    }


def test_float_mask_statistics_mean_and_population_std():
    masks = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])
    stats = compute_mask_statistics(_loader(torch.zeros(2, 1, 1, 2), masks))
    assert stats == compute_float_mask_statistics(_loader(torch.zeros(2, 1, 1, 2), masks))
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["std"] == pytest.approx(math.sqrt(5.0))


def test_remove_unexpected_prefix():
    state = {"encoder._timm_module.conv.weight": 1, "head.bias": 2}
    assert remove_unexpected_prefix(state) == {"encoder.conv.weight": 1, "head.bias": 2}


def test_view_api_without_torchview_says_what_to_install():
    try:
        import torchview  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="torchview"):
            view_api(torch.nn.Identity(), torch.zeros(1), {})
    else:
        graph = view_api(torch.nn.Linear(2, 2), torch.zeros(1, 2), {})
        assert graph is not None
