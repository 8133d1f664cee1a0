"""Benchmark config schema, both layouts, overrides and validation (terratorch.iterate.config)."""

from __future__ import annotations

import copy
import re
import textwrap

import pytest

from terratorch.iterate.config import (
    ConfigError,
    apply_overrides,
    build_plan,
    load_config,
    parse_config,
)


@pytest.fixture
def raw(helpers, tmp_path):
    return helpers.base_config(tmp_path / "store")


def _problems(raw_config) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        build_plan(parse_config(raw_config))
    return info.value.problems


def _paths(problems) -> list[str]:
    return [path for path, _ in problems]


def test_backbone_centric_layout_is_normalised(raw):
    plan = build_plan(parse_config(raw))
    task = plan.tasks[0]
    assert task.task_class == "SemanticSegmentationTask"
    assert (task.metric, task.direction) == ("val/mIoU", "max")
    model_args = task.task_kwargs["model_args"]
    assert model_args == {
        "backbone": "timm_resnet18",
        "backbone_pretrained": False,
        "backbone_in_chans": 6,  # bands of a timm backbone become its input channels
        "decoder": "FCNDecoder",
        "decoder_channels": 16,
        "num_classes": 3,
    }
    assert task.task_kwargs["model_factory"] == "EncoderDecoderFactory"
    assert task.task_kwargs["loss"] == "ce" and task.task_kwargs["ignore_index"] == -1
    assert task.trainer_args["max_epochs"] == 2


def test_defaults_layout_merges_under_tasks(tmp_path):
    text = textwrap.dedent(
        f"""
        experiment_name: defaults_layout
        storage_uri: {tmp_path / "store"}
        defaults:
          trainer_args: {{max_epochs: 5, accelerator: cpu}}
          terratorch_task:
            model_factory: EncoderDecoderFactory
            lr: 0.01
            model_args: {{backbone: timm_resnet18, backbone_pretrained: false, decoder: FCNDecoder}}
        tasks:
          - name: a
            type: segmentation
            metric: val/Multiclass_Jaccard_Index
            max_epochs: 3
            trainer_args: {{limit_train_batches: 2}}
            terratorch_task:
              lr: 0.001
              model_args: {{num_classes: 4}}
            datamodule: {{class_path: GenericNonGeoSegmentationDataModule, init_args: {{batch_size: 2}}}}
        """
    )
    path = tmp_path / "bench.yaml"
    path.write_text(text)
    with pytest.warns(DeprecationWarning, match="Multiclass_Jaccard_Index"):
        plan = build_plan(load_config(path))
    task = plan.tasks[0]
    assert task.metric == "val/mIoU"  # legacy name mapped
    assert task.trainer_args == {"max_epochs": 3, "accelerator": "cpu", "limit_train_batches": 2}
    assert task.task_kwargs["lr"] == 0.001
    assert task.task_kwargs["model_args"] == {
        "backbone": "timm_resnet18",
        "backbone_pretrained": False,
        "decoder": "FCNDecoder",
        "num_classes": 4,
    }


def test_shorthand_wins_over_terratorch_task_and_defaults(raw):
    raw["defaults"]["terratorch_task"]["lr"] = 0.5
    raw["tasks"][0]["terratorch_task"] = {"lr": 0.2, "optimizer": "SGD"}
    raw["tasks"][0]["lr"] = 0.1
    kwargs = build_plan(parse_config(raw)).tasks[0].task_kwargs
    assert kwargs["lr"] == 0.1 and kwargs["optimizer"] == "SGD"


def test_search_space_routes(raw):
    raw["optimization_space"] = {
        "lr": {"min": 1.0e-4, "max": 1.0e-2, "type": "real", "log": True},
        "batch_size": [2, 4],
        "optimizer_hparams": {"weight_decay": [0.0, 0.01]},
        "model_args": {"decoder_channels": [8, 16]},
        "trainer_args": {"max_epochs": [1, 2]},
    }
    task = build_plan(parse_config(raw)).tasks[0]
    routes = {path: (r.target, r.keys) for path, r in task.routes.items()}
    assert routes == {
        "lr": ("task", ("lr",)),
        "batch_size": ("datamodule", ("batch_size",)),
        "optimizer_hparams.weight_decay": ("task", ("optimizer_hparams", "weight_decay")),
        "model_args.decoder_channels": ("model_args", ("decoder_channels",)),
        "trainer_args.max_epochs": ("trainer", ("max_epochs",)),
    }
    resolved = task.resolved(
        {
            "lr": 0.001,
            "batch_size": 2,
            "optimizer_hparams.weight_decay": 0.01,
            "model_args.decoder_channels": 8,
            "trainer_args.max_epochs": 1,
        }
    )
    assert resolved["task"]["lr"] == 0.001
    assert resolved["task"]["optimizer_hparams"] == {"weight_decay": 0.01}
    assert resolved["task"]["model_args"]["decoder_channels"] == 8
    assert resolved["datamodule"]["init_args"]["batch_size"] == 2
    assert resolved["trainer"]["max_epochs"] == 1
    assert task.task_kwargs["model_args"]["decoder_channels"] == 16  # the plan itself is untouched


def test_class_path_backbone_gets_backbone_args_as_init_args(raw):
    raw["backbone"] = {
        "backbone": {"class_path": "torch.nn.Identity", "init_args": {}},
        "backbone_args": {"unused_arg": 1},
    }
    args = build_plan(parse_config(raw)).tasks[0].task_kwargs["model_args"]
    assert args["backbone"] == {
        "class_path": "torch.nn.Identity",
        "init_args": {"unused_arg": 1},
        "dict_kwargs": {},
    }
    assert not any(k.startswith("backbone_") for k in args)


def test_overrides_set_nested_keys_and_list_items(raw):
    new = apply_overrides(
        raw,
        [
            ("n_trials", "2"),
            ("defaults.trainer_args.max_epochs", "1"),
            ("tasks.0.lr", "1.0e-3"),
            ("backbone.backbone_args.drop_rate", "0.1"),
        ],
    )
    assert new["n_trials"] == 2 and new["defaults"]["trainer_args"]["max_epochs"] == 1
    assert new["tasks"][0]["lr"] == 0.001 and new["backbone"]["backbone_args"]["drop_rate"] == 0.1
    assert raw["n_trials"] == 3  # the input is not modified


def test_bad_override_path(raw):
    with pytest.raises(ConfigError, match=r"tasks.5.lr: cannot apply override: index 5 is out of range"):
        apply_overrides(raw, [("tasks.5.lr", "1")])
    with pytest.raises(ConfigError, match="'first' is not a list index"):
        apply_overrides(raw, [("tasks.first.lr", "1")])


def test_config_hash_ignores_budget_keys(raw):
    base = parse_config(raw).config_hash()
    more = copy.deepcopy(raw)
    more["n_trials"], more["run_repetitions"] = 10, 5
    assert parse_config(more).config_hash() == base
    report_only = copy.deepcopy(raw)
    report_only["normalization"], report_only["reference_ranges"] = "geobench", "normalizer.json"
    assert parse_config(report_only).config_hash() == base
    other = copy.deepcopy(raw)
    other["seed"] = 8
    assert parse_config(other).config_hash() != base


def test_missing_file():
    with pytest.raises(FileNotFoundError, match=r"benchmark config 'no/such\.yaml' does not exist"):
        load_config("no/such.yaml")


def test_invalid_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("tasks: [a, b\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


# -- bad input: every problem with its key path, all at once ------------------------------------
def test_unknown_keys_suggest_and_missing_keys_are_named(raw):
    raw["n_trail"] = 2
    raw["tasks"][0]["metirc"] = "val/mIoU"
    raw["backbone"]["backbone_arg"] = {}
    del raw["tasks"][0]["datamodule"]
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    text = str(info.value)
    assert "4 problems" in text
    assert "n_trail: unknown key 'n_trail'. Did you mean 'n_trials'?" in text
    assert "tasks[0].metirc: unknown key 'metirc'. Did you mean 'metric'?" in text
    assert "backbone.backbone_arg: unknown key 'backbone_arg'. Did you mean 'backbone_args'" in text
    assert "tasks[0].datamodule: required key is missing" in text


def test_direction_maximize_is_rejected(raw):
    raw["tasks"][0]["direction"] = "maximize"
    problems = _problems(raw)
    assert problems == [
        ("tasks[0].direction", "'maximize' is not valid; use 'max' or 'min'. Did you mean 'max'?")
    ]


def test_metric_the_task_never_logs(raw):
    raw["tasks"][0]["metric"] = "val/RMSE"
    ((path, message),) = _problems(raw)
    assert path == "tasks[0].metric"
    assert "never logs 'val/RMSE'" in message and "val/mIoU" in message


def test_empty_search_space_with_several_trials(raw):
    raw["optimization_space"] = {}
    ((path, message),) = _problems(raw)
    assert path == "tasks[0]" and "empty search space but n_trials is 3" in message
    raw["n_trials"] = 1
    assert build_plan(parse_config(raw)).tasks[0].space == []


def test_optimization_except_can_empty_the_space(raw):
    raw["tasks"][0]["optimization_except"] = ["lr"]
    assert "empty search space" in _problems(raw)[0][1]
    # Names that match no search-space key are ignored, as in the reference tool.
    raw["tasks"][0]["optimization_except"] = ["weight_decay"]
    assert [p.path for p in build_plan(parse_config(raw)).tasks[0].space] == ["lr"]


def test_optimization_except_takes_leaf_names(raw):
    raw["optimization_space"]["optimizer_hparams"] = {"weight_decay": [0.0, 0.1]}
    raw["optimization_space"]["model_args"] = {"decoder_channels": [8, 16]}
    raw["tasks"][0]["optimization_except"] = ["weight_decay", "model_args"]
    assert [p.path for p in build_plan(parse_config(raw)).tasks[0].space] == ["lr"]


def test_registration_module_that_fails_to_import(raw, tmp_path):
    broken = tmp_path / "broken_backbones.py"
    broken.write_text("import this_module_does_not_exist\n")
    raw["backbone_registration"] = str(broken)
    ((path, message),) = _problems(raw)
    assert path == "backbone_registration"
    assert "broken_backbones.py failed" in message and "this_module_does_not_exist" in message


def test_unreachable_tracking_uri(raw):
    raw["storage_uri"] = "http://127.0.0.1:9"
    ((path, message),) = _problems(raw)
    assert path == "storage_uri" and "tracking server http://127.0.0.1:9 is unreachable" in message


def test_sqlite_uri_in_missing_folder(raw, tmp_path):
    raw["storage_uri"] = f"sqlite:///{tmp_path}/missing/mlflow.db"
    assert "does not exist" in _problems(raw)[0][1]


def test_search_space_key_nobody_accepts(raw):
    raw["optimization_space"]["learning_rate"] = [0.1, 0.01]
    ((path, message),) = _problems(raw)
    assert path == "optimization_space.learning_rate"
    assert "SemanticSegmentationTask does not take an argument 'learning_rate'" in message
    assert "model_args.<name>" in message


def test_imports_and_names_are_checked(raw):
    raw["tasks"][0]["datamodule"]["class_path"] = "terratorch.datamodules.NoSuchDataModule"
    raw["tasks"][0]["trainer_args"] = {"max_epoch": 3}
    raw["tasks"][0]["terratorch_task"] = {"optimiser": "SGD"}
    raw["backbone"]["backbone"] = "timm_resnet1888"
    raw["tasks"][0]["type"] = "segmentaton"
    raw["tasks"].append(copy.deepcopy(raw["tasks"][0]))
    raw["tasks"][1]["type"] = "segmentation"
    problems = _problems(raw)
    text = "\n".join(f"{p}: {m}" for p, m in problems)
    assert "tasks[0].type: unknown task type 'segmentaton'. Did you mean 'segmentation'?" in text
    assert "tasks: task name 'seg' is used more than once" in text
    assert "tasks[1].datamodule.class_path: cannot import" in text and "NoSuchDataModule" in text
    # The suggestion's punctuation is the CLI's (shared with `terratorch fit`); the names are ours to check.
    assert re.search(
        r"tasks\[1\]\.trainer_args\.max_epoch: not a lightning\.Trainer argument\. "
        r"Did you mean:? '?max_epochs",
        text,
    )
    assert re.search(
        r"tasks\[1\]\.terratorch_task\.optimiser: SemanticSegmentationTask does not take an argument "
        r"'optimiser'\. Did you mean:? '?optimizer",
        text,
    )
    assert "backbone.backbone: Unknown name 'timm_resnet1888'" in text


def test_unknown_datamodule_argument(raw):
    raw["tasks"][0]["datamodule"]["init_args"]["batchsize"] = 4
    ((path, message),) = _problems(raw)
    assert path == "tasks[0].datamodule.init_args.batchsize"
    assert re.search(r"Did you mean:? '?batch_size", message)


def test_describe_lists_tasks_and_routes(raw):
    text = build_plan(parse_config(raw)).describe()
    assert "task 'seg' (segmentation, SemanticSegmentationTask): optimise val/mIoU (max)" in text
    assert "search lr: real in [0.0001, 0.1] (log) -> task.lr" in text


# ----------------------------------------------------------------------------- data checked up front
def _data_config(helpers, tmp_path, demo_roots):
    raw = helpers.base_config(tmp_path / "store", demo_roots["segmentation"], demo_roots["classification"])
    raw["n_trials"] = 1
    return raw


def _data_problems(raw):
    from terratorch.iterate.config import data_problems

    return data_problems(build_plan(parse_config(raw), check_imports=False))


def test_valid_data_has_no_problems(helpers, tmp_path, demo_roots):
    assert _data_problems(_data_config(helpers, tmp_path, demo_roots)) == []


def test_every_task_data_problem_is_reported_with_its_key_path(helpers, tmp_path, demo_roots):
    raw = _data_config(helpers, tmp_path, demo_roots)
    seg = raw["tasks"][0]["datamodule"]["init_args"]
    seg["img_grep"] = "*.png"
    seg["val_label_data_root"] = str(tmp_path / "no_labels")
    cls = raw["tasks"][1]["datamodule"]["init_args"]
    cls["train_data_root"] = str(tmp_path / "missing")
    cls["val_split"] = str(tmp_path / "val.txt")
    problems = dict(_data_problems(raw))
    where0, where1 = "tasks[0].datamodule.init_args", "tasks[1].datamodule.init_args"
    assert set(problems) == {
        f"{where0}.img_grep",
        f"{where0}.val_label_data_root",
        f"{where1}.train_data_root",
        f"{where1}.val_split",
    }
    assert "'*.png' matches no file in train_data_root" in problems[f"{where0}.img_grep"]
    assert f"directory {str(tmp_path / 'missing')!r} does not exist" in problems[f"{where1}.train_data_root"]
    assert "file" in problems[f"{where1}.val_split"] and "val.txt" in problems[f"{where1}.val_split"]


def test_missing_train_root_key_and_test_root_only_when_testing(helpers, tmp_path, demo_roots):
    raw = _data_config(helpers, tmp_path, demo_roots)
    init = raw["tasks"][1]["datamodule"]["init_args"]
    del init["train_data_root"]
    init["test_data_root"] = str(tmp_path / "no_test")
    paths = _paths(_data_problems(raw))
    assert paths == ["tasks[1].datamodule.init_args.train_data_root"]  # test split unused (no repetitions)
    raw["run_repetitions"] = 1
    paths = _paths(_data_problems(raw))
    assert "tasks[1].datamodule.init_args.test_data_root" in paths


def test_a_file_given_as_data_root_is_not_a_directory(helpers, tmp_path, demo_roots):
    raw = _data_config(helpers, tmp_path, demo_roots)
    raw["tasks"][0]["datamodule"]["init_args"]["train_data_root"] = raw["tasks"][0]["datamodule"][
        "init_args"
    ]["means"]
    ((path, message),) = _data_problems(raw)
    assert path == "tasks[0].datamodule.init_args.train_data_root" and "is not a directory" in message


def test_demo_data_not_generated_yet_is_skipped(helpers, tmp_path, demo_roots):
    raw = _data_config(helpers, tmp_path, demo_roots)
    pending = tmp_path / "demo" / "seg"
    raw["demo_data"] = [{"task": "segmentation", "root": str(pending)}]
    raw["tasks"][0]["datamodule"] = helpers.segmentation_datamodule(pending)
    assert _data_problems(raw) == []
    (pending / "images").mkdir(parents=True)  # generated (not empty): now it is checked
    assert "tasks[0].datamodule.init_args.img_grep" in _paths(_data_problems(raw))


def test_load_plan_checks_data_only_when_asked_and_after_the_config_is_valid(helpers, tmp_path, demo_roots):
    from terratorch.iterate.config import load_plan

    raw = _data_config(helpers, tmp_path, demo_roots)
    raw["tasks"][1]["datamodule"]["init_args"]["train_data_root"] = str(tmp_path / "missing")
    path = helpers.write_config(tmp_path / "bench.yaml", raw)
    load_plan(path, check_imports=False)  # a dry run can validate a config away from its data
    with pytest.raises(ConfigError) as info:
        load_plan(path, check_imports=False, check_data=True)
    assert info.value.source == str(path)
    assert "tasks[1].datamodule.init_args.train_data_root: directory" in str(info.value)
    raw["tasks"][0]["direction"] = "maximize"
    with pytest.raises(ConfigError) as info:
        load_plan(helpers.write_config(tmp_path / "bench.yaml", raw), check_imports=False, check_data=True)
    assert _paths(info.value.problems) == ["tasks[0].direction"]
