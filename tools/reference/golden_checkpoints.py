"""Golden fixtures of real task checkpoints: the reference fine-tunes tiny models and saves them.

Each case builds a reference task from ``model_args``, trains it for two optimizer steps on random
data with a Lightning ``Trainer``, saves the checkpoint (``weights_only``, so no optimizer state), and
stores the eval outputs of the trained model on a seeded input. One more fixture is a plain
``state_dict`` of the classification task whose encoder keys carry the legacy ``_timm_module.``
prefix older releases wrote. Our test loads every file into our tasks and compares the outputs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from golden_cases import PRITHVI_LEARNED, make_input

#: A Prithvi tiny with shrunk widths, so checkpoints stay small.
_PRITHVI = {
    "backbone": "prithvi_eo_tiny",
    "backbone_pretrained": False,
    "backbone_num_frames": 1,
    "backbone_embed_dim": 64,
    "backbone_depth": 4,
    "backbone_num_heads": 2,
}
_TIMM = {"backbone": "timm_test_resnet", "backbone_pretrained": False, "backbone_in_chans": 6}


def checkpoint_cases() -> list[dict[str, Any]]:
    """The cases; shared with ``tests/compat/test_golden_checkpoints.py`` through the manifest."""
    return [
        {
            "name": "seg_prithvi_upernet_aux",
            "task": "SemanticSegmentationTask",
            "target": "mask",
            "task_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    **_PRITHVI,
                    "necks": PRITHVI_LEARNED,
                    "decoder": "UperNetDecoder",
                    "decoder_channels": 16,
                    "num_classes": 3,
                },
                "loss": "ce",
                "ignore_index": -1,
                "aux_loss": {"aux_fcn": 0.5},
            },
            "aux_heads": [
                {"name": "aux_fcn", "decoder": "FCNDecoder", "decoder_args": {"decoder_channels": 8}}
            ],
        },
        {
            "name": "reg_prithvi_fcn",
            "task": "PixelwiseRegressionTask",
            "target": "mask",
            "task_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    **_PRITHVI,
                    "necks": [{"name": "SelectIndices", "indices": [-1]}, {"name": "ReshapeTokensToImage"}],
                    "decoder": "FCNDecoder",
                    "decoder_channels": 16,
                },
                "loss": "mse",
            },
        },
        {
            "name": "cla_timm_identity",
            "task": "ClassificationTask",
            "target": "label",
            "task_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    **_TIMM,
                    "decoder": "IdentityDecoder",
                    "head_dim_list": [16],
                    "num_classes": 3,
                },
                "loss": "ce",
                "ignore_index": -1,
            },
        },
    ]


def _batches(case: dict[str, Any], n: int = 2) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(n):
        image = torch.randn(2, 6, 64, 64, generator=generator)
        if case["target"] == "label":
            target = torch.randint(0, 3, (2,), generator=generator)
        elif case["task"] == "PixelwiseRegressionTask":
            target = torch.randn(2, 64, 64, generator=generator)
        else:
            target = torch.randint(0, 3, (2, 64, 64), generator=generator)
        batches.append({"image": image, case["target"]: target})
    return batches


def _build_task(case: dict[str, Any]) -> Any:
    import terratorch.tasks as tasks
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(case["task_args"])
    if case.get("aux_heads"):
        kwargs["aux_heads"] = [AuxiliaryHead(**a) for a in case["aux_heads"]]
    return getattr(tasks, case["task"])(**kwargs)


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        result = model(x)
    tensors = {"input": x, "output": result.output.contiguous()}
    for name, aux in (result.auxiliary_heads or {}).items():
        tensors[f"aux.{name}"] = aux.contiguous()
    return tensors


def write(out: Path) -> int:
    from lightning.pytorch import Trainer
    from safetensors.torch import save_file
    from torch.utils.data import DataLoader

    import terratorch.tasks  # noqa: F401  (imports the reference's Clay module, see below)

    # Importing the reference's model zoo sets torch.set_float32_matmul_precision("medium") globally
    # (bf16 convolutions on CPU); the fixtures are computed in plain float32 instead.
    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {}
    for case in checkpoint_cases():
        torch.manual_seed(0)
        task = _build_task(case)
        samples = [dict(zip(b, values)) for b in _batches(case) for values in zip(*b.values())]
        loader = DataLoader(samples, batch_size=2)
        trainer = Trainer(
            max_steps=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(task, train_dataloaders=loader)
        ckpt = out / f"{case['name']}.ckpt"
        trainer.save_checkpoint(str(ckpt), weights_only=True)
        x = make_input(torch, (1, 6, 64, 64), seed=3)
        save_file(_outputs(task.model, x), str(out / f"{case['name']}.safetensors"))
        manifest[case["name"]] = {
            **case,
            "checkpoint": ckpt.name,
            "state_dict": {k: list(v.shape) for k, v in task.state_dict().items()},
        }
        if case["task"] == "ClassificationTask":
            legacy = {
                (
                    k.replace("model.encoder.", "model.encoder._timm_module.", 1)
                    if k.startswith("model.encoder.")
                    else k
                ): v
                for k, v in task.state_dict().items()
            }
            torch.save({"state_dict": legacy}, out / "cla_timm_legacy_prefix.pt")
            manifest["cla_timm_legacy_prefix"] = {
                **case,
                "name": "cla_timm_legacy_prefix",
                "state_dict_file": "cla_timm_legacy_prefix.pt",
                "outputs_of": case["name"],
            }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest)
