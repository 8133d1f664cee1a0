"""Normalize and the alignment of means/stds with output bands."""

from __future__ import annotations

import pytest
import torch

from terratorch.datamodules.normalize import Normalize, align_band_statistics


@pytest.mark.parametrize(
    ("shape", "temporal", "axis"),
    [((3, 4, 4), False, 0), ((2, 3, 4, 4), False, 1), ((3, 2, 4, 4), True, 0), ((2, 3, 2, 4, 4), True, 1)],
)
def test_normalize_per_band_on_each_layout(shape, temporal, axis):
    normalize = Normalize([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], temporal=temporal)
    image = torch.ones(shape)
    index = [slice(None)] * len(shape)
    for band, value in enumerate((5.0, 6.0, 11.0)):
        index[axis] = band
        image[tuple(index)] = value
    out = normalize(image)
    assert out.shape == image.shape and out.dtype == torch.float32
    for band, expected in enumerate((4.0, 2.0, 2.0)):  # (5-1)/1, (6-2)/2, (11-3)/4
        index[axis] = band
        assert torch.all(out[tuple(index)] == expected)


def test_normalize_keeps_double_and_converts_ints():
    normalize = Normalize([1.0], [2.0])
    assert normalize(torch.full((1, 2, 2), 5.0, dtype=torch.float64)).dtype == torch.float64
    assert torch.all(normalize(torch.full((1, 1, 2, 2), 5, dtype=torch.int16)) == 2.0)


def test_normalize_errors():
    with pytest.raises(ValueError, match="means has 2 values but stds has 1"):
        Normalize([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match=r"stds must be > 0; band position\(s\) \[1\]"):
        Normalize([0.0, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match=r"image has 2 bands .* means/stds have 3 values"):
        Normalize([0.0] * 3, [1.0] * 3)(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\)"):
        Normalize([0.0], [1.0], temporal=True)(torch.zeros(1, 4, 4))


def test_align_statistics_to_output_bands(tmp_path):
    dataset, output = ["B", "G", "R", "N"], ["N", "B"]
    assert align_band_statistics([9.0, 1.0], key="means", dataset_bands=dataset, output_bands=output) == [
        9.0,
        1.0,
    ]
    assert align_band_statistics([1, 2, 3, 4], key="means", dataset_bands=dataset, output_bands=output) == [
        4.0,
        1.0,
    ]
    (tmp_path / "m.txt").write_text("1\n2\n3\n4\n")
    assert align_band_statistics(
        str(tmp_path / "m.txt"), key="means", dataset_bands=dataset, output_bands=output
    ) == [
        4.0,
        1.0,
    ]
    with pytest.raises(ValueError, match=r"stds has 3 values but output_bands has 2 \(\['N', 'B'\]\)"):
        align_band_statistics([1, 2, 3], key="stds", dataset_bands=dataset, output_bands=output)
