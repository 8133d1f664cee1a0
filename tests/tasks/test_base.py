"""Shared task behaviour (terratorch/tasks/base.py), exercised through SemanticSegmentationTask."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import Logger, MLFlowLogger, TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from terratorch.datasets import HLSBands
from terratorch.models.model import AuxiliaryHead, ModelOutput
from terratorch.tasks import SemanticSegmentationTask
from terratorch.tasks.base import check_bands, check_channels, model_channels


def _task(tiny: Any, **kwargs: Any) -> SemanticSegmentationTask:
    kwargs.setdefault("model", tiny.Model("segmentation", num_classes=3))
    kwargs.setdefault("num_classes", 3)
    return SemanticSegmentationTask(**kwargs)


def test_import_tasks_is_lazy():
    code = "import sys, terratorch.tasks; print('lightning' in sys.modules, 'torchmetrics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_model_from_registered_factory(tiny, tiny_factory):
    task = SemanticSegmentationTask(
        model_factory=tiny_factory, model_args={"backbone": "x"}, class_names=["a", "b", "c"]
    )
    call = tiny.Factory.calls[-1]
    assert call["task"] == "segmentation" and call["backbone"] == "x"
    assert call["num_classes"] == 3  # taken from class_names and passed on
    assert call["aux"] is None
    assert task.num_classes == 3
    assert isinstance(task(torch.zeros(1, 3, 8, 8)), ModelOutput)


def test_model_or_factory_required(tiny, tiny_factory):
    with pytest.raises(ValueError, match="needs model_factory"):
        SemanticSegmentationTask(num_classes=2)
    with pytest.raises(ValueError, match="either model or model_factory"):
        SemanticSegmentationTask(model=tiny.Model("segmentation"), model_factory=tiny_factory, num_classes=2)


def test_number_of_classes_must_agree_or_be_known(tiny):
    with pytest.raises(
        ValueError, match=r"Conflicting numbers of classes: \{'num_classes': 3, 'len\(class_names\)': 2\}"
    ):
        _task(tiny, class_names=["a", "b"])
    with pytest.raises(ValueError, match="needs the number of classes: set num_classes"):
        SemanticSegmentationTask(model=tiny.Model("segmentation", num_classes=3))
    with pytest.raises(ValueError, match="class_weights has 2 entries for 3 classes"):
        _task(tiny, class_weights=[1.0, 2.0])


def test_plain_tensor_models_are_wrapped(tiny):
    task = _task(tiny, model=nn.Conv2d(3, 3, 1))
    out = task(torch.zeros(2, 3, 4, 4))
    assert isinstance(out, ModelOutput) and out.output.shape == (2, 3, 4, 4)


def test_freezing_calls_model_methods(tiny):
    task = _task(tiny, freeze_backbone=True, freeze_decoder=True)
    model = task.model
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert not any(p.requires_grad for p in model.decoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    optimizer = task.configure_optimizers()["optimizer"]
    trainable = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert trainable == {id(p) for p in model.head.parameters()}
    frozen_all = _task(tiny, freeze_backbone=True, freeze_decoder=True, freeze_head=True)
    with pytest.raises(ValueError, match="No trainable parameters"):
        frozen_all.configure_optimizers()
    with pytest.raises(
        ValueError, match=r"freeze_backbone=True but the model \(Conv2d\) has no freeze_encoder\(\)"
    ):
        _task(tiny, model=nn.Conv2d(3, 3, 1), freeze_backbone=True)


def test_configure_optimizers_with_lr_overrides_and_scheduler(tiny):
    task = _task(
        tiny,
        lr=0.01,
        optimizer="SGD",
        optimizer_hparams={"momentum": 0.5},
        lr_overrides={"encoder": 0.001},
        scheduler="StepLR",
        scheduler_hparams={"step_size": 2, "warmup_epochs": 1},
    )
    config = task.configure_optimizers()
    groups = {g["name"]: g for g in config["optimizer"].param_groups}
    assert groups["encoder"]["initial_lr"] == 0.001 and groups["default"]["initial_lr"] == 0.01
    assert {id(p) for p in groups["encoder"]["params"]} == {id(p) for p in task.model.encoder.parameters()}
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.SequentialLR)
    assert config["lr_scheduler"]["monitor"] == "val/loss"


def test_unknown_optimizer_and_scheduler_fail_at_construction(tiny):
    with pytest.raises(ValueError, match=r"Unknown optimizer 'Adamm'.*Did you mean: Adam"):
        _task(tiny, optimizer="Adamm")
    with pytest.raises(ValueError, match=r"Unknown scheduler 'StepLRR'.*Did you mean: StepLR"):
        _task(tiny, scheduler="StepLRR")
    with pytest.raises(ValueError, match=r"Optimizer Adam got unknown argument\(s\) \['weight_decy'\]"):
        _task(tiny, optimizer_hparams={"weight_decy": 0.1})
    with pytest.raises(ValueError, match=r"Scheduler StepLR got unknown argument\(s\) \['T_max'\]"):
        _task(tiny, scheduler="StepLR", scheduler_hparams={"T_max": 3})


def test_lightning_cli_optimizer_sections_replace_configure_optimizers(tiny_factory, tmp_path):
    from lightning.pytorch.cli import LightningCLI
    from lightning.pytorch.demos.boring_classes import BoringDataModule

    config = tmp_path / "config.yaml"
    config.write_text(
        "model:\n"
        "  model_factory: TinyTestFactory\n"
        "  num_classes: 2\n"
        "  scheduler: StepLR\n"
        "  scheduler_hparams: {step_size: 1}\n"
        "optimizer:\n"
        "  class_path: torch.optim.SGD\n"
        "  init_args: {lr: 0.3}\n"
        "lr_scheduler:\n"
        "  class_path: torch.optim.lr_scheduler.ExponentialLR\n"
        "  init_args: {gamma: 0.5}\n"
    )
    cli = LightningCLI(
        SemanticSegmentationTask,
        BoringDataModule,
        run=False,
        args=["-c", str(config), "--trainer.logger", "false"],
        save_config_callback=None,
    )
    optimizers, schedulers = cli.model.configure_optimizers()
    assert isinstance(optimizers[0], torch.optim.SGD) and optimizers[0].param_groups[0]["lr"] == 0.3
    assert isinstance(schedulers[0], torch.optim.lr_scheduler.ExponentialLR)


def test_unknown_loss_fails_at_construction(tiny):
    with pytest.raises(ValueError, match=r"Unknown loss 'jacard'.*Did you mean: jaccard"):
        _task(tiny, loss="jacard")


def test_aux_loss_is_added_with_its_weight(tiny):
    model = tiny.Model("segmentation", num_classes=3, aux=("deep",))
    task = _task(
        tiny, model=model, aux_loss={"deep": 0.4}, aux_heads=[AuxiliaryHead("deep", "FCNDecoder", None)]
    )
    image, mask = torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8))
    output = task(image)
    expected = task.criterion(output.output, mask) + 0.4 * task.criterion(
        output.auxiliary_heads["deep"], mask
    )
    assert task.compute_loss(output, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    missing = _task(tiny, model=model, aux_loss={"other": 1.0})
    with pytest.raises(
        ValueError, match=r"aux_loss names 'other' but the model's auxiliary outputs are \['deep'\]"
    ):
        missing.compute_loss(output, mask)


def test_aux_config_is_checked(tiny, tiny_factory):
    heads = [AuxiliaryHead("deep", "FCNDecoder", {"decoder_channels": 8})]
    with pytest.raises(ValueError, match=r"aux_loss names \['typo'\] are not auxiliary heads"):
        SemanticSegmentationTask(
            model_factory=tiny_factory, num_classes=2, aux_heads=heads, aux_loss={"typo": 1.0}
        )
    with pytest.warns(UserWarning, match="aux_loss is empty"):
        SemanticSegmentationTask(model_factory=tiny_factory, num_classes=2, aux_heads=heads)
    task = SemanticSegmentationTask(
        model_factory=tiny_factory, num_classes=2, aux_heads=heads, aux_loss={"deep": 1}
    )
    assert tiny.Factory.calls[-1]["aux"] == heads
    assert set(task.model.aux) == {"deep"}


def test_label_out_of_range_is_a_clear_error(tiny):
    task = _task(tiny, ignore_index=-1)
    batch = {"image": torch.randn(1, 3, 4, 4), "mask": torch.full((1, 4, 4), 5), "filename": ["bad.tif"]}
    with pytest.raises(ValueError, match=r"train batch 7: mask values \[5\] are outside \[0, 2\].*bad.tif"):
        task.check_target(batch["mask"], "train", 7, batch)
    batch["mask"][:] = -1  # ignore_index is fine
    task.check_target(batch["mask"], "train", 0, batch)
    with pytest.raises(TypeError, match=r"mask must hold integer class indices \(int64\), got torch.float32"):
        task.check_target(batch["mask"].float(), "train", 0, batch)


def test_label_out_of_range_stops_training(tiny):
    task = _task(tiny)
    loader = tiny.loader("segmentation")
    bad = DataLoader([{**b, "mask": b["mask"] + 3} for b in loader], batch_size=None)
    with pytest.raises(ValueError, match=r"train batch 0: mask values \[.*\] are outside \[0, 2\]"):
        tiny.trainer().fit(task, bad)


def test_nan_loss_raises_floating_point_error_naming_the_batch(tiny):
    task = _task(tiny)
    batch = next(iter(tiny.loader("segmentation")))
    batch["image"][0, 0, 0, 0] = float("nan")
    with pytest.raises(
        FloatingPointError, match=r"train loss is nan at epoch 0, global step 0, batch 0.*NaN/inf"
    ):
        tiny.trainer().fit(task, DataLoader([batch], batch_size=None))


def test_missing_target_key_lists_batch_keys(tiny):
    task = _task(tiny)
    with pytest.raises(
        ValueError, match=r"expects the target under 'mask'; the batch has keys \['image', 'label'\]"
    ):
        task._unpack({"image": torch.zeros(1), "label": torch.zeros(1)})
    with pytest.raises(ValueError, match="with an 'image' key"):
        task._unpack({"mask": torch.zeros(1)})
    with pytest.raises(TypeError, match="Batches must be dicts"):
        task._unpack([torch.zeros(1)])


def test_extra_tensor_keys_reach_the_model(tiny):
    task = _task(tiny)
    batch = next(iter(tiny.loader("segmentation", n=2, batch_size=2)))
    batch["temporal_coords"] = torch.zeros(2, 1, 2)
    task.predict_step(batch, 0)
    assert set(task.model.seen_kwargs) == {"temporal_coords"}  # filename (a list) is not passed


class _BandsDataModule(pl.LightningDataModule):
    def __init__(self, bands: list[Any], loader: Any) -> None:
        super().__init__()
        self.output_bands = bands
        self._loader = loader

    def train_dataloader(self) -> Any:
        return self._loader

    def val_dataloader(self) -> Any:
        return self._loader


def test_band_cross_check_in_setup(tiny):
    task = _task(tiny, model_args={"bands": ["RED", "GREEN", "BLUE"]})
    loader = tiny.loader("segmentation", n=2, batch_size=2)
    wrong_order = _BandsDataModule(["BLUE", "GREEN", "RED"], loader)
    with pytest.raises(
        ValueError,
        match=r"(?s)model bands: +\['RED', 'GREEN', 'BLUE'\].*output_bands: \['BLUE', 'GREEN', 'RED'\]",
    ):
        tiny.trainer().fit(task, datamodule=wrong_order)
    tiny.trainer().fit(task, datamodule=_BandsDataModule(["RED", "GREEN", "BLUE"], loader))


def test_check_bands_rules():
    check_bands({"backbone_bands": [HLSBands.RED, HLSBands.GREEN]}, _Bands(["RED", "GREEN"]))
    check_bands({"bands": ["RED", "GREEN"]}, _Bands([3, 4]))  # indices: only the count can be compared
    check_bands({}, _Bands(["RED"]))  # model does not say
    check_bands({"bands": ["RED"]}, object())  # datamodule does not say
    with pytest.raises(ValueError, match="differ"):
        check_bands({"bands": ["RED", "GREEN"]}, _Bands([0, 1, 2]))
    with pytest.raises(ValueError, match=r"model bands: +\['RED', 'NIR_NARROW'\]"):
        check_bands({"backbone_bands": [HLSBands.RED, HLSBands.NIR_NARROW]}, _Bands(["RED", "GREEN"]))


class _Bands:
    def __init__(self, bands: list[Any]) -> None:
        self.output_bands = bands


def test_model_channels_prefers_an_explicit_count_over_band_lists():
    assert model_channels({"backbone_in_chans": 4, "backbone_bands": ["RED"]}) == (
        "model_args.backbone_in_chans",
        4,
    )
    assert model_channels({"backbone_kwargs": {"in_chans": 5}}) == ("model_args.backbone_kwargs.in_chans", 5)
    assert model_channels({"bands": ["RED", "GREEN"]}) == ("model_args.bands", 2)
    assert model_channels({"backbone": "timm_resnet18"}) is None


def test_check_channels_names_the_key_the_count_and_the_bands():
    check_channels({"backbone_in_chans": 2}, ["RED", "GREEN"])
    check_channels({}, ["RED", "GREEN"], data_channels=6)  # the model does not say: nothing to compare
    with pytest.raises(ValueError) as info:
        check_channels({"backbone_in_chans": 4}, ["B", "G", "R", "N", "S1", "S2"])
    message = str(info.value)
    assert "model_args.backbone_in_chans is 4 but the data has 6 channels" in message
    assert "output_bands ['B', 'G', 'R', 'N', 'S1', 'S2']" in message
    with pytest.raises(ValueError, match=r"model_args\.in_channels is 4 but the data has 3 channels"):
        check_channels({"in_channels": 4}, None, data_channels=3)


def test_channel_mismatch_fails_in_setup_before_training(tiny):
    task = _task(tiny, model_args={"backbone_in_chans": 4})
    bands = _BandsDataModule(["RED", "GREEN", "BLUE"], tiny.loader("segmentation", n=2, batch_size=2))
    with pytest.raises(ValueError, match=r"model_args\.backbone_in_chans is 4 but the data has 3 channels"):
        tiny.trainer().fit(task, datamodule=bands)


def test_channel_mismatch_without_datamodule_bands_fails_at_the_first_batch(tiny):
    task = _task(tiny, model_args={"in_channels": 6})
    loader = tiny.loader("segmentation", n=2, batch_size=2)
    with pytest.raises(ValueError, match=r"model_args\.in_channels is 6 but the data has 3 channels"):
        tiny.trainer().fit(task, train_dataloaders=loader)


def test_raw_convolution_channel_error_is_explained(tiny):
    model = tiny.Model("segmentation", num_classes=3)
    model.encoder = nn.Conv2d(5, 8, 3, padding=1)  # the model wants 5 channels, nothing says so
    task = _task(tiny, model=model)
    batch = next(iter(tiny.loader("segmentation", n=2, batch_size=2)))
    with pytest.raises(ValueError, match="the model expects 5 input channels but the data has 3") as info:
        task.training_step(batch, 0)
    assert "backbone_in_chans" in str(info.value) and isinstance(info.value.__cause__, RuntimeError)


def test_checkpoint_round_trip_rebuilds_the_model(tiny, tiny_factory, tmp_path):
    task = SemanticSegmentationTask(
        model_factory=tiny_factory, model_args={"backbone": "x"}, num_classes=3, lr=0.01
    )
    trainer = tiny.trainer(limit_val_batches=1)
    trainer.fit(task, tiny.loader("segmentation"), tiny.loader("segmentation"))
    path = tmp_path / "task.ckpt"
    trainer.save_checkpoint(path)
    loaded = SemanticSegmentationTask.load_from_checkpoint(path)
    assert loaded.hparams.lr == 0.01 and loaded.num_classes == 3
    for key, value in task.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert "model" not in loaded.hparams


def test_named_test_dataloaders_prefix_metrics(tiny):
    task = _task(tiny, test_dataloaders_names=["rural", "urban"])
    loader = tiny.loader("segmentation", n=4)
    results = tiny.trainer().test(task, [loader, loader])
    assert "test/rural/loss" in results[0] and "test/urban/loss" in results[1]
    assert "test/rural/mIoU" in results[0] and "test/urban/IoU_2" in results[1]
    with pytest.raises(
        ValueError, match=r"Test dataloader 2 has no name: test_dataloaders_names is \['rural', 'urban'\]"
    ):
        tiny.trainer().test(task, [loader, loader, loader])


def test_unnamed_extra_test_dataloaders_get_an_index(tiny):
    task = _task(tiny)
    loader = tiny.loader("segmentation", n=4)
    results = tiny.trainer().test(task, [loader, loader])
    assert "test/loss" in results[0] and "test/dataloader_1/loss" in results[1]
    assert "test/mIoU" in results[0] and "test/dataloader_1/mIoU" in results[1]


def test_several_validation_dataloaders_keep_val_names_for_the_first(tiny):
    task = _task(tiny)
    loader = tiny.loader("segmentation", n=4)
    results = tiny.trainer().validate(task, [loader, loader])
    assert "val/loss" in results[0] and "val/dataloader_1/loss" in results[1]
    assert "val/mIoU" in results[0] and "val/dataloader_1/IoU_2" in results[1]
    assert results[0]["val/mIoU"] == pytest.approx(results[1]["val/dataloader_1/mIoU"])


def test_tiled_inference_config_errors(tiny):
    with pytest.raises(ValueError, match="need tiled_inference_parameters"):
        _task(tiny, tiled_inference_on_validation=True)


def test_tiled_inference_for_predict_and_validation(tiny, monkeypatch):
    import terratorch.tasks.tiled_inference as tiled_module

    calls: list[dict[str, Any]] = []
    real = tiled_module.tiled_inference

    def spy(model_forward: Any, image: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        calls.append({"shape": tuple(image.shape), **kwargs})
        return real(model_forward, image, **kwargs)

    monkeypatch.setattr(tiled_module, "tiled_inference", spy)
    params = {"crop": 16, "stride": 8, "batch_size": 4}
    task = _task(tiny, tiled_inference_parameters=params, tiled_inference_on_validation=True)
    loader = tiny.loader("segmentation", n=4)
    predictions = tiny.trainer().predict(task, loader)
    assert predictions[0]["prediction"].shape == (4, 32, 32)
    assert predictions[0]["prediction"].dtype == torch.int64
    assert predictions[0]["filename"] == [f"chip_{i}.tif" for i in range(4)]
    assert calls and calls[0]["crop"] == 16 and calls[0]["shape"] == (4, 3, 32, 32)
    calls.clear()
    metrics = tiny.trainer().validate(task, loader)[0]
    assert len(calls) == 1 and 0.0 <= metrics["val/mIoU"] <= 1.0


class _RecordingMLflow(MLFlowLogger):
    """An MLFlowLogger that records figures and never creates an MLflow store."""

    def __init__(self) -> None:
        Logger.__init__(self)  # skip MLFlowLogger.__init__ (it would open a tracking store)
        self.figures: list[tuple[str, str, Any]] = []

    @property
    def experiment(self) -> Any:
        logger = self

        class _Client:
            def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
                logger.figures.append((run_id, artifact_file, figure))

        return _Client()

    @property
    def run_id(self) -> str:
        return "run-1"

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    @property
    def save_dir(self) -> None:
        return None

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        pass

    def log_hyperparams(self, params: Any) -> None:
        pass

    def finalize(self, status: str = "success") -> None:
        pass

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        pass


def test_plot_on_val_logs_figures_to_tensorboard_and_mlflow(tiny, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    tensorboard = TensorBoardLogger(save_dir=tmp_path)
    writer = tensorboard.experiment
    tb_figures: list[tuple[str, Any]] = []
    real_add_figure = writer.add_figure

    def add_figure(tag: str, figure: Any, **kwargs: Any) -> None:
        tb_figures.append((tag, figure))
        real_add_figure(tag, figure, **kwargs)

    monkeypatch.setattr(writer, "add_figure", add_figure)
    mlflow = _RecordingMLflow()
    task = _task(tiny, plot_on_val=2, class_names=["a", "b", "c"])
    trainer = tiny.trainer(max_epochs=3, limit_val_batches=2, logger=[tensorboard, mlflow])
    loader = tiny.loader("segmentation")
    trainer.fit(task, loader, loader)
    assert [tag for tag, _ in tb_figures] == ["val/prediction", "val/prediction"]  # epochs 0 and 2
    assert isinstance(tb_figures[0][1], Figure)
    assert list(tmp_path.rglob("events.out.tfevents.*"))
    assert [name for _, name, _ in mlflow.figures] == [
        "val/prediction_epoch_0000.png",
        "val/prediction_epoch_0002.png",
    ]
    assert {run for run, _, _ in mlflow.figures} == {"run-1"}


def test_no_plot_without_figure_loggers(tiny, monkeypatch):
    import terratorch.tasks.plotting as plotting

    monkeypatch.setattr(plotting, "plot_sample", lambda **kwargs: pytest.fail("plotted without a logger"))
    task = _task(tiny, plot_on_val=1)
    loader = tiny.loader("segmentation")
    tiny.trainer(limit_val_batches=1).fit(task, loader, loader)


@pytest.mark.parametrize(
    ("task_class", "extra", "shape"),
    [
        ("SemanticSegmentationTask", {"num_classes": 3}, (2, 3, 32, 32)),
        ("PixelwiseRegressionTask", {}, (2, 32, 32)),
        ("ClassificationTask", {"num_classes": 4}, (2, 4)),
        ("ScalarRegressionTask", {}, (2, 1)),
    ],
)
def test_tasks_build_with_the_encoder_decoder_factory(task_class, extra, shape):
    import terratorch.tasks as tasks

    model_args = {
        "backbone": "resnet10t",
        "backbone_pretrained": False,
        "decoder": "FCNDecoder",
        "decoder_channels": 16,
        **extra,
    }
    task = getattr(tasks, task_class)(model_factory="EncoderDecoderFactory", model_args=model_args)
    output = task(torch.randn(2, 3, 32, 32)).output
    assert output.shape == shape
    target_shape = shape[:1] if task_class == "ScalarRegressionTask" else shape
    target = (
        torch.randint(0, 3, shape[:1] + shape[2:]) if "num_classes" in extra else torch.randn(target_shape)
    )
    task.compute_loss(ModelOutput(output), target).backward()
    assert any(p.grad is not None for p in task.model.parameters())
