"""Classification, multi-label and scalar-regression datamodules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terratorch.datamodules import (
    GenericNonGeoClassificationDataModule,
    GenericNonGeoMultiLabelClassificationDataModule,
    GenericNonGeoScalarRegressionDataModule,
)
from terratorch.datasets.demo import make_demo_dataset
from terratorch.datasets.utils import write_geotiff


def test_classification_indices_follow_train_folders_in_every_split(tmp_path):
    for split, classes in {"train": ["a", "b", "c"], "val": ["a", "c"]}.items():
        for name in classes:
            write_geotiff(
                tmp_path / split / name / f"{split}_{name}.tif", np.zeros((2, 4, 4), dtype=np.float32)
            )
    datamodule = GenericNonGeoClassificationDataModule(
        batch_size=2, train_data_root=tmp_path / "train", val_data_root=tmp_path / "val", img_grep="*.tif"
    )
    datamodule.setup("fit")
    assert datamodule.class_names == ["a", "b", "c"]
    val_labels = {s["filename"].rsplit("/", 1)[1]: int(s["label"]) for s in datamodule.val_dataset}
    assert val_labels == {"val_a.tif": 0, "val_c.tif": 2}  # not 1: the missing class keeps its index
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (2,)


def test_classification_demo_batches_and_predict(tmp_path):
    info = make_demo_dataset(tmp_path, "classification", n_train=4, n_val=2, n_test=2, size=16)
    datamodule = info.make_datamodule(
        batch_size=2, predict_data_root=str(info.image_dir / info.class_names[0])
    )
    datamodule.setup("test")
    datamodule.setup("predict")
    batch = datamodule.on_after_batch_transfer(next(iter(datamodule.test_dataloader())), 0)
    assert batch["image"].shape == (2, 6, 16, 16) and batch["label"].shape == (2,)
    predict = next(iter(datamodule.predict_dataloader()))
    assert set(predict) == {"image", "filename"}
    with pytest.raises(ValueError, match=r"num_classes=5 but .* defines 3 classes"):
        info.make_datamodule(num_classes=5).setup("fit")


def test_multilabel_batches_use_label_file(tmp_path):
    info = make_demo_dataset(tmp_path, "multilabel", n_train=4, n_val=2, n_test=2, size=16)
    datamodule = info.make_datamodule(batch_size=2)
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["label"].shape == (2, 3) and batch["label"].dtype == torch.float32
    assert set(batch["label"].unique().tolist()) <= {0.0, 1.0}


def test_scalar_regression_per_split_label_file_and_missing_file(tmp_path):
    info = make_demo_dataset(tmp_path, "scalar_regression", n_train=4, n_val=2, n_test=2, size=16)
    override = tmp_path / "val.csv"
    override.write_text("filename,target\n" + "".join(f"{stem},7.5\n" for stem in info.stems["val"]))
    datamodule = info.make_datamodule(batch_size=2, val_label_file=str(override))
    datamodule.setup("fit")
    assert datamodule.val_dataset.targets == [7.5, 7.5]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["label"].shape == (2,) and batch["label"].dtype == torch.float32
    datamodule = GenericNonGeoScalarRegressionDataModule(train_data_root=info.image_dir)
    with pytest.raises(ValueError, match=r"train_label_file \(or label_file\) is required"):
        datamodule.setup("fit")


def test_empty_class_root_names_the_key(tmp_path):
    (tmp_path / "empty").mkdir()
    datamodule = GenericNonGeoClassificationDataModule(train_data_root=tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"^train_data_root: .* has no class folders"):
        datamodule.setup("fit")
    datamodule = GenericNonGeoMultiLabelClassificationDataModule(
        train_data_root=tmp_path / "empty", label_file="x"
    )
    with pytest.raises(FileNotFoundError, match=r"label_file 'x' does not exist"):
        datamodule.setup("fit")
