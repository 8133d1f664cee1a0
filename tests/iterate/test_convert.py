"""Tests for terratorch.iterate.convert: fine-tuning YAMLs -> backbone-centric benchmark config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from terratorch.iterate.convert import ConversionError, build_iterate_config

SEGMENTATION = """
seed_everything: 7
trainer:
  accelerator: cpu
  max_epochs: 12
  precision: 32
  logger: {class_path: lightning.pytorch.loggers.TensorBoardLogger, init_args: {save_dir: logs}}
  callbacks:
    - class_path: EarlyStopping
      init_args: {monitor: val/loss, patience: 4}
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {monitor: val/Multiclass_Jaccard_Index, mode: max}
data:
  class_path: GenericNonGeoSegmentationDataModule
  init_args: {batch_size: 4, num_classes: 2, train_data_root: data/seg/train}
model:
  class_path: terratorch.tasks.SemanticSegmentationTask
  init_args:
    model_factory: EncoderDecoderFactory
    model_args:
      backbone: timm_resnet18
      backbone_pretrained: false
      backbone_in_chans: 6
      decoder: FCNDecoder
      decoder_channels: 32
      head_dropout: 0.1
      num_classes: 2
      necks: [{name: SelectIndices, indices: [-1]}]
    loss: ce
    ignore_index: -1
    freeze_backbone: false
    plot_on_val: false
optimizer:
  class_path: torch.optim.AdamW
  init_args: {lr: 0.0003, weight_decay: 0.05}
lr_scheduler:
  class_path: ReduceLROnPlateau
  init_args: {monitor: val/loss, patience: 2}
"""

CLASSIFICATION = """
trainer: {accelerator: cpu, max_epochs: 5}
data:
  class_path: GenericNonGeoClassificationDataModule
  init_args: {batch_size: 8, num_classes: 3}
model:
  class_path: ClassificationTask
  init_args:
    model_args:
      backbone: timm_resnet18
      backbone_pretrained: false
      backbone_in_chans: 4
      decoder: IdentityDecoder
      num_classes: 3
    lr: 0.001
"""

REGRESSION = """
trainer:
  max_epochs: 3
  callbacks: [{class_path: ModelCheckpoint, init_args: {monitor: val/Not_A_Metric}}]
data: {class_path: GenericNonGeoPixelwiseRegressionDataModule, init_args: {batch_size: 2}}
model:
  class_path: PixelwiseRegressionTask
  init_args:
    model_args:
      {backbone: timm_resnet18, backbone_pretrained: false, backbone_in_chans: 6, decoder: FCNDecoder}
"""


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


def _tasks(config: dict) -> dict[str, dict]:
    return {t["name"]: t for t in config["tasks"]}


def test_directory_of_configs_becomes_one_backbone_centric_config(tmp_path):
    inputs = _write(
        tmp_path / "finetune", burn_scars=SEGMENTATION, eurosat=CLASSIFICATION, biomass=REGRESSION
    )
    out = build_iterate_config(inputs, tmp_path / "bench" / "bench.yaml")
    config = yaml.safe_load(out.read_text())
    assert config["experiment_name"] == "finetune"
    assert config["seed"] == 7  # seed_everything of the (first) file that sets one
    assert config["backbone"] == {"backbone": "timm_resnet18", "backbone_args": {"pretrained": False}}
    assert config["optimization_space"]["lr"]["log"] is True
    tasks = _tasks(config)
    assert list(tasks) == ["biomass", "burn_scars", "eurosat"]  # sorted file order

    seg = tasks["burn_scars"]
    assert (seg["type"], seg["metric"], seg["direction"]) == ("segmentation", "val/mIoU", "max")
    assert seg["datamodule"]["class_path"] == "GenericNonGeoSegmentationDataModule"
    assert seg["datamodule"]["init_args"]["num_classes"] == 2
    assert seg["backbone_args"] == {"in_chans": 6}
    assert (seg["decoder"], seg["decoder_args"], seg["head_args"]) == (
        "FCNDecoder",
        {"channels": 32},
        {"dropout": 0.1},
    )
    assert (seg["num_classes"], seg["loss"], seg["ignore_index"], seg["lr"]) == (2, "ce", -1, 0.0003)
    assert (seg["max_epochs"], seg["early_stop_patience"], seg["model_factory"]) == (
        12,
        4,
        "EncoderDecoderFactory",
    )
    assert seg["trainer_args"] == {"accelerator": "cpu", "precision": 32}
    assert seg["terratorch_task"] == {
        "plot_on_val": False,
        "optimizer": "AdamW",
        "optimizer_hparams": {"weight_decay": 0.05},
        "scheduler": "ReduceLROnPlateau",
        "scheduler_hparams": {"monitor": "val/loss", "patience": 2},
        "model_args": {"necks": [{"name": "SelectIndices", "indices": [-1]}]},
    }
    cls = tasks["eurosat"]
    assert (cls["type"], cls["metric"], cls["direction"], cls["lr"]) == (
        "classification",
        "val/Accuracy",
        "max",
        0.001,
    )
    reg = tasks["biomass"]
    assert (reg["type"], reg["metric"], reg["direction"]) == ("regression", "val/RMSE", "min")

    header = out.read_text().split("experiment_name:")[0]
    assert "dropped trainer.logger" in header and "dropped trainer callback ModelCheckpoint" in header
    assert "'val/Not_A_Metric' is not logged by regression tasks; using val/RMSE" in header


def test_output_passes_the_benchmark_schema_and_plan_validation(tmp_path):
    from terratorch.iterate.config import build_plan, load_config

    inputs = _write(tmp_path / "ft", seg=SEGMENTATION, cls=CLASSIFICATION)
    out = build_iterate_config(inputs, tmp_path / "bench.yaml", storage_uri=str(tmp_path / "storage"))
    plan = build_plan(load_config(out), source=str(out))
    by_name = {t.name: t for t in plan.tasks}
    assert by_name["seg"].metric == "val/mIoU" and by_name["seg"].direction == "max"
    model_args = by_name["seg"].task_kwargs["model_args"]
    assert model_args["backbone"] == "timm_resnet18" and model_args["backbone_in_chans"] == 6
    assert model_args["decoder_channels"] == 32 and model_args["necks"][0]["name"] == "SelectIndices"


def test_single_file_and_options(tmp_path):
    source = tmp_path / "eurosat.yaml"
    source.write_text(CLASSIFICATION)
    out = build_iterate_config(
        source,
        tmp_path / "b.yaml",
        experiment_name="exp",
        n_trials=3,
        run_repetitions=2,
        optimization_space={"batch_size": [4, 8]},
    )
    config = yaml.safe_load(out.read_text())
    assert (config["experiment_name"], config["n_trials"], config["run_repetitions"]) == ("exp", 3, 2)
    assert config["optimization_space"] == {"batch_size": [4, 8]}
    assert config["seed"] == 42
    # a single file keeps all its backbone arguments at the top level
    assert config["backbone"]["backbone_args"] == {"pretrained": False, "in_chans": 4}
    assert "backbone_args" not in config["tasks"][0]


def test_monitored_metric_is_kept_when_the_task_logs_it(tmp_path):
    text = CLASSIFICATION.replace(
        "trainer: {accelerator: cpu, max_epochs: 5}",
        "trainer: {callbacks: [{class_path: ModelCheckpoint,"
        " init_args: {monitor: val/F1_Score, mode: max}}]}",
    )
    source = tmp_path / "cls.yaml"
    source.write_text(text)
    config = yaml.safe_load(build_iterate_config(source, tmp_path / "b.yaml").read_text())
    assert (config["tasks"][0]["metric"], config["tasks"][0]["direction"]) == ("val/F1_Score", "max")


def test_backbone_override_and_conflicting_backbones(tmp_path):
    other = CLASSIFICATION.replace("backbone: timm_resnet18", "backbone: timm_resnet34")
    inputs = _write(tmp_path / "mixed", a=SEGMENTATION, b=other)
    with pytest.raises(
        ConversionError, match=r"(?s)a\.yaml: uses backbone 'timm_resnet18'.*different backbones"
    ):
        build_iterate_config(inputs, tmp_path / "out.yaml")
    assert not (tmp_path / "out.yaml").exists()
    config = yaml.safe_load(
        build_iterate_config(inputs, tmp_path / "out.yaml", backbone="timm_resnet50").read_text()
    )
    assert config["backbone"] == {"backbone": "timm_resnet50"}
    assert _tasks(config)["a"]["backbone_args"] == {"pretrained": False, "in_chans": 6}


def test_every_bad_file_is_reported_at_once_and_nothing_is_written(tmp_path):
    inputs = _write(
        tmp_path / "bad",
        broken="model: {class_path: [unclosed\n",
        nodata="model: {class_path: SemanticSegmentationTask, init_args: {model_args: {backbone: x}}}\n",
        typo=SEGMENTATION.replace("terratorch.tasks.SemanticSegmentationTask", "SemanticSegmentatonTask"),
        recon=SEGMENTATION.replace("terratorch.tasks.SemanticSegmentationTask", "ReconstructionTask"),
        listing="- just\n- a list\n",
    )
    out = tmp_path / "bench.yaml"
    with pytest.raises(ConversionError) as caught:
        build_iterate_config(inputs, out)
    message = str(caught.value)
    assert "5 problem(s)" in message
    assert "broken.yaml: not valid YAML at line 2, column 1" in message
    assert "nodata.yaml: 'data' needs a 'class_path'" in message
    assert "typo.yaml: model.class_path 'SemanticSegmentatonTask' is not a task" in message
    assert "Did you mean 'SemanticSegmentationTask'?" in message
    assert "recon.yaml: model.class_path 'ReconstructionTask'" in message
    assert "listing.yaml: expected a LightningCLI config mapping, got list" in message
    assert not out.exists()


def test_missing_backbone_is_an_error(tmp_path):
    source = tmp_path / "nobackbone.yaml"
    source.write_text(REGRESSION.replace("backbone: timm_resnet18, ", ""))
    with pytest.raises(
        ConversionError, match=r"nobackbone\.yaml: model\.init_args\.model_args has no 'backbone'"
    ):
        build_iterate_config(source, tmp_path / "b.yaml")


def test_paths_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--input .*nowhere' does not exist"):
        build_iterate_config(tmp_path / "nowhere", tmp_path / "b.yaml")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"No fine-tuning YAML files \(\*\.yaml, \*\.yml\) in directory"
    ):
        build_iterate_config(tmp_path / "empty", tmp_path / "b.yaml")
    existing = tmp_path / "exists.yaml"
    existing.write_text("keep me")
    source = _write(tmp_path / "one", cls=CLASSIFICATION)
    with pytest.raises(
        FileExistsError, match=r"exists\.yaml already exists; remove it or choose another file"
    ):
        build_iterate_config(source, existing)
    assert existing.read_text() == "keep me"
    assert build_iterate_config(source, existing, overwrite=True) == existing


def test_output_inside_the_input_directory_is_not_read_back(tmp_path):
    inputs = _write(tmp_path / "ft", cls=CLASSIFICATION)
    out = build_iterate_config(inputs, inputs / "bench.yaml")
    config = yaml.safe_load(build_iterate_config(inputs, out, overwrite=True).read_text())
    assert [t["name"] for t in config["tasks"]] == ["cls"]


def test_cli_flag_converts(tmp_path, capsys):
    from terratorch.iterate.__main__ import main

    inputs = _write(tmp_path / "ft", cls=CLASSIFICATION)
    out = tmp_path / "cli.yaml"
    assert main(["--build_iterate_config", "--input", str(inputs), "--output", str(out)]) == 0
    assert "benchmark config written to" in capsys.readouterr().out
    assert yaml.safe_load(out.read_text())["tasks"][0]["type"] == "classification"


def test_custom_modules_are_kept_and_unused_keys_noted(tmp_path):
    source = tmp_path / "cls.yaml"
    source.write_text(CLASSIFICATION + "custom_modules_path: my_modules\npredict_output_dir: preds\n")
    out = build_iterate_config(source, tmp_path / "b.yaml")
    config = yaml.safe_load(out.read_text())
    assert config["custom_modules_path"] == ["my_modules"]
    assert "cls: ignored top-level key 'predict_output_dir'" in out.read_text()


def test_repository_finetune_example_converts_to_a_valid_plan(tmp_path):
    from terratorch.iterate.config import build_plan, load_config

    example = Path(__file__).resolve().parents[2] / "examples" / "finetune" / "segmentation_vit_upernet.yaml"
    out = build_iterate_config(example, tmp_path / "bench.yaml", storage_uri=str(tmp_path / "storage"))
    plan = build_plan(load_config(out), source=str(out))
    (task,) = plan.tasks
    assert (task.name, task.metric, task.direction) == ("segmentation_vit_upernet", "val/mIoU", "max")
    model_args = task.task_kwargs["model_args"]
    assert model_args["backbone"] == "prithvi_eo_tiny" and model_args["decoder"] == "UperNetDecoder"
    assert [n["name"] for n in model_args["necks"]] == [
        "SelectIndices",
        "ReshapeTokensToImage",
        "LearnedInterpolateToPyramidal",
    ]
