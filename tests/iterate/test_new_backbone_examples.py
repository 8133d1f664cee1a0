"""The four ways to benchmark a new backbone (examples/new_backbone/*), each run end to end.

Each example config runs through ``terratorch iterate`` with a reduced budget (one trial, one
epoch); the task must finish, i.e. the backbone was built, trained and evaluated.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient

from terratorch.iterate.__main__ import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "new_backbone"
REDUCED = ["--hpo", "--n_trials", "1", "--defaults.trainer_args.max_epochs", "1"]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def loaded_builtins():
    """Import the built-in factories/decoders/necks now, so ``restore_registries`` snapshots them.

    (A lazy entry whose module was imported during a test would be lost by the restore: the module
    stays imported and is not re-executed.)
    """
    from terratorch import registry

    for reg in (
        registry.MODEL_FACTORY_REGISTRY,
        registry.TERRATORCH_DECODER_REGISTRY,
        registry.TERRATORCH_NECK_REGISTRY,
    ):
        for name in list(reg._lazy):
            reg[name]


@pytest.fixture
def workdir(tmp_path, monkeypatch, mlflow_template):
    """A working directory like the repository root (examples/ linked), with a ready MLflow store."""
    import shutil

    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    (tmp_path / "store").mkdir()
    shutil.copy(mlflow_template, tmp_path / "store" / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _task_runs(store: Path, experiment: str) -> list:
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], filter_string="tags.`terratorch.level` = 'task'")
    return runs


@pytest.mark.parametrize(
    ("config", "experiment"),
    [
        ("a_new_weights/benchmark.yaml", "new_backbone_a_weights"),
        ("b_module_instance/benchmark.yaml", "new_backbone_b_instance"),
        ("c_timm_registration/benchmark.yaml", "new_backbone_c_timm"),
        ("d_custom_factory/benchmark.yaml", "new_backbone_d_factory"),
    ],
)
def test_example_runs_end_to_end(config, experiment, workdir, loaded_builtins, restore_registries):
    if config.startswith("a_"):
        _load(EXAMPLES / "a_new_weights" / "make_weights.py").main("weights/resnet18_custom.pth")
    argv = ["--config", f"examples/new_backbone/{config}", *REDUCED, "--storage_uri", str(workdir / "store")]
    assert main(argv) == 0
    (task,) = _task_runs(workdir / "store", experiment)
    assert task.data.tags["terratorch.status"] == "finished"
    assert 0.0 <= task.data.metrics["best_value"] <= 1.0


def test_new_weights_reach_the_backbone(workdir):
    """(a): the weights in the file are the ones the backbone holds (first conv adapted to 6 bands)."""
    from terratorch.registry import BACKBONE_REGISTRY

    path = _load(EXAMPLES / "a_new_weights" / "make_weights.py").main("weights/resnet18_custom.pth")
    state = torch.load(path, weights_only=True)
    backbone = BACKBONE_REGISTRY.build(
        "timm_resnet18", pretrained=True, pretrained_cfg_overlay={"file": str(path)}, in_chans=6
    )
    loaded = dict(backbone.named_parameters())
    key = next(k for k in loaded if k.endswith("layer1.0.conv1.weight"))
    assert torch.equal(loaded[key], state["layer1.0.conv1.weight"])


def test_swin3d_backbone_contract():
    """(b): feature_info channels match the returned maps; prepare_features gives image maps."""
    swin3d = _load(EXAMPLES / "b_module_instance" / "swin3d.py")
    backbone = swin3d.Swin3DBackbone(in_chans=3, embed_dim=8, depths=(1, 2), num_heads=(2, 2))
    features = backbone(torch.randn(2, 3, 2, 32, 32))
    assert [f.shape[-1] for f in features] == backbone.feature_info.channels() == [8, 16]
    assert [tuple(f.shape[1:4]) for f in features] == [(2, 8, 8), (2, 4, 4)]
    images = backbone.prepare_features_for_image_model(features)
    assert [tuple(f.shape) for f in images] == [(2, 8, 8, 8), (2, 16, 4, 4)]
    assert backbone(torch.randn(1, 3, 32, 32))[0].shape == (1, 1, 8, 8, 8)  # single frame input


def test_timm_registration_and_custom_factory(loaded_builtins, restore_registries):
    """(c) the timm-registered CNN gives features; (d) the factory is found in MODEL_FACTORY_REGISTRY."""
    import timm

    from terratorch.registry import MODEL_FACTORY_REGISTRY

    _load(EXAMPLES / "c_timm_registration" / "my_backbones.py")
    cnn = timm.create_model("tiny_geo_cnn", features_only=True, in_chans=6)
    assert [f.shape[1] for f in cnn(torch.zeros(1, 6, 32, 32))] == [16, 32, 64, 96]
    _load(EXAMPLES / "d_custom_factory" / "my_factory.py")
    model = MODEL_FACTORY_REGISTRY.build("TinyUNetFactory").build_model(
        "segmentation", in_channels=6, num_classes=3, width=8
    )
    assert model(torch.zeros(2, 6, 32, 32)).output.shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="segmentation models only"):
        MODEL_FACTORY_REGISTRY.build("TinyUNetFactory").build_model(
            "classification", in_channels=6, num_classes=3
        )
