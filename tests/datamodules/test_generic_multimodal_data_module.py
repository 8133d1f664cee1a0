"""GenericMultiModalDataModule: per-modality roots and statistics, batching, sampling, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from terratorch.datamodules import GenericMultiModalDataModule, MultiModalBatchSampler, MultimodalNormalize
from terratorch.datasets import make_multimodal_demo
from terratorch.datasets.utils import write_geotiff


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    return make_multimodal_demo(tmp_path_factory.mktemp("mm") / "demo", n_train=6, n_val=3, n_test=2, size=16)


def datamodule(demo: Any, **overrides: Any) -> GenericMultiModalDataModule:
    return GenericMultiModalDataModule(**demo.datamodule_kwargs(**{"batch_size": 2, **overrides}))


def test_batches_hold_each_modality_normalised_with_its_statistics(demo: Any) -> None:
    dm = datamodule(demo)
    dm.setup("fit")
    raw = next(iter(dm.val_dataloader()))
    assert set(raw["image"]) == {"S2L2A", "S1GRD"}
    assert raw["image"]["S2L2A"].shape == (2, 12, 16, 16) and raw["image"]["S1GRD"].shape == (2, 2, 16, 16)
    assert raw["mask"].shape == (2, 16, 16) and raw["mask"].dtype == torch.int64
    assert [Path(f).name for f in raw["filename"]["S1GRD"]] == ["chip_0006_S1GRD.tif", "chip_0007_S1GRD.tif"]
    s1 = raw["image"]["S1GRD"].clone()
    batch = dm.on_after_batch_transfer(raw, 0)
    means = torch.tensor(demo.means["S1GRD"]).view(1, 2, 1, 1)
    stds = torch.tensor(demo.stds["S1GRD"]).view(1, 2, 1, 1)
    torch.testing.assert_close(batch["image"]["S1GRD"], (s1 - means) / stds)


def test_train_loader_shuffles_and_drops_the_last_batch(demo: Any) -> None:
    dm = datamodule(demo, batch_size=4)
    dm.setup("fit")
    assert len(list(dm.train_dataloader())) == 1  # 6 samples, batch 4, drop_last
    assert len(list(dm.val_dataloader())) == 1  # 3 samples, batch 4, kept


def test_concat_bands_normalises_the_joined_image(demo: Any) -> None:
    dm = datamodule(demo, concat_bands=True)
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch["image"].shape == (2, 14, 16, 16)
    assert abs(float(batch["image"][:, 12:].mean())) < 0.5


def test_sampled_modalities_per_batch(demo: Any) -> None:
    dm = datamodule(demo, sample_num_modalities=1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, MultiModalBatchSampler)
    seen = set()
    for _ in range(4):
        for batch in loader:
            assert len(batch["image"]) == 1 and "mask" in batch
            seen |= set(batch["image"])
    assert seen <= {"S2L2A", "S1GRD"}


def test_batch_sampler_rejects_more_modalities_than_exist() -> None:
    with pytest.raises(ValueError, match="sample_num_modalities=3 exceeds the 2 modalities"):
        MultiModalBatchSampler(["A", "B"], 3, False, range(4), batch_size=2, drop_last=False)


def test_predict_split_has_images_only(demo: Any) -> None:
    dm = datamodule(demo, predict_data_root={m: str(p) for m, p in demo.data_roots.items()})
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert "mask" not in batch and set(batch["filename"]) == {"S2L2A", "S1GRD"}
    assert len(dm.predict_dataset) == 11


def test_shared_root_string_applies_to_every_modality(tmp_path: Path) -> None:
    for stem in ("a", "b"):
        write_geotiff(tmp_path / f"{stem}_S2L2A.tif", np.ones((3, 4, 4), np.float32))
        write_geotiff(tmp_path / f"{stem}_S1GRD.tif", np.ones((2, 4, 4), np.float32))
    dm = GenericMultiModalDataModule(
        batch_size=2,
        modalities=["S2L2A", "S1GRD"],
        means={"S2L2A": [0, 0, 0]},
        stds={"S2L2A": [1, 1, 1]},
        train_data_root=str(tmp_path),
        val_data_root=str(tmp_path),
        image_grep={"S2L2A": "*_S2L2A.tif", "S1GRD": "*_S1GRD.tif"},
    )
    dm.setup("fit")
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert batch["image"]["S1GRD"].shape == (2, 2, 4, 4)  # no statistics: left as read


def test_modalities_on_different_grids_fail_at_setup(tmp_path: Path, demo: Any) -> None:
    from affine import Affine

    broken = tmp_path / "S1GRD"
    for stem in demo.stems["train"] + demo.stems["val"]:
        shifted = Affine(30.0, 0.0, 600_000.0, 0.0, -30.0, 5_000_000.0)
        write_geotiff(broken / f"{stem}_S1GRD.tif", np.zeros((2, 16, 16), np.float32), transform=shifted)
    roots = {"S2L2A": str(demo.data_roots["S2L2A"]), "S1GRD": str(broken)}
    dm = datamodule(demo, train_data_root=roots)
    with pytest.raises(
        ValueError, match=r"train split: grid mismatch: S2L2A file .*chip_0000_S2L2A.tif.*S1GRD file"
    ):
        dm.setup("fit")


def test_allow_missing_modalities_uses_batch_size_one(demo: Any) -> None:
    with pytest.warns(UserWarning, match="using batch_size 1"):
        dm = datamodule(demo, allow_missing_modalities=True)
    assert dm.batch_size == 1


def test_rgb_indices_list_belongs_to_the_first_image_modality(demo: Any) -> None:
    assert datamodule(demo, rgb_indices=[3, 2, 1]).rgb_indices == {"S2L2A": [3, 2, 1]}
    with pytest.warns(DeprecationWarning, match="rgb_modality"):
        dm = datamodule(demo, rgb_modality="S1GRD", rgb_indices=[0])
    assert dm.rgb_indices == {"S1GRD": [0]}


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"task": "segmentaton"}, ValueError, "segmentation"),
        ({"image_grep": {"S2L2A": "*_x_*.tif"}}, ValueError, "only a leading wildcard"),
        (
            {"train_data_root": {"S2L2A": "x"}},
            ValueError,
            r"train_data_root has no path for modalities \['S1GRD'\]",
        ),
        ({"means": {"S1GRD": [0.0]}, "stds": {"S1GRD": [1.0]}}, None, None),
        ({"means": {"S1GRD": [0.0, 0.0, 0.0]}, "stds": {"S1GRD": [1.0, 1.0, 1.0]}}, None, None),
        ({"stds": {"S2L2A": [1.0] * 12}}, ValueError, "means names modality 'S1GRD' but stds does not"),
        ({"train_label_data_root": None}, ValueError, "needs labels: give train_label_data_root"),
        ({"skip_file_checks": True}, ValueError, "skip_file_checks needs"),
    ],
)
def test_bad_arguments_are_explained(demo: Any, overrides: dict, error: Any, message: str | None) -> None:
    if error is None:  # statistics are checked against the bands when a batch is normalised
        dm = datamodule(demo, **overrides)
        dm.setup("fit")
        with pytest.raises(ValueError, match="S1GRD has 2 bands"):
            dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
        return
    with pytest.raises(error, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        datamodule(demo, **overrides)


def test_missing_split_root_is_reported_at_setup(demo: Any) -> None:
    dm = datamodule(demo)
    with pytest.raises(ValueError, match=r"predict_data_root .* is required for stage 'predict'"):
        dm.setup("predict")


def test_multimodal_normalize_and_denormalize_round_trip() -> None:
    norm = MultimodalNormalize({"A": [1.0, 2.0]}, {"A": [2.0, 4.0]})
    x = torch.rand(3, 2, 4, 4)
    batch = norm({"image": {"A": x.clone()}})
    torch.testing.assert_close(norm(batch, denormalize=True)["image"]["A"], x)
    values = norm.normalize_tensor("A", torch.tensor([[3.0, 6.0], [1.0, 2.0]]))  # per-sample (B, N)
    torch.testing.assert_close(values, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"stds\['A'\] must be > 0"):
        MultimodalNormalize({"A": [0.0]}, {"A": [0.0]})
