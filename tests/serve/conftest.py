"""A tiny fitted segmentation model (config + Lightning checkpoint) and a running-server helper.

The model is trained in-process for one epoch on four 32 px demo chips (a 2-stage CNN registered
from a custom-modules folder), so building it takes seconds; servers run as ``terratorch serve``
subprocesses or as uvicorn in a thread, on a free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.tiny_backbones import tiny_cnn_module

from terratorch.datasets.demo import DemoDataset, make_demo_dataset

BACKBONE = "serve_test_cnn"
PACKAGE = "serve_test_modules"
BACKBONE_MODULE = tiny_cnn_module(BACKBONE)


@dataclass
class FittedModel:
    """What the ``fitted`` fixture made.

    Attributes:
        root: Its scratch folder (data, config, run outputs).
        demo: The demo dataset (``demo.image_dir`` holds 32 px 6-band chips).
        config: The fit config (with ``predict_data_root`` = ``demo.image_dir``).
        ckpt: The Lightning checkpoint written by ``fit``.
    """

    root: Path
    demo: DemoDataset
    config: Path
    ckpt: Path

    def inputs(self) -> list[Path]:
        """The demo chips, sorted."""
        return sorted(self.demo.image_dir.glob(self.demo.img_grep))


def fit_config(demo: DemoDataset, root: Path) -> dict[str, Any]:
    """A complete fit config on the demo chips with the test backbone (one quick epoch)."""
    return {
        "seed_everything": 0,
        "custom_modules_path": str(root / PACKAGE),
        "trainer": {
            "max_epochs": 1,
            "accelerator": "cpu",
            "default_root_dir": str(root / "run"),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
        },
        "data": {
            "class_path": "GenericNonGeoSegmentationDataModule",
            "init_args": demo.datamodule_kwargs(
                batch_size=2, num_workers=0, predict_data_root=str(demo.image_dir)
            ),
        },
        "model": {
            "class_path": "SemanticSegmentationTask",
            "init_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    "backbone": BACKBONE,
                    "decoder": "FCNDecoder",
                    "decoder_channels": 8,
                    "decoder_num_convs": 1,
                    "num_classes": 3,
                },
                "ignore_index": -1,
                "plot_on_val": False,
            },
        },
    }


@pytest.fixture(scope="session")
def fitted(tmp_path_factory) -> Iterator[FittedModel]:
    """Fit the tiny model once per session; unregister its backbone afterwards."""
    from terratorch.cli.lightning import build_lightning_cli
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    root = tmp_path_factory.mktemp("serve")
    package = root / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "backbones.py").write_text(BACKBONE_MODULE)
    demo = make_demo_dataset(root / "demo", "segmentation", n_train=4, n_val=2, n_test=2, size=32)
    config = root / "fit.yaml"
    config.write_text(yaml.safe_dump(fit_config(demo, root)))
    cli = build_lightning_cli(["fit", "-c", str(config)])
    ckpt = Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt"
    assert ckpt.is_file()
    yield FittedModel(root, demo, config, ckpt)
    for name in [m for m in sys.modules if m.startswith(PACKAGE)]:
        del sys.modules[name]
    TERRATORCH_BACKBONE_REGISTRY.unregister(BACKBONE)


_LISTENING = re.compile(r"on http://([^\s:]+|\[[^\]]+\]):(\d+)")


class ServerProcess:
    """A ``terratorch serve`` subprocess; :attr:`url` once it answers ``/health``."""

    def __init__(self, args: list[str], cwd: Path, timeout: float = 120.0) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", TERRATORCH_NO_AUTOLOAD="1")
        command = [sys.executable, "-m", "terratorch", "serve", *args]
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.url = self._wait_listening(timeout)
        wait_healthy(self.url, timeout, self.process)

    def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr.append(line)

    def _wait_listening(self, timeout: float) -> str:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = _LISTENING.search(line)
            if match:
                return f"http://{match.group(1)}:{match.group(2)}"
        self.process.kill()
        raise AssertionError(f"terratorch serve did not start:\n{''.join(self.stderr)[-4000:]}")

    def stop(self, sig: int | None = None) -> int:
        """Stop the server (SIGTERM by default) and return its exit code."""
        import signal

        if self.process.poll() is None:
            self.process.send_signal(sig or signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def wait_healthy(url: str, timeout: float, process: Any = None) -> None:
    """Poll ``GET /health`` until it answers ok (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).json() == {"status": "ok"}:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url}/health did not answer within {timeout} s")


class ThreadServer:
    """uvicorn serving ``app`` in a background thread on a free port (for in-process app tests)."""

    def __init__(self, app: Any, timeout: float = 60.0) -> None:
        import uvicorn

        from terratorch.serve.__main__ import bind_socket

        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        wait_healthy(self.url, timeout)

    def stop(self) -> None:
        """Ask uvicorn to shut down (runs the app's shutdown) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the uvicorn thread did not stop"
