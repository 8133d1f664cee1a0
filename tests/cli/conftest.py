"""Fixtures shared by the CLI tests."""

from typing import Any

import pytest

from terratorch.datasets.demo import make_demo_dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Any:
    """A tiny segmentation demo dataset (4 train chips: 2 steps per epoch at batch size 2)."""
    root = tmp_path_factory.mktemp("demo") / "segmentation"
    return make_demo_dataset(root, "segmentation", n_train=4, n_val=2, n_test=2, size=32)
