"""The ``terratorch iterate`` command line (terratorch.iterate.__main__)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from terratorch.iterate.__main__ import main, split_overrides


def test_help_does_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "from terratorch.__main__ import main\n"
        "buf = io.StringIO()\n"
        "with contextlib.redirect_stdout(buf):\n"
        "    try:\n"
        "        main(['iterate', '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules\n"
        "print(buf.getvalue())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for flag in (
        "--config",
        "--hpo",
        "--repeat",
        "--summarize",
        "--parent_run_id",
        "--continue_existing_experiments",
        "--dry-run",
    ):
        assert flag in result.stdout


def test_split_overrides():
    assert split_overrides(["--n_trials", "2", "--defaults.trainer_args.max_epochs=1"]) == [
        ("n_trials", "2"),
        ("defaults.trainer_args.max_epochs", "1"),
    ]
    with pytest.raises(ValueError, match="override --n_trials needs a value"):
        split_overrides(["--n_trials"])
    with pytest.raises(ValueError, match="unexpected argument 'stray'"):
        split_overrides(["stray"])


def test_dry_run_prints_the_plan_and_writes_nothing(helpers, tmp_path, capsys):
    storage = tmp_path / "store"
    config = helpers.write_config(tmp_path / "bench.yaml", helpers.base_config(storage))
    assert (
        main(
            [
                "--config",
                str(config),
                "--dry-run",
                "--n_trials",
                "2",
                "--defaults.trainer_args.max_epochs",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "n_trials 2" in out and '"max_epochs": 1' in out
    assert "task 'seg' (segmentation, SemanticSegmentationTask): optimise val/mIoU (max)" in out
    assert "dry run: config is valid" in out
    assert not storage.exists()


def _fails(argv, capsys) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "run again with --verbose" in err
    return err


def test_missing_config_file(tmp_path, capsys):
    err = _fails(["--config", str(tmp_path / "nope.yaml")], capsys)
    assert "FileNotFoundError: benchmark config" in err and "nope.yaml' does not exist" in err


def test_all_config_problems_reported_together_and_nothing_written(helpers, tmp_path, capsys):
    storage = tmp_path / "store"
    raw = helpers.base_config(storage)
    raw["tasks"][0]["direction"] = "maximize"
    raw["tasks"][0]["metric"] = "val/RMSE"
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    err = _fails(["--config", str(config), "--n_trails", "2"], capsys)
    assert "(3 problems)" in err
    assert "n_trails: unknown key 'n_trails'. Did you mean 'n_trials'?" in err
    assert "tasks[0].direction: 'maximize' is not valid" in err
    assert "tasks[0].metric:" in err and "never logs 'val/RMSE'" in err
    assert not storage.exists()


def test_unreachable_tracking_uri_fails_before_writing(helpers, tmp_path, capsys):
    raw = helpers.base_config(tmp_path / "store")
    raw["storage_uri"] = "http://127.0.0.1:9"
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    err = _fails(["--config", str(config)], capsys)
    assert "storage_uri: tracking server http://127.0.0.1:9 is unreachable" in err
    assert not (tmp_path / "iterate_storage").exists()


def test_bad_registration_module(helpers, tmp_path, capsys):
    (tmp_path / "bad_reg.py").write_text("raise RuntimeError('cannot register my backbone')\n")
    raw = helpers.base_config(tmp_path / "store")
    raw["backbone_registration"] = str(tmp_path / "bad_reg.py")
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    err = _fails(["--config", str(config)], capsys)
    assert "backbone_registration:" in err and "cannot register my backbone" in err


def test_verbose_shows_the_exception(tmp_path):
    from terratorch.iterate.config import ConfigError

    (tmp_path / "bench.yaml").write_text("experiment_name: x\n")
    with pytest.raises(ConfigError, match="tasks: required key is missing"):
        main(["--config", str(tmp_path / "bench.yaml"), "--verbose"])


def test_missing_config_flag(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "--config FILE is required" in capsys.readouterr().err
