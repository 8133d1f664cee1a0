"""Exit codes and error messages of the LightningCLI subcommands (``docs/cli.md``).

0 ok, 1 invalid input, 2 usage, 130 interrupted (the SIGINT case is in ``test_checkpoints.py``);
no traceback unless ``--verbose`` or ``TERRATORCH_DEBUG=1``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from tests.test_cli_tools import make_config, run_cli, write_config
from tests.tiny_backbones import tiny_cnn_module

from terratorch import exit_codes
from terratorch.__main__ import main as terratorch_main
from terratorch.cli.errors import ConfigError


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """``tmp_path`` as working directory with the ``cli_test_cnn`` backbone in ``cli_test_modules``."""
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    monkeypatch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
    monkeypatch.delenv("TERRATORCH_DEBUG", raising=False)
    package = tmp_path / "cli_test_modules"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backbones.py").write_text(tiny_cnn_module("cli_test_cnn"))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cli_test_modules")]:
        del sys.modules[name]
    TERRATORCH_BACKBONE_REGISTRY.unregister("cli_test_cnn")


@pytest.fixture
def config(demo, workdir) -> str:
    return write_config(workdir / "fit.yaml", make_config(demo, workdir))


def test_unknown_flag_is_a_usage_error(config, capsys):
    code, _, err = run_cli(["fit", "-c", config, "--trainr.max_epochs", "1"], capsys)
    assert code == exit_codes.USAGE
    assert "trainr: unknown key. Did you mean 'trainer'?" in err and "Traceback" not in err


def test_unknown_config_key_is_invalid_input(demo, workdir, capsys):
    path = write_config(workdir / "bad.yaml", make_config(demo, workdir, trainr={"max_epochs": 1}))
    code, _, err = run_cli(["fit", "-c", path], capsys)
    assert code == exit_codes.INVALID_INPUT
    assert "trainr: unknown key" in err and "Traceback" not in err


def _zip_without_pickle(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.write_bytes(os.urandom(4096)),
        lambda p: p.write_text("epoch: 3\nthis is a text file\n"),
        _zip_without_pickle,
    ],
    ids=["random-bytes", "text", "other-zip"],
)
def test_ckpt_path_that_is_not_a_checkpoint(config, workdir, capsys, write):
    bogus = workdir / "model.ckpt"
    write(bogus)
    code, _, err = run_cli(["validate", "-c", config, "--ckpt_path", str(bogus)], capsys)
    assert code == exit_codes.INVALID_INPUT
    assert f"not a PyTorch/Lightning checkpoint: {bogus}" in err
    assert "weights_only" not in err and "Traceback" not in err


def test_python_inference_rejects_a_non_checkpoint(tmp_path):
    from terratorch.cli.inference import network_weights

    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"\x80\x02" + os.urandom(256))  # looks like a legacy pickle, is not one
    with pytest.raises(ConfigError, match="not a PyTorch/Lightning checkpoint") as caught:
        network_weights(bogus)
    assert "weights_only" not in str(caught.value)


class Opaque:
    """A class torch's weights-only loading refuses."""


def test_checkpoint_with_arbitrary_objects_is_refused_without_suggesting_unsafe_loading(tmp_path):
    from terratorch.cli.inference import network_weights

    path = tmp_path / "opaque.ckpt"
    torch.save({"state_dict": {}, "extra": Opaque()}, path)
    with pytest.raises(ConfigError, match=r"holds a Python object of type .*Opaque") as caught:
        network_weights(path)
    assert "weights_only" not in str(caught.value)


def test_debug_env_shows_the_traceback(config, workdir, monkeypatch):
    bogus = workdir / "model.ckpt"
    bogus.write_text("text")
    monkeypatch.setenv("TERRATORCH_DEBUG", "1")
    with pytest.raises(ConfigError, match="not a PyTorch/Lightning checkpoint"):
        terratorch_main(["validate", "-c", config, "--ckpt_path", str(bogus)])


def _limit_file_size() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (16_384, 16_384))  # config files fit, checkpoints do not


def test_write_error_names_the_file(config, workdir):
    """A real "File too large" (RLIMIT_FSIZE) while ``fit`` saves its checkpoint names the checkpoint."""
    result = subprocess.run(
        [sys.executable, "-m", "terratorch", "fit", "-c", config, "--deploy_config_file", "false"],
        cwd=workdir,
        env={**os.environ, "TERRATORCH_NO_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size,
        timeout=300,
    )
    assert result.returncode == exit_codes.INVALID_INPUT, result.stderr
    checkpoints = workdir / "run" / "checkpoints"
    assert f"could not write the checkpoint {checkpoints}" in result.stderr, result.stderr
    assert "File too large" in result.stderr and "Traceback" not in result.stderr
