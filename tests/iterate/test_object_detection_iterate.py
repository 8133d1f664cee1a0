"""The benchmark tool's ``object_detection`` task type: default metric ``val/mAP`` and a real
1-trial benchmark (HPO trial, one repetition, summary) over generated detection data."""

from __future__ import annotations

import re

from terratorch.datasets.demo import make_detection_demo
from terratorch.exit_codes import OK
from terratorch.iterate.__main__ import main
from terratorch.iterate.config import build_plan, parse_config
from terratorch.iterate.metrics_table import default_metric, resolve_metric


def _config(storage, demo) -> dict:
    datamodule = demo.datamodule_kwargs(batch_size=2, num_workers=0)
    return {
        "experiment_name": "detection",
        "storage_uri": str(storage),
        "seed": 1,
        "n_trials": 1,
        "run_repetitions": 1,
        "defaults": {
            "trainer_args": {
                "accelerator": "cpu",
                "max_epochs": 1,
                "limit_train_batches": 2,
                "limit_val_batches": 1,
                "limit_test_batches": 1,
                "num_sanity_val_steps": 0,
                "enable_progress_bar": False,
                "log_every_n_steps": 1,
            },
        },
        "optimization_space": {"lr": {"min": 1.0e-3, "max": 3.0e-3, "type": "real", "log": True}},
        "tasks": [
            {
                "name": "squares",
                "type": "object_detection",
                "model_factory": "ObjectDetectionModelFactory",
                "num_classes": 3,
                "freeze_backbone": True,
                "terratorch_task": {
                    "score_threshold": 0.05,
                    "model_args": {
                        "framework": "faster-rcnn",
                        "backbone": "timm_resnet18",
                        "backbone_pretrained": False,
                        "backbone_out_indices": [2, 3, 4],
                        "in_channels": 3,
                        "necks": [{"name": "FeaturePyramidNetworkNeck", "out_channel": 32}],
                    },
                },
                "datamodule": {
                    "class_path": "GenericNonGeoObjectDetectionDataModule",
                    "init_args": datamodule,
                },
            }
        ],
    }


def test_object_detection_type_defaults_to_val_map():
    assert default_metric("object_detection") == ("val/mAP", "max")
    assert resolve_metric("val/mAP_50", "object_detection") == "val/mAP_50"


def test_one_trial_benchmark_over_detection_demo_data(helpers, storage, tmp_path, capsys):
    demo = make_detection_demo(
        tmp_path / "data",
        n_train=4,
        n_val=2,
        n_test=2,
        size=64,
        objects_per_image=(1, 2),
        object_size=(24, 32),
    )
    raw = _config(storage, demo)
    plan = build_plan(parse_config(raw))
    (task,) = plan.tasks
    assert (task.task_class, task.metric, task.direction) == ("ObjectDetectionTask", "val/mAP", "max")
    config = helpers.write_config(tmp_path / "bench.yaml", raw)
    assert main(["--config", str(config)]) == OK
    out = capsys.readouterr().out
    found = re.search(r"task=squares status=finished best=([0-9.]+)", out)
    assert found and 0.0 <= float(found.group(1)) <= 1.0, out  # the trial's best val/mAP
    (report,) = storage.glob("reports/detection_*/report.html")  # repetitions summarised
    assert "squares" in report.read_text()
