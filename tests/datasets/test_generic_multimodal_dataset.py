"""Multimodal datasets: sample matching by id, per-modality bands, shared transforms, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from terratorch.datasets import (
    GenericMultimodalDataset,
    GenericMultimodalPixelwiseRegressionDataset,
    GenericMultimodalScalarDataset,
    GenericMultimodalSegmentationDataset,
)
from terratorch.datasets.utils import write_geotiff

S2_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]
GREP = {"S2L2A": "*_S2L2A.tif", "S1GRD": "*_S1GRD.tif"}


def write_sample(root: Path, stem: str, *, size: int = 8, s1_size: int | None = None, steps: int = 1) -> None:
    """S2L2A band b = 100 * (b + 1) (+ column index), S1GRD band b = -(b + 1), mask = column // 4."""
    cols = np.arange(size, dtype=np.int16)[None, None, :]
    s2 = np.concatenate([np.full((4, size, size), 100, np.int16) * (np.arange(4)[:, None, None] + 1)] * steps)
    write_geotiff(root / "S2L2A" / f"{stem}_S2L2A.tif", (s2 + cols).astype(np.int16))
    side = s1_size or size
    s1 = -np.ones((2, side, side), np.float32) * (np.arange(2)[:, None, None] + 1)
    write_geotiff(root / "S1GRD" / f"{stem}_S1GRD.tif", s1)
    mask = np.broadcast_to((np.arange(size) // 4).astype(np.uint8), (size, size)).copy()
    mask[0, 0] = 255
    write_geotiff(root / "labels" / f"{stem}_mask.tif", mask, nodata=255)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for stem in ("s1", "s2", "s3"):
        write_sample(tmp_path, stem)
    return tmp_path


def roots(root: Path) -> dict[str, Path]:
    return {"S2L2A": root / "S2L2A", "S1GRD": root / "S1GRD"}


def seg(root: Path, **kwargs) -> GenericMultimodalSegmentationDataset:
    defaults = {"image_grep": GREP, "label_grep": "*_mask.tif", "allow_substring_file_names": True}
    return GenericMultimodalSegmentationDataset(
        roots(root), 3, label_data_root=root / "labels", **{**defaults, **kwargs}
    )


def test_samples_are_matched_by_id_and_hold_every_modality(root: Path) -> None:
    dataset = seg(root)
    assert len(dataset) == 3
    sample = dataset[0]
    assert set(sample["image"]) == {"S2L2A", "S1GRD"}
    assert sample["image"]["S2L2A"].shape == (4, 8, 8) and sample["image"]["S2L2A"].dtype == torch.float32
    assert sample["image"]["S1GRD"].shape == (2, 8, 8)
    assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (8, 8)
    assert sample["mask"][0, 0] == -1  # label nodata -> no_label_replace
    assert sample["mask"][1, 5] == 1
    assert Path(sample["filename"]["S2L2A"]).name == "s1_S2L2A.tif"
    assert Path(sample["filename"]["mask"]).name == "s1_mask.tif"


def test_output_bands_and_constant_scale_are_per_modality(root: Path) -> None:
    dataset = seg(
        root,
        dataset_bands={"S2L2A": S2_BANDS},
        output_bands={"S2L2A": ["NIR_NARROW", "GREEN"]},
        constant_scale={"S2L2A": 0.01},
    )
    image = dataset[0]["image"]["S2L2A"]
    assert image.shape == (2, 8, 8)
    torch.testing.assert_close(image[:, 0, 0], torch.tensor([4.0, 2.0]))
    assert dataset.filter_indices == {"S2L2A": [3, 1]}


def test_one_transform_is_applied_to_every_modality_and_the_mask(root: Path) -> None:
    import albumentations as A

    plain = seg(root)[1]
    flipped = seg(root, transform=[A.HorizontalFlip(p=1.0), A.pytorch.ToTensorV2()])[1]
    for modality in ("S2L2A", "S1GRD"):
        torch.testing.assert_close(flipped["image"][modality], plain["image"][modality].flip(-1))
    torch.testing.assert_close(flipped["mask"], plain["mask"].flip(-1))


def test_modalities_on_different_grids_name_the_files(tmp_path: Path) -> None:
    write_sample(tmp_path, "bad", s1_size=6)
    dataset = seg(tmp_path)
    with pytest.raises(
        ValueError, match=r"different sizes.*S2L2A.*\(8, 8\).*S1GRD.*\(6, 6\).*bad_S1GRD\.tif"
    ):
        dataset[0]


def test_missing_modalities_drop_samples_unless_allowed(root: Path) -> None:
    (root / "S1GRD" / "s2_S1GRD.tif").unlink()
    assert [Path(s["S2L2A"]).name for s in seg(root).samples] == ["s1_S2L2A.tif", "s3_S2L2A.tif"]
    dataset = seg(root, allow_missing_modalities=True)
    assert len(dataset) == 3
    assert set(dataset[1]["image"]) == {"S2L2A"}


def test_no_complete_sample_lists_the_candidates(root: Path) -> None:
    for path in (root / "labels").iterdir():
        path.unlink()
    with pytest.raises(ValueError, match=r"no complete multimodal samples.*s1: found \['S1GRD', 'S2L2A'\]"):
        seg(root)


def test_missing_root_names_the_modality(root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="S1GRD directory"):
        GenericMultimodalDataset({"S2L2A": root / "S2L2A", "S1GRD": root / "nowhere"}, image_grep=GREP)


def test_concat_bands_joins_image_modalities_in_order(root: Path) -> None:
    image = seg(root, concat_bands=True)[0]["image"]
    assert isinstance(image, torch.Tensor) and image.shape == (6, 8, 8)
    torch.testing.assert_close(image[4:, 0, 0], torch.tensor([-1.0, -2.0]))


def test_expand_temporal_dimension_gives_channels_then_time(tmp_path: Path) -> None:
    write_sample(tmp_path, "t1", steps=2)
    dataset = seg(
        tmp_path,
        dataset_bands={"S2L2A": S2_BANDS},
        output_bands={"S2L2A": ["RED", "BLUE"]},
        expand_temporal_dimension=True,
    )
    image = dataset[0]["image"]["S2L2A"]
    assert image.shape == (2, 2, 8, 8)  # (C, T, H, W)
    torch.testing.assert_close(image[:, :, 0, 0], torch.tensor([[300.0, 300.0], [100.0, 100.0]]))
    assert dataset[0]["image"]["S1GRD"].shape == (2, 8, 8)


def test_sampled_modalities_load_only_those(root: Path) -> None:
    sample = seg(root)[(0, ["S1GRD"])]
    assert set(sample["image"]) == {"S1GRD"} and "mask" in sample


def test_scalar_labels_and_non_image_modalities_come_from_tables(root: Path) -> None:
    (root / "labels.csv").write_text("id,label\ns1,0\ns2,2\ns3,1\n")
    (root / "meta.csv").write_text("id,lat,lon\ns1,1.5,2.5\ns2,3.5,4.5\ns3,5.5,6.5\n")
    dataset = GenericMultimodalScalarDataset(
        {**roots(root), "META": root / "meta.csv"},
        num_classes=3,
        label_data_root=root / "labels.csv",
        image_grep=GREP,
        image_modalities=["S2L2A", "S1GRD"],
        allow_substring_file_names=True,
    )
    sample = dataset[1]
    assert sample["label"].dtype == torch.int64 and sample["label"].item() == 2
    torch.testing.assert_close(sample["image"]["META"], torch.tensor([3.5, 4.5]))
    assert list(sample["image"]) == ["S2L2A", "S1GRD", "META"]


def test_split_file_selects_ids_and_exact_names(root: Path) -> None:
    split = root / "split.txt"
    split.write_text("s3\ns1\n")
    dataset = seg(root, split=split, allow_substring_file_names=False)
    assert [Path(s["S1GRD"]).name for s in dataset.samples] == ["s3_S1GRD.tif", "s1_S1GRD.tif"]


def test_regression_masks_are_float(root: Path) -> None:
    dataset = GenericMultimodalPixelwiseRegressionDataset(
        roots(root), label_data_root=root / "labels", image_grep=GREP, label_grep="*_mask.tif"
    )
    mask = dataset[0]["mask"]
    assert mask.dtype == torch.float32 and mask[0, 0] == -1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_root": {"mask": "x"}}, "cannot be called 'mask'"),
        ({"image_modalities": ["S2L1C"]}, r"image_modalities \['S2L1C'\]"),
        ({"output_bands": {"S2L2A": ["RED"]}}, r"output_bands\['S2L2A'\] needs dataset_bands"),
        ({"dataset_bands": {"S2L2A": S2_BANDS}, "output_bands": {"S2L2A": ["REDD"]}}, "did you mean RED"),
    ],
)
def test_bad_arguments_are_explained(root: Path, kwargs: dict, message: str) -> None:
    arguments = {"data_root": roots(root), "image_grep": GREP, **kwargs}
    with pytest.raises(ValueError, match=message):
        GenericMultimodalDataset(**arguments)


def test_plot_shows_the_rgb_modalities_and_the_mask(root: Path) -> None:
    dataset = seg(root, rgb_indices={"S2L2A": [2, 1, 0], "S1GRD": [0]})
    sample = dataset[0]
    sample["prediction"] = sample["mask"].clamp(min=0)
    figure = dataset.plot(sample)
    assert [ax.get_title() for ax in figure.axes] == ["S2L2A", "S1GRD", "Ground truth", "Prediction"]
    with pytest.raises(ValueError, match="no modality of rgb_indices"):
        seg(root, rgb_indices={"DEM": [0]}).plot(sample)
