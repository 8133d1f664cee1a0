"""ReconstructionTask: continued masked-autoencoder pretraining with a tiny fake MAE."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

import terratorch.models.full_model_factory  # noqa: F401  (registered before restore_registries snapshots)
from terratorch.models.model import ModelOutput
from terratorch.tasks import ReconstructionTask
from terratorch.tasks.reconstruction import unpack_mae_output


class TinyMAE(nn.Module):
    """Masks random pixels, reconstructs with two convs; forward returns (loss, reconstruction, mask)."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(in_chans, 8, 3, padding=1)
        self.decoder = nn.Conv2d(8, in_chans, 3, padding=1)
        self.mask_ratios: list[float] = []

    def forward(self, x: Tensor, mask_ratio: float = 0.75, **kwargs: Any) -> tuple[Tensor, Tensor, Tensor]:
        self.mask_ratios.append(mask_ratio)
        mask = (torch.rand(x.shape[0], 1, *x.shape[-2:], device=x.device) < mask_ratio).float()
        reconstruction = self.decoder(self.encoder(x * (1 - mask)).relu())
        loss = (((reconstruction - x) ** 2) * mask).sum() / (mask.sum() * x.shape[1]).clamp_min(1)
        return loss, reconstruction, mask


@pytest.fixture
def tiny_mae(restore_registries: None) -> str:
    from terratorch.registry import TERRATORCH_FULL_MODEL_REGISTRY

    @TERRATORCH_FULL_MODEL_REGISTRY.register
    def tiny_test_mae(in_chans: int = 3) -> TinyMAE:
        return TinyMAE(in_chans)

    return "tiny_test_mae"


def test_fit_validate_test_predict_through_full_model_factory(tiny, tiny_mae):
    task = ReconstructionTask(model_args={"model": tiny_mae, "in_chans": 3}, mask_ratio=0.5, lr=0.01)
    trainer = tiny.trainer(limit_val_batches=2)
    loader = tiny.loader("segmentation")  # only "image" is used
    trainer.fit(task, loader, loader)
    assert {"train/loss", "val/loss"} <= set(trainer.callback_metrics)
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    assert "test/loss" in trainer.test(task, loader)[0]
    predicted = trainer.predict(task, tiny.loader("segmentation", n=2, batch_size=2))[0]
    assert predicted["prediction"].shape == (2, 3, 32, 32) and predicted["mask"].shape == (2, 1, 32, 32)
    assert predicted["filename"] == ["chip_0.tif", "chip_1.tif"]
    assert set(task.model.model.mask_ratios) == {0.5}


def _smooth_images(n: int) -> torch.utils.data.DataLoader:
    """Spatially smooth images, so masked pixels are predictable from their neighbours."""
    coarse = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    images = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    return torch.utils.data.DataLoader([{"image": image} for image in images], batch_size=4)


def test_training_reduces_the_reconstruction_loss(tiny):
    task = ReconstructionTask(model=TinyMAE(), lr=0.02)
    loader = _smooth_images(8)
    torch.manual_seed(1)
    before = tiny.trainer().validate(task, loader)[0]["val/loss"]
    repeated = torch.utils.data.DataLoader(list(loader) * 6, batch_size=None)
    tiny.trainer(limit_train_batches=None).fit(task, repeated)
    torch.manual_seed(1)
    assert tiny.trainer().validate(task, loader)[0]["val/loss"] < 0.8 * before


def test_freeze_backbone_freezes_the_encoder(tiny_mae):
    task = ReconstructionTask(model_args={"model": tiny_mae}, freeze_backbone=True)
    assert not any(p.requires_grad for p in task.model.model.encoder.parameters())
    assert all(p.requires_grad for p in task.model.model.decoder.parameters())


def test_hparams_match_the_signature_for_checkpoint_loading(tiny_mae):
    task = ReconstructionTask(model_args={"model": tiny_mae}, mask_ratio=0.6)
    assert set(task.hparams) <= set(ReconstructionTask.__init__.__code__.co_varnames)
    assert task.hparams.mask_ratio == 0.6 and task.hparams.loss == "mse"  # the reference saves loss too


def test_output_forms_and_errors():
    loss, rec, mask = torch.tensor(1.0), torch.zeros(1), torch.ones(1)
    assert unpack_mae_output((loss, rec, mask))[0] is loss
    assert unpack_mae_output(ModelOutput(output=(loss, rec, mask)))[1] is rec
    assert unpack_mae_output({"loss": loss, "pred": rec, "mask": mask})[2] is mask
    with pytest.raises(TypeError, match=r"must return \(loss, reconstruction, mask\).*got Tensor"):
        unpack_mae_output(loss)
    with pytest.raises(ValueError, match=r"mask_ratio must be in \[0, 1\), got 1.5"):
        ReconstructionTask(model=TinyMAE(), mask_ratio=1.5)
