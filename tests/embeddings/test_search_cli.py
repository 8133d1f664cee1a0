"""``terratorch embeddings search`` end to end: GeoJSON out, exit codes, messages."""

from __future__ import annotations

import json

import pytest

from terratorch import exit_codes
from terratorch.__main__ import main as terratorch_main
from terratorch.embeddings.__main__ import main


def test_query_file_writes_geojson_with_itself_first(embeddings, tmp_path, capsys):
    out = tmp_path / "results.geojson"
    code = terratorch_main(
        [
            "embeddings",
            "search",
            "--index",
            str(embeddings.path),
            "--query-file",
            "chip_004",
            "-k",
            "3",
            "--out",
            str(out),
        ]
    )
    assert code == exit_codes.OK
    result = json.loads(out.read_text())
    assert result["type"] == "FeatureCollection" and len(result["features"]) == 3
    first = result["features"][0]
    assert first["type"] == "Feature" and first["geometry"]["type"] == "Polygon"
    assert first["properties"]["id"] == "chip_004" and first["properties"]["layer"] == 0
    assert first["properties"]["score"] == pytest.approx(1.0, abs=1e-5)
    assert "3 results written to" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["faiss", "numpy"])
def test_query_geometry_to_stdout(embeddings, capsys, backend):
    inside = embeddings.footprints[7].buffer(-10).wkt
    code = main(
        [
            "search",
            "--index",
            str(embeddings.path.parent),
            "--query-geometry",
            inside,
            "-k",
            "2",
            "--backend",
            backend,
        ]
    )
    assert code == exit_codes.OK
    result = json.loads(capsys.readouterr().out)
    assert result["features"][0]["properties"]["id"] == "chip_007"
    assert result["query"]["backend"] == backend


def test_query_by_path_of_the_input_file(embeddings, capsys):
    assert (
        main(["search", "--index", str(embeddings.path), "--query-file", "/data/chip_001.tif", "-k", "1"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["features"][0]["properties"]["id"] == "chip_001"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--query-file", "chip_0004"], exit_codes.INVALID_INPUT, "Did you mean 'chip_004'"),
        (["--query-geometry", "POINT (0"], exit_codes.INVALID_INPUT, "cannot parse"),
        (["--query-file", "chip_004", "-k", "0"], exit_codes.USAGE, "-k must be at least 1"),
        ([], exit_codes.USAGE, "one of the arguments --query-file --query-geometry is required"),
        (["--query-file", "a", "--query-geometry", "POINT (0 0)"], exit_codes.USAGE, "not allowed with"),
        (["--query-file", "chip_004", "--metric", "dot"], exit_codes.USAGE, "invalid choice: 'dot'"),
    ],
)
def test_bad_input_exit_codes(embeddings, capsys, args, code, message):
    assert main(["search", "--index", str(embeddings.path), *args]) == code
    assert message in capsys.readouterr().err


def test_missing_index(tmp_path, capsys):
    assert (
        main(["search", "--index", str(tmp_path / "nothing*.parquet"), "--query-file", "a"])
        == exit_codes.INVALID_INPUT
    )
    assert "--index: no embeddings file or folder" in capsys.readouterr().err


def test_help_exits_ok(capsys):
    assert main(["search", "--help"]) == exit_codes.OK
    assert "--query-geometry" in capsys.readouterr().out
