"""The ``terratorch.cli`` split: ``cli_tools`` re-exports every old name lazily; the CLI can be subclassed."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.test_cli_tools import make_config, write_config
from tests.tiny_backbones import tiny_cnn_module

from terratorch.datasets.demo import make_demo_dataset

# Every public name of the 1053-line cli_tools module before the split -> the module defining it now.
OLD_NAMES = {
    "CUSTOM_MODULES_ENV": "terratorch.cli.custom_modules",
    "ConfigError": "terratorch.cli.errors",
    "CustomWriter": "terratorch.cli.custom_writer",
    "FLOAT32_PRECISION_ENV": "terratorch.cli.lightning",
    "LIGHTNING_SUBCOMMANDS": "terratorch.cli.lightning",
    "LightningInferenceModel": "terratorch.cli.inference",
    "MyLightningCLI": "terratorch.cli.lightning",
    "MyTrainer": "terratorch.cli.lightning",
    "StateDictAwareModelCheckpoint": "terratorch.cli.callbacks",
    "StudioDeploySaveConfigCallback": "terratorch.cli.callbacks",
    "add_default_checkpointing_config": "terratorch.cli.lightning",
    "build_lightning_cli": "terratorch.cli.lightning",
    "clean_config_for_deployment_and_dump": "terratorch.cli.callbacks",
    "compute_mask_statistics": "terratorch.utils",
    "compute_statistics": "terratorch.utils",
    "compute_statistics_main": "terratorch.cli.statistics",
    "custom_module_paths": "terratorch.cli.custom_modules",
    "default_checkpoint": "terratorch.cli.lightning",
    "deployment_config": "terratorch.cli.callbacks",
    "explain_instantiation_error": "terratorch.cli.errors",
    "explain_parse_error": "terratorch.cli.errors",
    "flatten": "terratorch.cli.custom_writer",
    "import_custom_modules": "terratorch.cli.custom_modules",
    "import_custom_modules_from_args": "terratorch.cli.custom_modules",
    "is_one_band": "terratorch.cli.custom_writer",
    "main": "terratorch.cli.lightning",
    "open_tiff": "terratorch.cli.custom_writer",
    "save_prediction": "terratorch.cli.custom_writer",
    "strip_noise": "terratorch.cli.errors",
    "write_tiff": "terratorch.cli.custom_writer",
    # Lightning classes the old module imported at its top level
    "BasePredictionWriter": "lightning.pytorch.callbacks",
    "LightningArgumentParser": "lightning.pytorch.cli",
    "LightningCLI": "lightning.pytorch.cli",
    "LightningDataModule": "lightning.pytorch",
    "LightningModule": "lightning.pytorch",
    "ModelCheckpoint": "lightning.pytorch.callbacks",
    "SaveConfigCallback": "lightning.pytorch.cli",
    "Trainer": "lightning.pytorch",
}


@pytest.mark.parametrize("name", sorted(OLD_NAMES))
def test_old_name_is_the_new_object(name: str) -> None:
    from terratorch import cli_tools

    assert getattr(cli_tools, name) is getattr(importlib.import_module(OLD_NAMES[name]), name)


def test_all_and_dir_list_the_reexports() -> None:
    from terratorch import cli_tools

    assert set(cli_tools.__all__) <= set(OLD_NAMES)
    assert set(OLD_NAMES) <= set(dir(cli_tools))
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        cli_tools.NoSuchName


def test_private_names_other_modules_use() -> None:
    """``iterate`` reads ``_CLASS_MODULES``; the signature tests use ``_cli_class``."""
    from terratorch import cli_tools
    from terratorch.cli.custom_modules import CLASS_MODULES
    from terratorch.cli.lightning import MyLightningCLI

    assert cli_tools._CLASS_MODULES is CLASS_MODULES
    assert cli_tools._cli_class() is MyLightningCLI


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(m for m in sys.modules if '.' not in m)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


def test_cli_tools_loads_lightning_only_for_lightning_names() -> None:
    light = _loaded_after(
        "import terratorch.cli_tools as t\nt.import_custom_modules_from_args\nt.explain_parse_error"
    )
    assert not light & {"torch", "lightning"}, sorted(light & {"torch", "lightning"})


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TERRATORCH_NO_AUTOLOAD", "1")
    monkeypatch.delenv("TERRATORCH_CUSTOM_MODULE_PATH", raising=False)
    (tmp_path / "cli_test_modules").mkdir()
    (tmp_path / "cli_test_modules" / "__init__.py").write_text("")
    (tmp_path / "cli_test_modules" / "backbones.py").write_text(tiny_cnn_module("cli_test_cnn"))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cli_test_modules")]:
        del sys.modules[name]
    TERRATORCH_BACKBONE_REGISTRY.unregister("cli_test_cnn")


def test_a_subclass_of_the_cli_adds_its_own_argument(workdir) -> None:
    from lightning.pytorch.cli import LightningArgumentParser

    from terratorch.cli.callbacks import LastEpochModelCheckpoint
    from terratorch.cli.custom_modules import import_class_modules, import_custom_modules_from_args
    from terratorch.cli_tools import MyLightningCLI, MyTrainer

    class NotesCLI(MyLightningCLI):
        def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
            super().add_arguments_to_parser(parser)
            parser.add_argument("--notes", type=str, default="")

    demo: Any = make_demo_dataset(workdir / "demo", "segmentation", n_train=2, n_val=2, n_test=2, size=32)
    config = write_config(workdir / "fit.yaml", make_config(demo, workdir))
    args = ["-c", config, "--notes", "first try"]
    import_custom_modules_from_args(args)
    import_class_modules()
    cli = NotesCLI(
        model_class=None,
        datamodule_class=None,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_class=MyTrainer,
        args=args,
        run=False,
    )
    assert cli.config["notes"] == "first try"
    assert cli.config["predict_streaming"] is False  # the parent's arguments are still there
    assert type(cli.model).__name__ == "SemanticSegmentationTask"
    checkpoint = cli.trainer.checkpoint_callback
    assert isinstance(checkpoint, LastEpochModelCheckpoint) and checkpoint.save_last
