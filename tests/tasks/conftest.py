"""Tiny models, in-memory datasets and a quiet Trainer for the task tests (CPU, 32 px, seconds)."""

from __future__ import annotations

import types
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from terratorch.models.model import Model, ModelOutput

IN_CHANNELS = 3
SIZE = 32


class TinyModel(Model):
    """encoder → decoder → head, all 1x1/3x3 convs; output shape depends on ``kind``.

    ``kind``: ``segmentation`` → ``(B, C, H, W)``; ``regression`` → ``(B, H, W)``;
    ``classification`` → ``(B, C)``; ``scalar`` → ``(B,)``. ``aux`` adds auxiliary heads by name.
    """

    def __init__(self, kind: str, num_classes: int = 1, aux: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kind = kind
        out = num_classes if kind in ("segmentation", "classification") else 1
        self.encoder = nn.Conv2d(IN_CHANNELS, 8, 3, padding=1)
        self.decoder = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, out, 1)
        self.aux = nn.ModuleDict({name: nn.Conv2d(8, out, 1) for name in aux})
        self.seen_kwargs: dict[str, Any] = {}

    def _finish(self, y: Tensor) -> Tensor:
        if self.kind == "regression":
            return y.squeeze(1)
        if self.kind == "classification":
            return y.mean(dim=(2, 3))
        if self.kind == "scalar":
            return y.mean(dim=(1, 2, 3))
        return y

    def forward(self, x: Tensor, **kwargs: Any) -> ModelOutput:
        self.seen_kwargs = kwargs
        features = self.decoder(self.encoder(x).relu()).relu()
        aux = {name: self._finish(head(features)) for name, head in self.aux.items()}
        return ModelOutput(output=self._finish(self.head(features)), auxiliary_heads=aux or None)

    def freeze_encoder(self) -> None:
        self.encoder.requires_grad_(False)

    def freeze_decoder(self) -> None:
        self.decoder.requires_grad_(False)

    def freeze_head(self) -> None:
        self.head.requires_grad_(False)


class TinyFactory:
    """A model factory for tests: ``build_model(task, num_classes=None, aux_decoders=None)``."""

    calls: list[dict[str, Any]] = []

    def build_model(
        self, task: str, num_classes: int | None = None, aux_decoders: list | None = None, **kwargs: Any
    ) -> Model:
        TinyFactory.calls.append({"task": task, "num_classes": num_classes, "aux": aux_decoders, **kwargs})
        kind = {"scalar_regression": "scalar"}.get(task, task)
        names = tuple(a.name for a in aux_decoders or [])
        return TinyModel(kind, num_classes=num_classes or 1, aux=names)


class DictDataset(Dataset):
    """Deterministic batch dicts with a learnable target: the sign of the first band decides."""

    def __init__(self, kind: str, n: int = 8, num_classes: int = 3, ignore_index: int | None = None) -> None:
        self.kind, self.n, self.num_classes, self.ignore_index = kind, n, num_classes, ignore_index

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, Any]:
        gen = torch.Generator().manual_seed(index)
        image = torch.randn(IN_CHANNELS, SIZE, SIZE, generator=gen)
        item: dict[str, Any] = {"image": image, "filename": f"chip_{index}.tif"}
        band = image[0]
        if self.kind == "segmentation":
            mask = (band > 0).long() + (band > 1).long()
            if self.ignore_index is not None:
                mask[:2] = self.ignore_index
            item["mask"] = mask.clamp_max(self.num_classes - 1)
        elif self.kind == "regression":
            item["mask"] = band * 2.0 + 1.0
        elif self.kind == "classification":
            item["label"] = torch.tensor(index % self.num_classes)
        elif self.kind == "multilabel":
            item["label"] = torch.tensor(
                [(index >> k) & 1 for k in range(self.num_classes)], dtype=torch.float32
            )
        elif self.kind == "scalar":
            item["label"] = band.mean() * 3.0
        return item


def loader(kind: str, n: int = 8, batch_size: int = 4, **kwargs: Any) -> DataLoader:
    """A DataLoader over :class:`DictDataset`."""
    return DataLoader(DictDataset(kind, n=n, **kwargs), batch_size=batch_size)


def make_trainer(**overrides: Any) -> Any:
    """A quiet CPU Trainer (1 epoch, 2 train batches, no logger/checkpoints)."""
    from lightning.pytorch import Trainer

    kwargs: dict[str, Any] = {
        "max_epochs": 1,
        "limit_train_batches": 2,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "log_every_n_steps": 1,
    }
    kwargs.update(overrides)
    return Trainer(**kwargs)


@pytest.fixture
def tiny() -> types.SimpleNamespace:
    """The helpers above, as one object (tests import nothing from conftest directly)."""
    return types.SimpleNamespace(
        Model=TinyModel, Factory=TinyFactory, DictDataset=DictDataset, loader=loader, trainer=make_trainer
    )


@pytest.fixture
def tiny_factory(restore_registries: None) -> str:
    """Register :class:`TinyFactory` as ``TinyTestFactory`` for one test; returns the name."""
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    TinyFactory.calls = []
    MODEL_FACTORY_REGISTRY.register(TinyFactory, name="TinyTestFactory")
    return "TinyTestFactory"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
