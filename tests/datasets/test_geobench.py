"""GEO-Bench v1 datasets against GEO-Bench's own reader, plus the layout errors and the demo writer.

``geobench_fixture/`` was written by ``tools/geobench/make_fixture.py`` with the ``geobench``
package (its ``Sample.write``, ``TaskSpecifications.save``, ``Partition.save``) and holds what
GEO-Bench's reader returned for it (``expected.json``/``expected.npz``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from terratorch.datasets import geobench as gb
from terratorch.datasets.geobench_demo import make_geobench_demo

FIXTURE = Path(__file__).parent / "geobench_fixture"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
ARRAYS = np.load(FIXTURE / "expected.npz")
CLASSES = {
    "m-eurosat": gb.MEuroSATNonGeo,
    "m-bigearthnet": gb.MBigEarthNonGeo,
    "m-chesapeake": gb.MChesapeakeLandcoverNonGeo,
}
SPLITS = {"train": "train", "valid": "val", "test": "test"}


@pytest.mark.parametrize("task", sorted(EXPECTED["tasks"]))
def test_matches_geobench_reader(task: str) -> None:
    expected = EXPECTED["tasks"][task]
    cls = CLASSES[task]
    assert gb.list_partitions(FIXTURE / expected["benchmark"] / task) == expected["partitions"]
    # Our band i is GEO-Bench's band whose name sorts at position i.
    geobench_order = [expected["band_names"].index(name) for name in sorted(expected["band_names"])]
    assert len(geobench_order) == len(cls.all_band_names)
    for key, names in expected["splits"].items():
        partition, split = key.split("/")
        dataset = cls(FIXTURE / expected["benchmark"], split=SPLITS[split], partition=partition)
        assert dataset.sample_names == names
        for position, name in enumerate(names):
            sample = dataset[position]
            image = ARRAYS[f"{task}/{name}/image"][geobench_order]
            label = ARRAYS[f"{task}/{name}/label"]
            assert sample["image"].dtype == torch.float32
            np.testing.assert_array_equal(sample["image"].numpy(), image.astype(np.float32))
            if expected["kind"] == "segmentation":
                assert sample["mask"].dtype == torch.long
                np.testing.assert_array_equal(sample["mask"].numpy(), label)
            elif expected["kind"] == "multilabel":
                assert sample["label"].dtype == torch.float32
                np.testing.assert_array_equal(sample["label"].numpy(), label)
            else:
                assert int(sample["label"]) == int(label)


def test_selected_bands_follow_request_order() -> None:
    dataset = gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0", bands=["RED", "GREEN", "BLUE"])
    every = gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0")
    positions = [every.all_band_names.index(band) for band in ("RED", "GREEN", "BLUE")]
    torch.testing.assert_close(dataset[0]["image"], every[0]["image"][positions])


def test_band_stats_match_geobench_normalization() -> None:
    expected = EXPECTED["tasks"]["m-eurosat"]
    means, stds = gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0").band_stats()
    order = sorted(expected["band_names"])
    for ours, name in zip(gb.MEuroSATNonGeo.all_band_names, order, strict=True):
        position = expected["band_names"].index(name)
        assert means[ours] == pytest.approx(expected["normalization"]["means"][position])
        assert stds[ours] == pytest.approx(expected["normalization"]["stds"][position])


def test_labels_fall_back_to_sample_attributes(tmp_path: Path) -> None:
    """Without label_map.json / label_stats.json each file's own label is used (no geobench import)."""
    for task in ("m-eurosat", "m-bigearthnet"):
        shutil.copytree(FIXTURE / "classification_v1.0" / task, tmp_path / task)
    (tmp_path / "m-eurosat" / "label_map.json").unlink()
    (tmp_path / "m-bigearthnet" / "label_stats.json").unlink()
    for cls in (gb.MEuroSATNonGeo, gb.MBigEarthNonGeo):
        copied, original = cls(tmp_path, split="test"), cls(FIXTURE / "classification_v1.0", split="test")
        for position in range(len(original)):
            torch.testing.assert_close(copied[position]["label"], original[position]["label"])
    assert "geobench" not in sys.modules


def test_data_root_conventions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = FIXTURE
    for data_root in (root / "classification_v1.0", root, root / "classification_v1.0" / "m-eurosat"):
        assert gb.MEuroSATNonGeo(data_root).data_directory == root / "classification_v1.0" / "m-eurosat"
    monkeypatch.setenv(gb.GEO_BENCH_ENV, str(root))
    monkeypatch.chdir(tmp_path)
    assert len(gb.MEuroSATNonGeo("./", split="val")) == 2


def test_missing_partition_names_those_found() -> None:
    with pytest.raises(FileNotFoundError, match=r"'0\.01x_train', 'default'"):
        gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0", partition="0.1x_train")


def test_unknown_band_names_the_dataset_bands() -> None:
    with pytest.raises(ValueError, match=r"unknown band 'REDD' \(did you mean \['RED'.*its bands are"):
        gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0", bands=["REDD"])


def test_directory_without_task_specs(tmp_path: Path) -> None:
    (tmp_path / "m-eurosat").mkdir()
    with pytest.raises(gb.GeobenchFormatError, match=r"no task_specs\.pkl.*one holds one <sample>\.hdf5"):
        gb.MEuroSATNonGeo(tmp_path)
    with pytest.raises(FileNotFoundError, match="'m-brick-kiln' not found"):
        gb.MBrickKilnNonGeo(tmp_path)


def test_split_and_transform(tmp_path: Path) -> None:
    import albumentations as A

    with pytest.raises(ValueError, match="unknown split 'valid'"):
        gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0", split="valid")
    segmentation = gb.MChesapeakeLandcoverNonGeo(
        FIXTURE / "segmentation_v1.0", transform=[A.HorizontalFlip(p=1.0)]
    )
    plain = gb.MChesapeakeLandcoverNonGeo(FIXTURE / "segmentation_v1.0")
    flipped, reference = segmentation[0], plain[0]
    torch.testing.assert_close(flipped["image"], reference["image"].flip(-1))
    torch.testing.assert_close(flipped["mask"], reference["mask"].flip(-1))


def test_demo_writes_what_geobench_layout_needs(tmp_path: Path) -> None:
    written = make_geobench_demo(tmp_path, task_names=["m-forestnet", "m-nz-cattle"], n_samples=1, size=8)
    forest = written["m-forestnet"]
    assert forest == tmp_path / "classification_v1.0" / "m-forestnet"
    assert {p.name for p in forest.glob("*.json")} == {
        "default_partition.json",
        "0.01x_train_partition.json",
        "band_stats.json",
    }
    assert (forest / "task_specs.pkl").is_file()
    sample = gb.MNzCattleNonGeo(tmp_path / "segmentation_v1.0", split="test", use_metadata=True)[0]
    assert sample["temporal_coords"].tolist() == [[2020.0, 166.0]]
    assert sample["location_coords"].tolist() == [11.0, -20.5]
    assert "geobench" not in sys.modules
    with pytest.raises(ValueError, match="unknown GEO-Bench task"):
        make_geobench_demo(tmp_path, task_names=["m-eurosatt"])


def test_loading_benchmark_readers_agree_on_the_fixture() -> None:
    """The two readers ``benchmarks/geobench_loading.py`` times read the same number of samples."""
    import importlib.util

    path = Path(__file__).parents[2] / "benchmarks" / "geobench_loading.py"
    spec = importlib.util.spec_from_file_location("geobench_loading", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dataset = gb.MEuroSATNonGeo(FIXTURE / "classification_v1.0", split="train")
    directory = FIXTURE / "classification_v1.0" / "m-eurosat"
    assert module.dataset_pass(dataset) == module.bare_h5py_pass(directory, dataset.sample_names) == 2
