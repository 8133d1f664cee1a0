"""The ``terratorch`` dispatcher's own subcommands."""

from __future__ import annotations

from terratorch.__main__ import main


def test_list_backbones_prints_metadata(capsys):
    assert main(["list-backbones", "prithvi_eo_v2_6*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["prithvi_eo_v2_600", "prithvi_eo_v2_600_tl"]
    assert "patch=14" in lines[0] and "dim=1280" in lines[0] and "NIR_NARROW" in lines[0]


def test_list_backbones_without_match_says_what_exists(capsys):
    assert main(["list-backbones", "resnet*"]) == 1
    err = capsys.readouterr().err
    assert "no backbone matches 'resnet*'" in err and "prithvi_eo_v2_300" in err
