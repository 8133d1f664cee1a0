"""Band parsing, statistics files, file pairing, split files and raw reads."""

from __future__ import annotations

import numpy as np
import pytest

from terratorch.datasets import HLSBands
from terratorch.datasets.utils import (
    GeoTIFFError,
    expand_bands,
    file_key,
    find_files,
    load_float_list,
    nodata_mask,
    pair_images_labels,
    read_raster,
    read_split_file,
    select_band_indices,
    write_geotiff,
)


def test_expand_bands_mixes_names_ints_ranges_and_enums():
    assert expand_bands(["BLUE", HLSBands.RED, 7, [2, 4], (9, 9)]) == ["BLUE", "RED", 7, 2, 3, 4, 9]
    assert expand_bands(None) is None


@pytest.mark.parametrize("bad", [[[4, 2]], [3.5], [[1, 2, 3]], [True]])
def test_expand_bands_rejects_bad_items(bad):
    with pytest.raises(ValueError, match="output_bands"):
        expand_bands(bad, key="output_bands")


def test_select_band_indices_keeps_output_order():
    assert select_band_indices(["BLUE", "GREEN", "RED", 4], ["RED", "BLUE", 4]) == [2, 0, 3]


def test_select_band_indices_not_subset_shows_both_lists_and_close_names():
    with pytest.raises(ValueError, match=r"not found: \['NIR'\].*NIR_NARROW.*output_bands=.*dataset_bands="):
        select_band_indices(["BLUE", "NIR_NARROW"], ["BLUE", "NIR"])


def test_load_float_list_from_list_and_files(tmp_path):
    assert load_float_list([1, "2.5"], key="means") == [1.0, 2.5]
    (tmp_path / "m.txt").write_text("0.1\n# comment\n\n0.2  # green\n")
    (tmp_path / "m.yaml").write_text("[0.3, 0.4]\n")
    (tmp_path / "m.json").write_text("[0.5, 0.6]")
    (tmp_path / "block.yaml").write_text("- 1\n- 2\n")
    assert load_float_list(str(tmp_path / "m.txt"), key="means") == [0.1, 0.2]
    assert load_float_list(tmp_path / "m.yaml", key="means") == [0.3, 0.4]
    assert load_float_list(tmp_path / "m.json", key="means") == [0.5, 0.6]
    assert load_float_list(tmp_path / "block.yaml", key="means") == [1.0, 2.0]


def test_load_float_list_errors_name_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stds: file .*nope\.txt"):
        load_float_list(str(tmp_path / "nope.txt"), key="stds")
    (tmp_path / "bad.txt").write_text("0.1\nabc\n")
    with pytest.raises(ValueError, match=r"means: .*bad\.txt must hold one number per band"):
        load_float_list(tmp_path / "bad.txt", key="means")
    (tmp_path / "map.yaml").write_text("a: 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_float_list(tmp_path / "map.yaml", key="means")


def test_file_key_uses_the_star_part():
    from pathlib import Path

    assert file_key(Path("a/scene_1_img.tif"), "*_img.tif") == "scene_1"
    assert file_key(Path("a/scene_1.mask.tif"), "*.mask.tif") == "scene_1"
    assert file_key(Path("scene_1.mask.tif"), "*.tif*") == "scene_1"  # fallback: stem before first dot


def test_pairing_by_key_not_position(tmp_path):
    for name in ["b_img.tif", "a_img.tif", "b_mask.tif", "a_mask.tif"]:
        (tmp_path / name).touch()
    images, labels = find_files(tmp_path, "*_img.tif"), find_files(tmp_path, "*_mask.tif")
    pairs = pair_images_labels(images, labels, img_grep="*_img.tif", label_grep="*_mask.tif")
    assert [(i.name, m.name) for i, m in pairs] == [("a_img.tif", "a_mask.tif"), ("b_img.tif", "b_mask.tif")]


def test_pairing_reports_unmatched_images(tmp_path):
    for name in ["a_img.tif", "b_img.tif", "a_mask.tif"]:
        (tmp_path / name).touch()
    images, labels = find_files(tmp_path, "*_img.tif"), find_files(tmp_path, "*_mask.tif")
    with pytest.raises(ValueError, match=r"2 images vs 1 labels.*\['b_img.tif'\]"):
        pair_images_labels(images, labels, img_grep="*_img.tif", label_grep="*_mask.tif")


def test_find_files_empty_says_which_glob_where(tmp_path):
    (tmp_path / "x.png").touch()
    with pytest.raises(FileNotFoundError, match=r"train_data_root: no files matched img_grep='\*.tif' in"):
        find_files(tmp_path, "*.tif", key="train_data_root")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_files(tmp_path / "missing", "*.tif")


def test_read_split_file(tmp_path):
    (tmp_path / "s.txt").write_text("a\n\n b \n")
    assert read_split_file(tmp_path / "s.txt") == {"a", "b"}
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_split_file(tmp_path / "empty.txt", key="val_split")
    with pytest.raises(FileNotFoundError, match="val_split"):
        read_split_file(tmp_path / "nope.txt", key="val_split")


def test_nodata_mask_value_and_nan():
    data = np.array([[1.0, np.nan], [-9999.0, 2.0]], dtype=np.float32)
    assert nodata_mask(data, -9999.0).tolist() == [[False, True], [True, False]]
    assert nodata_mask(np.ones((2, 2), dtype=np.int16), None) is None
    assert nodata_mask(np.array([0, 255], dtype=np.uint8), 255.0).tolist() == [False, True]


def test_read_raster_reads_selected_bands_and_nodata(tmp_path):
    data = np.arange(3 * 4 * 5, dtype=np.int16).reshape(3, 4, 5)
    data[1, 0, 0] = -1
    path = write_geotiff(tmp_path / "x.tif", data, nodata=-1)
    read = read_raster(path, lambda count: [3, 2])
    assert read.count == 3
    np.testing.assert_array_equal(read.data, data[[2, 1]])
    assert read.nodata[1, 0, 0] and read.nodata.sum() == 1


def test_read_raster_corrupt_file_names_it(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage" * 10)
    with pytest.raises(GeoTIFFError, match=r"broken\.tif"):
        read_raster(bad)


def test_filter_split_reference_options():
    from pathlib import Path

    from terratorch.datasets.utils import filter_split

    files = [Path(f"/d/{n}") for n in ("a_img.tif", "ab_img.tif", "b.tif", "c.v2.tif")]
    split = {"a_img.jpg", "b", "c.v2"}
    names = lambda **kw: [p.name for p in filter_split(files, "*", split, **kw)]  # noqa: E731
    # defaults of the datamodules: extensions ignored, entries are substrings of the names
    assert names(ignore_extensions=True, allow_substring=True) == [
        "a_img.tif",
        "ab_img.tif",
        "b.tif",
        "c.v2.tif",
    ]
    # "c.v2" loses its last extension too ("c"), so only the substring mode finds c.v2.tif
    assert names(ignore_extensions=True, allow_substring=False) == ["a_img.tif", "b.tif"]
    assert names(ignore_extensions=False, allow_substring=False) == []
    assert names(ignore_extensions=False, allow_substring=True) == ["ab_img.tif", "b.tif", "c.v2.tif"]
    assert [p.name for p in filter_split(files, "*", None, ignore_extensions=True)] == [p.name for p in files]


def test_find_files_lists_broken_links_but_not_directories(tmp_path):
    (tmp_path / "a_img.tif").write_bytes(b"")
    (tmp_path / "b_img.tif").symlink_to(tmp_path / "missing.tif")
    (tmp_path / "c_img.tif").mkdir()
    assert [p.name for p in find_files(tmp_path, "*_img.tif")] == ["a_img.tif", "b_img.tif"]
