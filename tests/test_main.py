"""The ``terratorch`` dispatcher's own subcommands."""

from __future__ import annotations

import pytest

from terratorch import exit_codes
from terratorch.__main__ import main, run_friendly
from terratorch.cli.errors import TrainingInterrupted, UsageError


def test_list_backbones_prints_metadata(capsys):
    assert main(["list-backbones", "prithvi_eo_v2_6*"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["prithvi_eo_v2_600", "prithvi_eo_v2_600_tl"]
    assert "patch=14" in lines[0] and "dim=1280" in lines[0] and "NIR_NARROW" in lines[0]


def test_list_backbones_without_match_says_what_exists(capsys):
    assert main(["list-backbones", "resnet*"]) == 1
    err = capsys.readouterr().err
    assert "no backbone matches 'resnet*'" in err and "prithvi_eo_v2_300" in err


def test_unknown_subcommand_is_a_usage_error(capsys):
    assert main(["fitt"]) == exit_codes.USAGE
    assert "unknown subcommand 'fitt'. Did you mean 'fit'?" in capsys.readouterr().err


def _raise(error: BaseException) -> None:
    raise error


@pytest.mark.parametrize(
    ("error", "code", "printed"),
    [
        (UsageError("--trainr: unknown key."), exit_codes.USAGE, "error: UsageError: --trainr: unknown key."),
        (FileNotFoundError("data.yaml"), exit_codes.INVALID_INPUT, "error: FileNotFoundError: data.yaml"),
        (TrainingInterrupted("saved last.ckpt"), exit_codes.INTERRUPTED, "interrupted: saved last.ckpt"),
        (KeyboardInterrupt(), exit_codes.INTERRUPTED, "interrupted"),
    ],
)
def test_run_friendly_exit_codes_without_traceback(monkeypatch, capsys, error, code, printed):
    monkeypatch.delenv("TERRATORCH_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        run_friendly(_raise, error, argv=["fit"])
    assert stop.value.code == code
    err = capsys.readouterr().err
    assert printed in err and "Traceback" not in err


def test_run_friendly_reraises_when_debugging(monkeypatch):
    monkeypatch.setenv("TERRATORCH_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        run_friendly(_raise, FileNotFoundError("data.yaml"), argv=["fit"])
    monkeypatch.delenv("TERRATORCH_DEBUG")
    with pytest.raises(FileNotFoundError):
        run_friendly(_raise, FileNotFoundError("data.yaml"), argv=["--verbose", "fit"])
