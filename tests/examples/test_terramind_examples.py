"""The ``examples/terramind/*.yaml`` configs run through the ``terratorch`` CLI on generated demo data.

As in ``test_finetune_examples.py``, each test works in a scratch directory with ``examples/``
linked and the two-modality demo data (S2L2A + S1GRD) written to ``data/demo/multimodal``, the
relative paths the configs use. The multimodal segmentation example must learn: its val mIoU
clearly beats predicting the majority class everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tests.examples.test_finetune_examples import majority_class_miou

from terratorch.cli_tools import build_lightning_cli
from terratorch.datasets import make_multimodal_demo

ROOT = Path(__file__).resolve().parents[2]
MULTIMODAL = "examples/terramind/multimodal_segmentation.yaml"
TIM = "examples/terramind/tim_segmentation.yaml"


def scratch(base: Path, **sizes: int) -> Path:
    """``base`` with ``examples`` linked and the multimodal demo data under ``data/demo/multimodal``."""
    if not (base / "examples").exists():
        (base / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    make_multimodal_demo(base / "data" / "demo" / "multimodal", **sizes)
    return base


@pytest.fixture(scope="module")
def multimodal_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scratch(tmp_path_factory.mktemp("terramind"), n_train=32, n_val=8, n_test=4, size=16)


def _in(base: Path, args: list[str]):
    previous = Path.cwd()
    os.chdir(base)
    try:
        return build_lightning_cli(args)
    finally:
        os.chdir(previous)


def test_multimodal_example_beats_majority_baseline(multimodal_data: Path) -> None:
    cli = _in(multimodal_data, ["fit", "-c", MULTIMODAL, "--trainer.max_epochs", "5"])
    assert type(cli.model.model.encoder).__name__ == "TerraMindViT"
    miou = float(cli.trainer.callback_metrics["val/mIoU"])
    baseline = majority_class_miou(multimodal_data / "data" / "demo" / "multimodal")
    assert miou >= baseline + 0.15, f"val/mIoU {miou:.3f} vs majority-class baseline {baseline:.3f}"
    checkpoint = multimodal_data / "output" / "terramind" / "logs" / "run" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    tested = _in(multimodal_data, ["test", "-c", MULTIMODAL, "--ckpt_path", str(checkpoint)])
    assert float(tested.trainer.callback_metrics["test/mIoU"]) > baseline


def test_tim_example_builds_and_trains_a_step(multimodal_data: Path) -> None:
    short = [
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "1",
        "--trainer.limit_val_batches",
        "1",
    ]
    cli = _in(multimodal_data, ["fit", "-c", TIM, *short])
    encoder = cli.model.model.encoder
    assert type(encoder).__name__ == "TerraMindTiM"
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])
