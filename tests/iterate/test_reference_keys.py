"""Keys, modes and YAML number handling of the reference benchmark tool (terratorch-iterate 0.4)."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from terratorch.iterate.__main__ import main
from terratorch.iterate.config import ConfigError, build_plan, load_config, load_plan, parse_config


def test_scientific_notation_is_a_number_as_in_terratorch_fit(helpers, tmp_path):
    raw = helpers.base_config(tmp_path / "store")
    raw["defaults"]["terratorch_task"]["lr"] = "@LR@"
    raw["optimization_space"] = {"lr": {"min": "@MIN@", "max": "@MAX@", "type": "real", "log": True}}
    text = yaml.safe_dump(raw)
    for placeholder, number in (("@LR@", "1e-6"), ("@MIN@", "1e-6"), ("@MAX@", "1e-3")):
        text = text.replace(f"'{placeholder}'", number)
    assert "1e-6" in text and "@" not in text
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    plan = build_plan(load_config(path))
    assert plan.tasks[0].task_kwargs["lr"] == 1e-6 and isinstance(plan.tasks[0].task_kwargs["lr"], float)
    assert (plan.tasks[0].space[0].low, plan.tasks[0].space[0].high) == (1e-6, 1e-3)


def test_reference_top_level_and_task_keys_are_accepted(helpers, tmp_path):
    raw = helpers.base_config(tmp_path / "store")
    raw.update(ray_storage_path=str(tmp_path / "ray"), logger=None, output_path=str(tmp_path / "out.csv"))
    raw["tasks"][0].update(max_run_duration="00:00:10:00", terratorch_task=None)
    plan = build_plan(parse_config(raw))
    assert plan.config.ray_storage_path == str(tmp_path / "ray")
    assert plan.tasks[0].max_run_duration == "00:00:10:00"


def test_max_run_duration_format_is_checked(helpers, tmp_path):
    raw = helpers.base_config(tmp_path / "store")
    raw["tasks"][0]["max_run_duration"] = "10 minutes"
    with pytest.raises(ConfigError) as info:
        build_plan(parse_config(raw))
    assert info.value.problems[0][0] == "tasks[0].max_run_duration"
    assert "DD:HH:MM:SS" in info.value.problems[0][1]


def test_summarize_config_dry_run_and_validation(tmp_path, capsys):
    path = tmp_path / "summarize.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            storage_uri: {tmp_path / "store"}
            list_of_experiment_names: [a, b]
            task_names: [seg]
            task_metrics: [val/mIoU]
            benchmark_name: cmp
            run_repetitions: 2
            """
        )
    )
    assert main(["--summarize", "--config", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "summarize ['a', 'b']" in out and "tasks ['seg']" in out
    path.write_text(path.read_text().replace("task_metrics: [val/mIoU]", "task_metrics: [x, y]"))
    with pytest.raises(SystemExit):
        main(["--summarize", "--config", str(path), "--dry-run"])
    assert "needs one metric per task name" in capsys.readouterr().err


def test_build_iterate_config_with_template_and_prefix(helpers, tmp_path):
    fit = tmp_path / "fit"
    fit.mkdir()
    (fit / "seg.yaml").write_text(
        yaml.safe_dump(
            {
                "model": {
                    "class_path": "terratorch.tasks.SemanticSegmentationTask",
                    "init_args": {
                        "model_factory": "EncoderDecoderFactory",
                        "model_args": {
                            "backbone": "timm_resnet18",
                            "backbone_pretrained": False,
                            "decoder": "FCNDecoder",
                            "num_classes": 2,
                        },
                        "loss": "ce",
                    },
                },
                "data": helpers.base_config(tmp_path / "s")["tasks"][0]["datamodule"],
                "trainer": {"max_epochs": 1},
            }
        )
    )
    template = tmp_path / "template.yaml"
    template.write_text(
        yaml.safe_dump(
            {
                "experiment_name": "x",
                "storage_uri": str(tmp_path / "store"),
                "n_trials": 4,
                "optimization_space": {"lr": {"min": 1e-5, "max": 1e-3, "type": "real", "log": True}},
                "tasks": [{"name": "t", "type": "segmentation", "direction": "max"}],
            }
        )
    )
    out = tmp_path / "out.yaml"
    assert main(["--build_iterate_config", "--input", str(fit), "--output", str(out),
                 "--template", str(template), "--prefix", "tt"]) == 0  # fmt: skip
    config = yaml.safe_load(out.read_text())
    assert config["n_trials"] == 4 and config["experiment_name"].startswith("tt_")
    assert config["tasks"][0]["direction"] == "max"
    assert load_plan(out).tasks[0].task_class == "SemanticSegmentationTask"
