"""``fit``'s default checkpointing: ``last.ckpt`` is the last epoch, the best one is separate, Ctrl-C saves.

Real fits on tiny demo data (32 px chips, the 2-stage CNN of ``tests/test_cli_tools.py``). The
monitored metric is held constant by a task subclass, so the best checkpoint deterministically
stays at epoch 0 while training goes on: the case where ``last.ckpt`` used to follow the best one.
SIGINT/SIGTERM are real signals sent to a ``terratorch fit`` subprocess.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from tests.test_cli_tools import make_config, write_config
from tests.tiny_backbones import tiny_cnn_module

from terratorch import exit_codes
from terratorch.cli.lightning import build_lightning_cli

CONSTANT_TASK = """
import time
from pathlib import Path

from terratorch.tasks import SemanticSegmentationTask


class ConstantMonitorTask(SemanticSegmentationTask):
    # default_checkpoint() watches task.monitor; a constant never improves after epoch 0
    monitor = "val/constant"

    def on_validation_epoch_end(self):
        super().on_validation_epoch_end()
        self.log("val/constant", 1.0)


class InterruptibleTask(ConstantMonitorTask):
    # from the first step of epoch 1 on: mark readiness, then train slowly so Ctrl-C lands mid-epoch
    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.global_step >= 3:
            Path("training_mid_epoch").touch()
            time.sleep(0.5)
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """``tmp_path`` as working directory, with a ``ckpt_test_modules`` package (backbone and task)."""
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    monkeypatch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
    package = tmp_path / "ckpt_test_modules"
    package.mkdir()
    (package / "__init__.py").write_text("from . import backbones, tasks\n")
    (package / "backbones.py").write_text(tiny_cnn_module("cli_test_cnn"))
    (package / "tasks.py").write_text(CONSTANT_TASK)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("ckpt_test_modules")]:
        del sys.modules[name]
    TERRATORCH_BACKBONE_REGISTRY.unregister("cli_test_cnn")


def constant_config(demo: Any, workdir: Path, **trainer: Any) -> str:
    """A fit config whose task's monitored metric never improves."""
    config = make_config(demo, workdir, custom_modules_path="ckpt_test_modules", deploy_config_file=False)
    config["model"]["class_path"] = "ckpt_test_modules.tasks.ConstantMonitorTask"
    config["trainer"].update(trainer)
    return write_config(workdir / "fit.yaml", config)


def saved(path: str | Path) -> dict[str, Any]:
    """A checkpoint this test wrote (trusted, so full unpickling is fine)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def test_last_ckpt_is_the_last_epoch_and_resume_continues(demo, workdir):
    config = constant_config(demo, workdir, max_epochs=3)
    cli = build_lightning_cli(["fit", "-c", config])
    checkpoint = cli.trainer.checkpoint_callback
    folder = Path(checkpoint.dirpath)
    assert sorted(p.name for p in folder.glob("*.ckpt")) == ["best-epoch=00.ckpt", "last.ckpt"]
    assert Path(checkpoint.best_model_path).name == "best-epoch=00.ckpt"
    last = saved(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 6)  # 3 epochs of 2 steps
    assert (
        saved(folder / "best-epoch=00.ckpt")["epoch"],
        saved(checkpoint.best_model_path)["global_step"],
    ) == (
        0,
        2,
    )

    resumed = build_lightning_cli(
        ["fit", "-c", config, "--trainer.max_epochs", "5", "--ckpt_path", str(folder / "last.ckpt")]
    )
    assert resumed.trainer.global_step == 10  # continued from step 6, not from 0 or 2
    assert resumed.trainer.current_epoch == 5
    last = saved(folder / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (4, 10)
    assert Path(resumed.trainer.checkpoint_callback.best_model_path).name == "best-epoch=00.ckpt"


def _sigint_as_in_a_terminal() -> None:
    """Child of a suite started in the background (SIGINT inherited as ignored): Ctrl-C's default again."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_saves_last_checkpoint_and_exits_130(demo, workdir, signum):
    config = constant_config(demo, workdir, max_epochs=100)
    text = Path(config).read_text().replace("ConstantMonitorTask", "InterruptibleTask")
    Path(config).write_text(text)
    marker, last = workdir / "training_mid_epoch", workdir / "run" / "checkpoints" / "last.ckpt"
    env = {**os.environ, "TERRATORCH_NO_AUTOLOAD": "1", "PYTHONUNBUFFERED": "1"}
    with (workdir / "stderr.txt").open("w") as log:  # a file, not a pipe that could fill up
        process = subprocess.Popen(
            [sys.executable, "-m", "terratorch", "fit", "-c", config],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=_sigint_as_in_a_terminal,
        )
        try:
            deadline = time.monotonic() + 120
            while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert marker.exists(), "training never reached epoch 1"
            process.send_signal(signum)
            process.wait(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    err = (workdir / "stderr.txt").read_text()
    assert process.returncode == exit_codes.INTERRUPTED, err
    assert "Traceback" not in err
    assert f"last checkpoint saved to {last}" in err, err
    interrupted = saved(last)
    assert interrupted["global_step"] >= 3  # the interrupted step, not epoch 0's save at step 2
    assert saved(workdir / "run" / "checkpoints" / "best-epoch=00.ckpt")["global_step"] == 2


def test_reference_default_checkpointing_keeps_a_last_epoch_checkpoint(demo, workdir):
    """``add_default_checkpointing_config``'s full checkpoint also keeps ``last.ckpt`` at the last epoch."""
    from jsonargparse import Namespace

    from terratorch.cli.lightning import add_default_checkpointing_config

    config = Namespace(subcommand="fit")
    config["fit.trainer.enable_checkpointing"] = True
    config["fit.trainer.callbacks"] = None
    callbacks = add_default_checkpointing_config(config)["fit.trainer.callbacks"]
    assert [c.init_args.get("save_last") for c in callbacks] == [True, None]
    for callback in callbacks:  # the monitored metric is the task's constant one
        callback.init_args.monitor = "val/constant"
    fit = make_config(demo, workdir, custom_modules_path="ckpt_test_modules", deploy_config_file=False)
    fit["model"]["class_path"] = "ckpt_test_modules.tasks.ConstantMonitorTask"
    fit["trainer"].update(max_epochs=2, callbacks=[c.as_dict() for c in callbacks])
    cli = build_lightning_cli(["fit", "-c", write_config(workdir / "ref.yaml", fit)])
    folder = Path(cli.trainer.checkpoint_callback.dirpath)
    assert sorted(p.name for p in folder.glob("*.ckpt")) == [
        "epoch=0.ckpt",
        "epoch=0_state_dict.ckpt",
        "last.ckpt",
    ]
    assert saved(folder / "last.ckpt")["epoch"] == 1
