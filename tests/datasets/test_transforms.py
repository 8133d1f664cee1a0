"""compose_transforms: lists/Compose become one pipeline that ends in tensors exactly once."""

from __future__ import annotations

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

from terratorch.datasets.transforms import compose_transforms, to_tensor_sample


def test_none_and_empty_mean_no_pipeline():
    assert compose_transforms(None) is None
    assert compose_transforms([]) is None


def test_to_tensor_is_appended_once():
    pipeline = compose_transforms([A.HorizontalFlip(p=1.0)])
    assert [type(t) for t in pipeline.transforms] == [A.HorizontalFlip, ToTensorV2]
    pipeline = compose_transforms([ToTensorV2(), A.HorizontalFlip(p=1.0)])
    assert sum(isinstance(t, ToTensorV2) for t in pipeline.transforms) == 1
    single = compose_transforms(A.VerticalFlip(p=1.0))
    assert [type(t) for t in single.transforms] == [A.VerticalFlip, ToTensorV2]


def test_pipeline_returns_chw_image_and_hw_mask():
    image = np.arange(2 * 3 * 4, dtype=np.float32).reshape(3, 4, 2)  # (H, W, C)
    mask = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = compose_transforms([A.HorizontalFlip(p=1.0)])(image=image, mask=mask)
    assert out["image"].shape == (2, 3, 4) and out["mask"].shape == (3, 4)
    assert torch.equal(out["image"][1, 0], torch.tensor([7.0, 5.0, 3.0, 1.0]))
    assert torch.equal(out["mask"][0], torch.tensor([3, 2, 1, 0], dtype=torch.int32))


def test_to_tensor_sample_converts_leftover_arrays():
    image, mask = to_tensor_sample(np.zeros((3, 4, 2), dtype=np.float32), np.ones((3, 4), dtype=np.int64))
    assert image.shape == (2, 3, 4) and mask.shape == (3, 4) and isinstance(mask, torch.Tensor)
    same, none = to_tensor_sample(torch.zeros(2, 3, 4), None)
    assert same.shape == (2, 3, 4) and none is None


def test_reference_reshaping_transforms():
    import pytest

    from terratorch.datasets.transforms import (
        FlattenTemporalIntoChannels,
        SelectBands,
        UnflattenTemporalFromChannels,
    )

    series = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3)  # (T, H, W, C)
    flat = FlattenTemporalIntoChannels()(image=series)["image"]
    assert flat.shape == (4, 5, 6) and np.array_equal(flat[..., 3:], series[1])
    chw = torch.from_numpy(flat.transpose(2, 0, 1).copy())
    restored = UnflattenTemporalFromChannels(n_channels=3)(image=chw)["image"]
    assert restored.shape == (3, 2, 4, 5)
    assert torch.equal(restored[:, 1], torch.from_numpy(series[1]).permute(2, 0, 1))
    assert SelectBands([2, 0])(image=series[0])["image"].tolist() == series[0][..., [2, 0]].tolist()
    with pytest.raises(ValueError, match="needs n_timesteps or n_channels"):
        UnflattenTemporalFromChannels()
