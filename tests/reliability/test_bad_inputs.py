"""Bad-input corpus: every case must fail with the documented exit code, no traceback, and a message
that names the offending config key or file.

Each case builds one broken input (a ``terratorch fit|validate|predict`` config, its data, a
checkpoint, or a ``terratorch iterate`` benchmark config) next to a working baseline and runs the real
entry point in-process (:func:`terratorch.__main__.main`). The baselines themselves are checked to
succeed (or, for benchmarks, to validate), so a case fails only because of what it breaks.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from terratorch import exit_codes

Build = Callable[[Any, Path, Any], list[str]]


@dataclass(frozen=True)
class Case:
    """One bad input: how to build its command line, the exit code, what the message must contain."""

    build: Build
    code: int
    needles: tuple[str, ...]
    forbidden: tuple[str, ...] = ()


CASES: dict[str, Case] = {}


def case(name: str, *needles: str, code: int = exit_codes.INVALID_INPUT, forbidden: tuple[str, ...] = ()):
    """Register the decorated command-line builder as case ``name``."""

    def register(build: Build) -> Build:
        assert name not in CASES, name
        CASES[name] = Case(build, code, needles, forbidden)
        return build

    return register


def set_path(config: dict[str, Any], dotted: str, value: Any) -> None:
    """``config[a][b][c] = value`` for ``dotted = "a.b.c"`` (missing mappings are created)."""
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def del_path(config: dict[str, Any], dotted: str) -> None:
    """Remove ``dotted`` from ``config``."""
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    del node[last]


def fit_case(name: str, path: str, value: Any, *needles: str, command: str = "fit", **kwargs: Any) -> None:
    """A case that sets one key of the baseline fit config."""

    @case(name, *needles, **kwargs)
    def build(data: Any, workdir: Path, h: Any) -> list[str]:
        config = h.fit_config(data, workdir)
        set_path(config, path, value)
        return [command, "-c", h.write_yaml(workdir / "config.yaml", config)]


def chips_case(name: str, *needles: str, config: dict[str, Any] | None = None, **chip_args: Any) -> None:
    """A case that trains on freshly written chips (see ``write_chips``) with ``config`` keys set."""

    @case(name, *needles)
    def build(data: Any, workdir: Path, h: Any) -> list[str]:
        cfg = h.use_chips(h.fit_config(data, workdir), *h.write_chips(workdir / "chips", **chip_args))
        for path, value in (config or {}).items():
            set_path(cfg, path, value)
        return ["fit", "-c", h.write_yaml(workdir / "config.yaml", cfg)]


MODEL = "model.init_args"
MODEL_ARGS = "model.init_args.model_args"
DATA = "data.init_args"

# ----------------------------------------------------------------------------- fit: config keys
fit_case("top_level_key_typo", "trainr", {"max_epochs": 1}, "trainr")
fit_case("trainer_key_typo", "trainer.max_epoch", 1, "max_epoch", "max_epochs")
fit_case("task_argument_typo", f"{MODEL}.los", "ce", "los", "loss")
fit_case("task_class_typo", "model.class_path", "SemanticSegmentationTsk", "SemanticSegmentationTsk")
fit_case("datamodule_class_typo", "data.class_path", "GenericNonGeoSegmentationDataModul", "DataModul")
fit_case("datamodule_argument_typo", f"{DATA}.batchsize", 2, "batchsize", "batch_size")
fit_case("model_args_key_typo", f"{MODEL_ARGS}.backbon", "x", "backbon", "backbone")
fit_case("backbone_name_typo", f"{MODEL_ARGS}.backbone", "reliability_cn", "reliability_cn")
fit_case("decoder_name_typo", f"{MODEL_ARGS}.decoder", "FCNDecodr", "FCNDecodr", "FCNDecoder")
fit_case("loss_typo", f"{MODEL}.loss", "cee", "cee")
fit_case("optimizer_typo", f"{MODEL}.optimizer", "Adamm", "Adamm")
fit_case("scheduler_typo", f"{MODEL}.scheduler", "CosineLR", "CosineLR")
fit_case("batch_size_not_a_number", f"{DATA}.batch_size", "four", "batch_size")
fit_case("batch_size_zero", f"{DATA}.batch_size", 0, "batch_size")
fit_case("lr_not_a_number", f"{MODEL}.lr", "fast", "lr")
fit_case("class_weights_length", f"{MODEL}.class_weights", [1.0, 2.0], "class_weights")
fit_case("num_classes_conflict", f"{MODEL}.num_classes", 5, "num_classes")
fit_case(
    "tiled_validation_without_parameters", f"{MODEL}.tiled_inference_on_validation", True, "tiled_inference"
)
fit_case("custom_modules_path_missing", "custom_modules_path", "nowhere/modules", "nowhere/modules")
fit_case("output_band_typo", f"{DATA}.output_bands", ["BLUE", "GREEN", "REDD"], "REDD", "RED")
fit_case("empty_band_range", f"{DATA}.dataset_bands", [[3, 1]], "dataset_bands")
fit_case("means_wrong_length", f"{DATA}.means", [0.1, 0.2], "means")
fit_case("means_file_missing", f"{DATA}.means", "no/means.txt", "no/means.txt")
fit_case("stds_missing_with_means", f"{DATA}.stds", None, "stds")
fit_case(
    "transform_class_typo",
    f"{DATA}.train_transform",
    [{"class_path": "albumentations.HorizontalFlp"}],
    "HorizontalFlp",
)


@case("pretrained_weights_missing", "no/w.pt")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    config = h.fit_config(data, workdir)
    overlay = {"file": "no/w.pt"}
    config["model"]["init_args"]["model_args"].update(
        backbone="timm_resnet18", backbone_pretrained=True, backbone_pretrained_cfg_overlay=overlay
    )
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("config_file_missing", "does_not_exist.yaml")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    return ["fit", "-c", "does_not_exist.yaml"]


@case("config_yaml_syntax_error", "broken.yaml")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "broken.yaml").write_text("trainer: {max_epochs: 1\nmodel: [\n")
    return ["fit", "-c", str(workdir / "broken.yaml")]


@case("config_not_a_mapping", "list.yaml")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "list.yaml").write_text("- trainer\n- model\n")
    return ["fit", "-c", str(workdir / "list.yaml")]


@case("unknown_command_line_flag", "not_a_flag", code=exit_codes.USAGE)
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    return [
        "fit",
        "-c",
        h.write_yaml(workdir / "config.yaml", h.fit_config(data, workdir)),
        "--not_a_flag",
        "1",
    ]


@case("unknown_subcommand", "fitt", code=exit_codes.USAGE)
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    return ["fitt", "-c", "config.yaml"]


# ----------------------------------------------------------------------------- fit: data
fit_case("train_root_missing", f"{DATA}.train_data_root", "no/such/dir", "train_data_root", "no/such/dir")
fit_case("val_root_missing", f"{DATA}.val_data_root", "no/val/dir", "val_data_root", "no/val/dir")
fit_case("label_root_missing", f"{DATA}.train_label_data_root", "no/labels", "train_label_data_root")
fit_case("img_grep_matches_nothing", f"{DATA}.img_grep", "*.png", "img_grep", "*.png")
fit_case("label_grep_matches_nothing", f"{DATA}.label_grep", "*_lbl.tif", "label_grep", "*_lbl.tif")
fit_case("split_file_missing", f"{DATA}.train_split", "no/split.txt", "no/split.txt")
fit_case("model_channels_differ_from_bands", f"{MODEL_ARGS}.backbone_in_chans", 4, "backbone_in_chans", "6")
chips_case(
    "model_channels_differ_from_unnamed_bands",
    "model_args.backbone_in_chans",
    "6 channels",
    config={
        f"{DATA}.dataset_bands": None,
        f"{DATA}.output_bands": None,
        f"{MODEL_ARGS}.backbone_in_chans": 4,
    },
)
fit_case("batch_size_larger_than_train_split", f"{DATA}.batch_size", 64, "batch_size", "drop_last")


@case("split_file_empty", "empty_split.txt")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "empty_split.txt").write_text("\n")
    config = h.fit_config(data, workdir)
    config["data"]["init_args"]["train_split"] = str(workdir / "empty_split.txt")
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("split_selects_nothing", "train_split", "nothing_split.txt")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "nothing_split.txt").write_text("no_such_chip\n")
    config = h.fit_config(data, workdir)
    config["data"]["init_args"]["train_split"] = str(workdir / "nothing_split.txt")
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("image_dir_empty", "train_data_root", "empty_images")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "empty_images").mkdir()
    config = h.fit_config(data, workdir)
    config["data"]["init_args"]["train_data_root"] = str(workdir / "empty_images")
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


NAN = np.full((6, 32, 32), np.nan, dtype=np.float32)
PARTLY_NAN = np.full((6, 32, 32), 0.5, dtype=np.float32)
PARTLY_NAN[:, :, :4] = np.nan  # a NaN stripe: not empty, but NaN reaches the model without no_data_replace
chips_case("label_in_another_crs", "EPSG:4326", "chip0_mask.tif", "chip0_img.tif", label_crs=4326)
chips_case("label_footprint_shifted", "footprint", "chip0_mask.tif", label_shift=300.0)
chips_case("label_of_another_size", "size mismatch", "chip0_mask.tif", label_size=24)
chips_case("all_images_nan", "hold no data", "chip0_img.tif", image=NAN)
chips_case(
    "all_images_nodata_value",
    "hold no data",
    "chip1_img.tif",
    image=np.full((6, 32, 32), -9999.0, np.float32),
    nodata=-9999.0,
)
chips_case(
    "nan_pixels_without_no_data_replace",
    "chip0_img.tif",
    "no_data_replace",
    image=PARTLY_NAN,
    config={f"{DATA}.no_data_replace": None},
)
chips_case("label_values_out_of_range", "chip0_mask.tif", "num_classes", label=np.full((32, 32), 7, np.int16))
chips_case(
    "chips_of_different_sizes",
    "batch_size",
    "chip1_img.tif",
    images={1: np.zeros((6, 24, 24), np.float32)},
    labels={1: np.zeros((24, 24), np.int16)},
)
chips_case(
    "dataset_bands_more_than_file",
    "dataset_bands",
    "_img.tif",
    config={
        f"{DATA}.dataset_bands": [*"ABCDEFGH"],
        f"{DATA}.output_bands": None,
        f"{MODEL_ARGS}.backbone_in_chans": 8,
    },
)


@case("image_without_label", "chip1_img.tif", "label_grep")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    images, labels = h.write_chips(workdir / "chips")
    (labels / "chip1_mask.tif").unlink()
    config = h.use_chips(h.fit_config(data, workdir), images, labels)
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("corrupt_image_file", "chip0_img.tif")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    images, labels = h.write_chips(workdir / "chips")
    (images / "chip0_img.tif").write_bytes(os.urandom(2048))
    config = h.use_chips(h.fit_config(data, workdir), images, labels)
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("truncated_image_file", "chip1_img.tif")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    images, labels = h.write_chips(workdir / "chips")
    path = images / "chip1_img.tif"
    path.write_bytes(path.read_bytes()[:600])
    config = h.use_chips(h.fit_config(data, workdir), images, labels)
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


def classification_config(data: Any, workdir: Path, h: Any) -> dict[str, Any]:
    """The baseline fit config turned into a classification run on the classification demo data."""
    config = h.fit_config(data, workdir)
    config["data"] = {
        "class_path": "GenericNonGeoClassificationDataModule",
        "init_args": data.cls.datamodule_kwargs(batch_size=2, num_workers=0),
    }
    config["model"]["class_path"] = "ClassificationTask"
    config["model"]["init_args"]["model_args"].update(decoder="IdentityDecoder")
    for key in ("decoder_channels", "decoder_num_convs"):
        config["model"]["init_args"]["model_args"].pop(key)
    config["model"]["init_args"].pop("ignore_index")
    return config


@case("classification_root_without_class_folders", "train_data_root", "class folders")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    images, _ = h.write_chips(workdir / "flat")
    config = classification_config(data, workdir, h)
    config["data"]["init_args"]["train_data_root"] = str(images)
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("classification_folder_not_a_class", "class_names")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    config = classification_config(data, workdir, h)
    names = config["data"]["init_args"]["class_names"]
    config["data"]["init_args"]["class_names"] = names[:-1]
    config["model"]["init_args"]["model_args"]["num_classes"] = len(names) - 1
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


@case("classification_num_classes_differs_from_folders", "num_classes")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    config = classification_config(data, workdir, h)
    config["data"]["init_args"].pop("class_names")
    config["data"]["init_args"]["num_classes"] = 5
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


# ----------------------------------------------------------------------------- checkpoints
def validate_with(name: str, *needles: str, content: bytes | None = None, forbidden: tuple[str, ...] = ()):
    """A ``validate --ckpt_path`` case; ``content`` is written to the checkpoint (None: no file)."""

    @case(name, *needles, forbidden=forbidden)
    def build(data: Any, workdir: Path, h: Any) -> list[str]:
        path = workdir / f"{name}.ckpt"
        if content is not None:
            path.write_bytes(content)
        config = h.write_yaml(workdir / "config.yaml", h.fit_config(data, workdir))
        return ["validate", "-c", config, "--ckpt_path", str(path)]


validate_with("checkpoint_missing", "checkpoint_missing.ckpt")
validate_with(
    "checkpoint_random_bytes",
    "checkpoint_random_bytes.ckpt",
    "not a",
    content=os.urandom(4096),
    forbidden=("weights_only=False",),
)
validate_with(
    "checkpoint_empty_file", "checkpoint_empty_file.ckpt", content=b"", forbidden=("weights_only=False",)
)


@case("checkpoint_is_a_directory", "ckpt_dir")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "ckpt_dir").mkdir()
    config = h.write_yaml(workdir / "config.yaml", h.fit_config(data, workdir))
    return ["validate", "-c", config, "--ckpt_path", str(workdir / "ckpt_dir")]


@case("checkpoint_of_another_model", "model.")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    import torch

    path = workdir / "other.ckpt"
    state = {"model.other_layer.weight": torch.zeros(2, 2)}
    torch.save(
        {"state_dict": state, "pytorch-lightning_version": "2.5.0", "epoch": 0, "global_step": 0}, path
    )
    config = h.write_yaml(workdir / "config.yaml", h.fit_config(data, workdir))
    return ["validate", "-c", config, "--ckpt_path", str(path)]


@case("checkpoint_without_state_dict", "plain.ckpt")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    import torch

    torch.save({"weight": torch.zeros(2)}, workdir / "plain.ckpt")
    config = h.write_yaml(workdir / "config.yaml", h.fit_config(data, workdir))
    return ["validate", "-c", config, "--ckpt_path", str(workdir / "plain.ckpt")]


@case("pretrained_weights_random_bytes", "junk_weights.pt", forbidden=("weights_only=False",))
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "junk_weights.pt").write_bytes(os.urandom(4096))
    config = h.fit_config(data, workdir)
    overlay = {"file": str(workdir / "junk_weights.pt")}
    config["model"]["init_args"]["model_args"].update(
        backbone="timm_resnet18", backbone_pretrained=True, backbone_pretrained_cfg_overlay=overlay
    )
    return ["fit", "-c", h.write_yaml(workdir / "config.yaml", config)]


# ----------------------------------------------------------------------------- predict
def predict_config(data: Any, workdir: Path, h: Any, **extra: Any) -> dict[str, Any]:
    """The baseline config with ``predict_data_root`` and ``extra`` top-level keys."""
    config = h.fit_config(data, workdir)
    config["data"]["init_args"]["predict_data_root"] = str(data.seg.image_dir)
    config.update(extra)
    return config


def predict_case(name: str, *needles: str, setup: Callable[[Path], None] | None = None, **extra: Any) -> None:
    """A ``predict`` case with ``extra`` top-level keys (``setup(workdir)`` runs first)."""

    @case(name, *needles)
    def build(data: Any, workdir: Path, h: Any) -> list[str]:
        if setup is not None:
            setup(workdir)
        config = predict_config(data, workdir, h, **extra)
        return ["predict", "-c", h.write_yaml(workdir / "predict.yaml", config)]


predict_case("predict_without_output_dir", "predict_output_dir")
predict_case("predict_dtype_typo", "uint9", predict_output_dir="out", out_dtype="uint9")
predict_case(
    "predict_streaming_without_tiles",
    "tiled_inference_parameters",
    predict_output_dir="out",
    predict_streaming=True,
)
predict_case(
    "predict_output_dir_is_a_file",
    "taken",
    setup=lambda workdir: (workdir / "taken").write_text("a file"),
    predict_output_dir="taken",
)


@case("predict_root_missing", "predict_data_root", "no/scenes")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    config = predict_config(data, workdir, h, predict_output_dir="out")
    config["data"]["init_args"]["predict_data_root"] = "no/scenes"
    return ["predict", "-c", h.write_yaml(workdir / "predict.yaml", config)]


# ----------------------------------------------------------------------------- benchmark configs
def bench_case(
    name: str, change: Callable[[dict[str, Any], Path], Any], *needles: str, **kwargs: Any
) -> None:
    """A ``terratorch iterate`` case: ``change(config, workdir)`` breaks the baseline benchmark config."""

    @case(name, *needles, **kwargs)
    def build(data: Any, workdir: Path, h: Any) -> list[str]:
        config = h.bench_config(data, workdir)
        change(config, workdir)
        return ["iterate", "--config", h.write_yaml(workdir / "bench.yaml", config)]


def _task_init(index: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda config: config["tasks"][index]["datamodule"]["init_args"]


bench_case("bench_unknown_top_level_key", lambda c, w: c.update(n_trails=2), "n_trails", "n_trials")
bench_case("bench_task_type_typo", lambda c, w: c["tasks"][0].update(type="segmentaton"), "tasks[0].type")
bench_case("bench_metric_not_logged", lambda c, w: c["tasks"][0].update(metric="val/RMSE"), "tasks[0].metric")
bench_case(
    "bench_direction_invalid", lambda c, w: c["tasks"][1].update(direction="maximize"), "tasks[1].direction"
)
bench_case("bench_duplicate_task_names", lambda c, w: c["tasks"][1].update(name="seg"), "'seg'")
bench_case(
    "bench_space_unknown_key",
    lambda c, w: c.update(optimization_space={"lrr": {"min": 1e-4, "max": 1e-2, "type": "real"}}),
    "optimization_space.lrr",
)
bench_case(
    "bench_space_empty_range",
    lambda c, w: c.update(optimization_space={"lr": {"min": 1e-2, "max": 1e-4, "type": "real"}}),
    "optimization_space.lr",
)
bench_case(
    "bench_backbone_unknown", lambda c, w: c["backbone"].update(backbone="reliability_cn"), "reliability_cn"
)
bench_case(
    "bench_datamodule_argument_typo",
    lambda c, w: _task_init(0)(c).update(batchsize=2),
    "tasks[0].datamodule.init_args.batchsize",
)
bench_case(
    "bench_trainer_argument_typo",
    lambda c, w: c["defaults"]["trainer_args"].update(max_epoch=1),
    "max_epoch",
)
bench_case(
    "bench_weights_file_missing",
    lambda c, w: c["backbone"].update(backbone_args={"pretrained_cfg_overlay": {"file": "no/weights.pt"}}),
    "pretrained_cfg_overlay.file",
    "no/weights.pt",
)
bench_case(
    "bench_storage_unreachable", lambda c, w: c.update(storage_uri="http://127.0.0.1:9"), "storage_uri"
)
bench_case(
    "bench_second_task_train_root_missing",
    lambda c, w: _task_init(1)(c).update(train_data_root=str(w / "missing_train")),
    "tasks[1].datamodule.init_args.train_data_root",
    "missing_train",
)
bench_case(
    "bench_second_task_train_root_not_given",
    lambda c, w: _task_init(1)(c).pop("train_data_root"),
    "tasks[1].datamodule.init_args.train_data_root",
)
bench_case(
    "bench_glob_matches_nothing",
    lambda c, w: _task_init(0)(c).update(img_grep="*.png"),
    "tasks[0].datamodule.init_args.img_grep",
)
bench_case(
    "bench_label_root_missing",
    lambda c, w: _task_init(0)(c).update(val_label_data_root=str(w / "no_labels")),
    "tasks[0].datamodule.init_args.val_label_data_root",
)
bench_case(
    "bench_means_file_missing",
    lambda c, w: _task_init(1)(c).update(means=str(w / "no_means.txt")),
    "tasks[1].datamodule.init_args.means",
)


@case("bench_config_missing", "nope.yaml")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    return ["iterate", "--config", str(workdir / "nope.yaml")]


@case("bench_yaml_syntax_error", "bad_bench.yaml")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    (workdir / "bad_bench.yaml").write_text("experiment_name: x\ntasks: [\n")
    return ["iterate", "--config", str(workdir / "bad_bench.yaml")]


@case("bench_override_out_of_range", "tasks.5.lr")
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    config = h.write_yaml(workdir / "bench.yaml", h.bench_config(data, workdir))
    return ["iterate", "--config", config, "--tasks.5.lr", "0.1"]


@case("bench_without_config", "--config", code=exit_codes.USAGE)
def _(data: Any, workdir: Path, h: Any) -> list[str]:
    return ["iterate", "--dry-run"]


# ----------------------------------------------------------------------------- the tests
def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60


def test_baselines_are_valid(data, workdir, helpers, capfd, no_training):
    """The unbroken fit config trains and the unbroken benchmark config validates."""
    run = helpers.run_main(
        ["fit", "-c", helpers.write_yaml(workdir / "ok.yaml", helpers.fit_config(data, workdir))], capfd
    )
    assert run.code == exit_codes.OK, run.text[-3000:]
    bench = helpers.write_yaml(workdir / "bench.yaml", helpers.bench_config(data, workdir))
    run = helpers.run_main(["iterate", "--config", bench, "--dry-run"], capfd)
    assert run.code == exit_codes.OK and "config is valid" in run.out, run.text[-3000:]


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_fails_cleanly(name, data, workdir, helpers, capfd, no_training):
    bad = CASES[name]
    run = helpers.run_main(bad.build(data, workdir, helpers), capfd)
    shown = run.text[-3000:]
    assert run.code == bad.code, f"exit code {run.code}, expected {bad.code}:\n{shown}"
    assert "Traceback" not in run.text, shown
    for needle in bad.needles:
        assert needle in run.text, f"{needle!r} not in the message:\n{shown}"
    for needle in bad.forbidden:
        assert needle not in run.text, f"{needle!r} must not be suggested:\n{shown}"


INTERRUPT_MODULE = '''
import os
import signal

from lightning.pytorch.callbacks import Callback


class InterruptAtFirstBatch(Callback):
    """Send this process SIGINT (as Ctrl-C does) when the first training batch starts."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        os.kill(os.getpid(), signal.SIGINT)
'''


def test_sigint_during_fit_exits_130_without_traceback(data, workdir, helpers, capfd):
    (workdir / "interrupt_callback.py").write_text(INTERRUPT_MODULE)
    config = helpers.fit_config(data, workdir)
    config["trainer"]["callbacks"] = [{"class_path": "interrupt_callback.InterruptAtFirstBatch"}]
    path = helpers.write_yaml(workdir / "config.yaml", config)
    previous = signal.getsignal(signal.SIGINT)
    import sys

    sys.path.insert(0, str(workdir))
    # Ctrl-C in a terminal reaches Python's default handler; a suite started in the background by a
    # shell without job control inherits SIGINT ignored, so install the default for this run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        run = helpers.run_main(["fit", "-c", path], capfd)
    finally:
        signal.signal(signal.SIGINT, previous)  # Lightning ignores SIGINT while it shuts down
        sys.path.remove(str(workdir))
        sys.modules.pop("interrupt_callback", None)
    assert run.code == exit_codes.INTERRUPTED, run.text[-3000:]
    assert "Traceback" not in run.text, run.text[-3000:]
