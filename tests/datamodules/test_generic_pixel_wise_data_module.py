"""Segmentation / pixel-regression datamodules: stages, batches, normalisation once, config, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning import LightningModule, Trainer

from terratorch.datamodules import (
    GenericNonGeoPixelwiseRegressionDataModule,
    GenericNonGeoSegmentationDataModule,
)
from terratorch.datasets.demo import make_demo_dataset
from terratorch.datasets.utils import write_geotiff


@pytest.fixture(scope="module")
def seg_demo(tmp_path_factory):
    return make_demo_dataset(
        tmp_path_factory.mktemp("seg"), "segmentation", n_train=4, n_val=3, n_test=2, size=16, num_bands=4
    )


def test_batches_have_contract_shapes_and_dtypes(seg_demo):
    datamodule = seg_demo.make_datamodule(batch_size=2, output_bands=["RED", "BLUE"])
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (2, 2, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (2, 16, 16) and batch["mask"].dtype == torch.int64
    assert isinstance(batch["filename"], list) and batch["filename"][0].endswith("_img.tif")
    assert datamodule.output_bands == ["RED", "BLUE"]
    assert datamodule.dataset_bands == seg_demo.band_names
    assert datamodule.means == [seg_demo.means[2], seg_demo.means[0]]  # picked from the per-dataset-band file
    assert len(datamodule.train_dataloader()) == 2


class _Recorder(LightningModule):
    """Records the images the model receives during validation."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.seen = []

    def validation_step(self, batch, batch_idx):
        self.seen.append(batch["image"].clone())


def test_normalisation_happens_once_after_transfer(seg_demo):
    datamodule = seg_demo.make_datamodule(batch_size=2)
    recorder = _Recorder()
    trainer = Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.validate(recorder, datamodule=datamodule, verbose=False)
    seen = torch.cat(recorder.seen)
    raw = torch.stack([datamodule.val_dataset[i]["image"] for i in range(len(datamodule.val_dataset))])
    means = torch.tensor(seg_demo.means).view(1, -1, 1, 1)
    stds = torch.tensor(seg_demo.stds).view(1, -1, 1, 1)
    torch.testing.assert_close(seen, (raw - means) / stds)
    torch.testing.assert_close(datamodule.normalize(raw[0]), seen[0])


def test_without_statistics_images_pass_unchanged(seg_demo):
    datamodule = seg_demo.make_datamodule(means=None, stds=None)
    image = torch.rand(1, 4, 8, 8)
    assert torch.equal(datamodule.normalize(image), image)
    assert torch.equal(datamodule.on_after_batch_transfer({"image": image}, 0)["image"], image)
    with pytest.raises(ValueError, match="give both means and stds"):
        seg_demo.make_datamodule(stds=None)


def test_stages_build_only_their_splits(seg_demo):
    datamodule = seg_demo.make_datamodule(predict_data_root=str(seg_demo.image_dir))
    datamodule.setup("test")
    assert datamodule.train_dataset is None and len(datamodule.test_dataset) == 2
    datamodule.setup("predict")
    batch = next(iter(datamodule.predict_dataloader()))
    assert set(batch) == {"image", "filename"} and batch["image"].shape[0] == 4  # all 9 chips, batch of 4
    with pytest.raises(ValueError, match="test_data_root is required for stage 'test'"):
        seg_demo.make_datamodule(test_data_root=None).setup("test")
    # As in the reference, no label root means the labels sit beside the images.
    with pytest.raises(
        FileNotFoundError, match="train_label_data_root is not set, so the labels are looked for beside"
    ):
        seg_demo.make_datamodule(train_label_data_root=None).setup("fit")


def test_drop_last_with_too_few_samples_is_an_error(seg_demo):
    datamodule = seg_demo.make_datamodule(batch_size=8)
    datamodule.setup("fit")
    with pytest.raises(ValueError, match=r"train split has 4 samples but batch_size=8 and drop_last=True"):
        datamodule.train_dataloader()
    datamodule = seg_demo.make_datamodule(batch_size=8, drop_last=False)
    datamodule.setup("fit")
    assert len(datamodule.train_dataloader()) == 1


def test_validation_is_optional_during_fit(seg_demo):
    datamodule = seg_demo.make_datamodule(val_data_root=None)
    datamodule.setup("fit")
    assert datamodule.val_dataset is None and datamodule.val_dataloader() == []


def test_band_cross_check_at_init_shows_both_lists(seg_demo):
    with pytest.raises(
        ValueError, match=r"output_bands=\['RED', 'SWIR_2'\], dataset_bands=\['BLUE', 'GREEN'"
    ):
        seg_demo.make_datamodule(output_bands=["RED", "SWIR_2"])
    with pytest.raises(ValueError, match=r"output_bands=\['RED'\] needs dataset_bands"):
        seg_demo.make_datamodule(dataset_bands=None, output_bands=["RED"])


def test_setup_checks_band_count_of_first_file(seg_demo):
    bands = [*seg_demo.band_names, "SWIR_1"]
    datamodule = seg_demo.make_datamodule(dataset_bands=bands, output_bands=["RED"], means=[0.1], stds=[0.1])
    with pytest.raises(ValueError, match=r"chip_0000_img.tif has 4 bands but dataset_bands lists 5"):
        datamodule.setup("fit")


def test_empty_root_error_names_the_config_key(seg_demo, tmp_path):
    datamodule = seg_demo.make_datamodule(train_data_root=str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"^train_data_root: no files matched img_grep='\*_img.tif' in"
    ):
        datamodule.setup("fit")
    datamodule = seg_demo.make_datamodule(val_split=str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFoundError, match=r"^val_split: split file .*missing.txt"):
        datamodule.setup("validate")


def test_stackability_error_lists_sizes(tmp_path):
    for stem, size in (("a", 8), ("b", 6)):
        write_geotiff(tmp_path / f"{stem}_img.tif", np.zeros((1, size, size), dtype=np.float32))
    datamodule = GenericNonGeoSegmentationDataModule(
        batch_size=2, predict_data_root=tmp_path, img_grep="*_img.tif"
    )
    datamodule.setup("predict")
    with pytest.raises(
        ValueError, match=r"different sizes \(a_img.tif: \(1, 8, 8\), b_img.tif: \(1, 6, 6\)\).*batch_size: 1"
    ):
        next(iter(datamodule.predict_dataloader()))


def test_config_with_class_path_transforms_and_band_ranges(seg_demo):
    """The LightningCLI/jsonargparse route: class_path items become albumentations transforms."""
    from jsonargparse import ArgumentParser
    from lightning import LightningDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LightningDataModule, "data")
    init_args = seg_demo.datamodule_kwargs(
        batch_size=2,
        dataset_bands=[[1, 4]],
        output_bands=[3, 1],
        train_transform=[
            {"class_path": "albumentations.VerticalFlip", "init_args": {"p": 1.0}},
            {"class_path": "albumentations.pytorch.ToTensorV2"},
        ],
    )
    config = parser.parse_object(
        {
            "data": {
                "class_path": "terratorch.datamodules.GenericNonGeoSegmentationDataModule",
                "init_args": init_args,
            }
        }
    )
    datamodule = parser.instantiate(config).data
    assert datamodule.dataset_bands == [1, 2, 3, 4] and datamodule.output_bands == [3, 1]
    assert datamodule.means == [seg_demo.means[2], seg_demo.means[0]]
    datamodule.setup("fit")
    flipped = datamodule.train_dataset[0]
    plain = datamodule.val_dataset.__class__(
        seg_demo.image_dir,
        label_data_root=seg_demo.label_dir,
        img_grep="*_img.tif",
        label_grep="*_mask.tif",
        dataset_bands=[1, 2, 3, 4],
        output_bands=[3, 1],
        constant_scale=seg_demo.constant_scale,
        no_data_replace=0.0,
        split=seg_demo.splits["train"],
    )[0]
    torch.testing.assert_close(flipped["image"], plain["image"].flip(-2))
    torch.testing.assert_close(flipped["mask"], plain["mask"].flip(-2))


def test_temporal_batches_and_normalize(tmp_path):
    frames = np.concatenate([np.full((2, 8, 8), 10 * (t + 1), dtype=np.float32) for t in range(3)])
    for stem in ("a", "b"):
        write_geotiff(tmp_path / "img" / f"{stem}.tif", frames)
        write_geotiff(tmp_path / "lbl" / f"{stem}.tif", np.zeros((8, 8), dtype=np.float32))
    datamodule = GenericNonGeoPixelwiseRegressionDataModule(
        batch_size=2,
        train_data_root=tmp_path / "img",
        train_label_data_root=tmp_path / "lbl",
        dataset_bands=["VV", "VH"],
        output_bands=["VH"],
        means=[10.0],
        stds=[10.0],
        expand_temporal_dimension=True,
    )
    datamodule.setup("fit")
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.train_dataloader())), 0)
    assert batch["image"].shape == (2, 1, 3, 8, 8) and batch["mask"].dtype == torch.float32
    assert batch["image"][0, 0, :, 0, 0].tolist() == [0.0, 1.0, 2.0]


# ----------------------------------------------------------------------------- reference options


@pytest.fixture()
def same_dir(tmp_path):
    """Images and labels side by side in one folder (the reference's default layout)."""
    rng = np.random.default_rng(0)
    for i in range(4):
        write_geotiff(tmp_path / f"t{i}_img.tif", rng.integers(0, 100, (5, 8, 8)).astype(np.int16))
        write_geotiff(tmp_path / f"t{i}_mask.tif", np.full((1, 8, 8), i % 3 + 1, dtype=np.uint8))
    (tmp_path / "train.txt").write_text("t0_img.tif\nt1\nt2.png\n")
    return tmp_path


def test_labels_beside_images_and_split_file_options(same_dir):
    kwargs = dict(
        batch_size=1,
        train_data_root=same_dir,
        img_grep="*_img.tif",
        label_grep="*_mask.tif",
        train_split=same_dir / "train.txt",
        num_classes=3,
        reduce_zero_label=True,
    )
    datamodule = GenericNonGeoSegmentationDataModule(**kwargs)
    datamodule.setup("fit")
    # substrings and extension-less matches: t0_img.tif, t1 (in t1_img), t2.png -> t2 (in t2_img)
    names = [p.name for p, _ in datamodule.train_dataset.samples]
    assert names == ["t0_img.tif", "t1_img.tif", "t2_img.tif"]
    assert datamodule.train_dataset.samples[0][1].name == "t0_mask.tif"
    assert datamodule.train_dataset[1]["mask"].unique().tolist() == [1]  # label 2 - 1
    exact = GenericNonGeoSegmentationDataModule(**kwargs, allow_substring_split_file=False)
    exact.setup("fit")
    assert [p.name for p, _ in exact.train_dataset.samples] == ["t0_img.tif"]  # only the exact name (no ext)


def test_predict_bands_differ_from_training_bands(same_dir):
    datamodule = GenericNonGeoSegmentationDataModule(
        batch_size=2,
        predict_data_root=same_dir,
        img_grep="*_img.tif",
        dataset_bands=["BLUE", "GREEN", "RED"],
        output_bands=["RED", "GREEN"],
        predict_dataset_bands=["COASTAL", "BLUE", "GREEN", "RED", "NIR"],
        num_classes=3,
    )
    assert datamodule.predict_output_bands == ["RED", "GREEN"]
    datamodule.setup("predict")
    sample = datamodule.predict_dataset[0]
    assert sample["image"].shape == (2, 8, 8)
    with pytest.raises(ValueError, match="output_bands must be a subset"):
        GenericNonGeoSegmentationDataModule(
            dataset_bands=["BLUE", "RED"],
            output_bands=["RED"],
            predict_dataset_bands=["BLUE", "GREEN"],
            num_classes=3,
        )


def test_regression_reduce_zero_label_and_unsupported_reference_options(same_dir):
    datamodule = GenericNonGeoPixelwiseRegressionDataModule(
        batch_size=1,
        train_data_root=same_dir,
        img_grep="*_img.tif",
        label_grep="*_mask.tif",
        reduce_zero_label=True,
    )
    datamodule.setup("fit")
    assert datamodule.train_dataset[0]["mask"].unique().tolist() == [0.0]  # label 1 - 1
    with pytest.raises(NotImplementedError, match="tortilla_file"):
        GenericNonGeoSegmentationDataModule(num_classes=2, tortilla_file="x.tortilla")
    with pytest.raises(NotImplementedError, match="return_georeference"):
        GenericNonGeoSegmentationDataModule(num_classes=2, return_georeference=True)
