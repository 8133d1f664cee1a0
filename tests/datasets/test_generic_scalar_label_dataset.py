"""Classification folders, multi-label and scalar-regression CSV datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from terratorch.datasets import (
    GenericNonGeoClassificationDataset,
    GenericNonGeoMultiLabelClassificationDataset,
    GenericNonGeoScalarRegressionDataset,
)
from terratorch.datasets.utils import write_geotiff


def chip(value: int = 1) -> np.ndarray:
    return np.full((3, 4, 4), value, dtype=np.int16)


@pytest.fixture
def class_root(tmp_path):
    for name, stems in {"water": ["w1", "w2"], "forest": ["f1"], "urban": ["u1"]}.items():
        for stem in stems:
            write_geotiff(tmp_path / "data" / name / f"{stem}.tif", chip())
    (tmp_path / "data" / "notes.txt").write_text("a file at class level is ignored")
    return tmp_path / "data"


def test_classes_are_sorted_folder_names(class_root):
    ds = GenericNonGeoClassificationDataset(class_root, img_grep="*.tif", dataset_bands=[1, 2, 3])
    assert ds.classes == ["forest", "urban", "water"]
    labels = {s["filename"].rsplit("/", 1)[1]: int(s["label"]) for s in ds}
    assert labels == {"f1.tif": 0, "u1.tif": 1, "w1.tif": 2, "w2.tif": 2}
    sample = ds[0]
    assert sample["label"].dtype == torch.int64 and sample["label"].shape == ()
    assert sample["image"].shape == (3, 4, 4)


def test_given_class_names_keep_indices_when_a_class_is_missing(class_root):
    ds = GenericNonGeoClassificationDataset(
        class_root, img_grep="*.tif", class_names=["a", "forest", "urban", "water"]
    )
    assert {int(s["label"]) for s in ds} == {1, 2, 3}
    with pytest.raises(ValueError, match=r"class folder\(s\) \['water'\] that are not among"):
        GenericNonGeoClassificationDataset(class_root, img_grep="*.tif", class_names=["forest", "urban"])


def test_num_classes_mismatch_and_empty_roots(class_root, tmp_path):
    with pytest.raises(ValueError, match=r"num_classes=5 but .* defines 3 classes"):
        GenericNonGeoClassificationDataset(class_root, img_grep="*.tif", num_classes=5)
    with pytest.raises(FileNotFoundError, match=r"no files matched img_grep='\*.png'"):
        GenericNonGeoClassificationDataset(class_root, img_grep="*.png")
    (tmp_path / "flat").mkdir()
    with pytest.raises(FileNotFoundError, match="no class folders"):
        GenericNonGeoClassificationDataset(tmp_path / "flat")


def test_classification_split_file(class_root, tmp_path):
    (tmp_path / "split.txt").write_text("w2\nu1\n")
    ds = GenericNonGeoClassificationDataset(class_root, img_grep="*.tif", split=tmp_path / "split.txt")
    assert sorted(int(t) for t in ds.targets) == [1, 2]


@pytest.fixture
def csv_root(tmp_path):
    for index in range(3):
        write_geotiff(tmp_path / "img" / f"s{index}.tif", chip(index))
    (tmp_path / "multi.csv").write_text(
        "filename,cloud,snow\ns0.tif,1,0\ns1,0,1\ns2.tif,1,1\nother.tif,0,0\n"
    )
    (tmp_path / "scalar.csv").write_text("filename,biomass,height\ns0,1.5,10\ns1,2.5,20\ns2,3.5,30\n")
    return tmp_path


def test_multilabel_targets_from_csv(csv_root):
    ds = GenericNonGeoMultiLabelClassificationDataset(
        csv_root / "img", csv_root / "multi.csv", img_grep="*.tif"
    )
    assert ds.classes == ["cloud", "snow"]
    assert [s["label"].tolist() for s in ds] == [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]
    assert ds[0]["label"].dtype == torch.float32
    with pytest.raises(ValueError, match=r"num_classes=3 but label_file .* has 2 class columns"):
        GenericNonGeoMultiLabelClassificationDataset(csv_root / "img", csv_root / "multi.csv", num_classes=3)


def test_scalar_regression_targets_and_column(csv_root):
    ds = GenericNonGeoScalarRegressionDataset(csv_root / "img", csv_root / "scalar.csv", img_grep="*.tif")
    assert [float(s["label"]) for s in ds] == [1.5, 2.5, 3.5]
    assert ds[0]["label"].dtype == torch.float32 and ds[0]["label"].shape == ()
    ds = GenericNonGeoScalarRegressionDataset(
        csv_root / "img", csv_root / "scalar.csv", target_column="height"
    )
    assert [float(t) for t in ds.targets] == [10.0, 20.0, 30.0]
    with pytest.raises(ValueError, match=r"target_column 'heigth' is not in .*Did you mean 'height'\?"):
        GenericNonGeoScalarRegressionDataset(
            csv_root / "img", csv_root / "scalar.csv", target_column="heigth"
        )


def test_csv_missing_rows_and_bad_values(csv_root):
    (csv_root / "short.csv").write_text("filename,v\ns0,1\n")
    with pytest.raises(ValueError, match=r"short.csv has no row for \['s1.tif', 's2.tif'\]"):
        GenericNonGeoScalarRegressionDataset(csv_root / "img", csv_root / "short.csv")
    (csv_root / "bad.csv").write_text("filename,v\ns0,1\ns1,abc\ns2,2\n")
    with pytest.raises(ValueError, match=r"row \['abc'\] has no number"):
        GenericNonGeoScalarRegressionDataset(csv_root / "img", csv_root / "bad.csv")
    with pytest.raises(FileNotFoundError, match=r"label_file .*missing\.csv"):
        GenericNonGeoScalarRegressionDataset(csv_root / "img", csv_root / "missing.csv")
