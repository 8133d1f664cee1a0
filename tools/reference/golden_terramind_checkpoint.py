"""Golden part "terramind_checkpoint": TerraMind checkpoints fine-tuned by the reference release.

Each case builds a reference ``SemanticSegmentationTask`` around ``terramind_v1_tiny`` (S2L2A + S1GRD),
sets every tensor with :func:`golden_cases.fill_named`, fine-tunes it for two optimizer steps with a
Lightning ``Trainer`` (frozen backbone, or frozen backbone plus LoRA adapters), saves the checkpoint
(``weights_only``) and records the eval output on a seeded input.

A tiny TerraMind is about 22 MB, so the stored ``.ckpt`` keeps only what training changed (decoder,
head, necks, LoRA adapters); the frozen backbone tensors are dropped and the manifest records their
layout plus a SHA-256 of the whole state dict. ``tests/compat/test_golden_terramind_checkpoint.py``
regenerates the dropped tensors with ``fill_named`` from their keys, checks the digest, and loads the
completed checkpoint strictly into our task.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SIZE = 64
NECKS = [
    {"name": "SelectIndices", "indices": [2, 5, 8, 11]},
    {"name": "ReshapeTokensToImage", "remove_cls_token": False},
    {"name": "InterpolateToPyramidal"},  # the learned one would add 0.7 MB per stored checkpoint
]
_BACKBONE = {
    "backbone": "terramind_v1_tiny",
    "backbone_pretrained": False,
    "backbone_modalities": ["S2L2A", "S1GRD"],
}
INPUT = {"S2L2A": [1, 12, SIZE, SIZE], "S1GRD": [1, 2, SIZE, SIZE]}
EVAL_SIZE = 32


def checkpoint_cases() -> list[dict[str, Any]]:
    """The cases; our test reads them back from the manifest."""
    return [
        {
            "name": "seg_terramind_tiny_unet",
            "task": "SemanticSegmentationTask",
            "task_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    **_BACKBONE,
                    "necks": NECKS,
                    "decoder": "UNetDecoder",
                    "decoder_channels": [32, 16, 8, 4],
                    "num_classes": 3,
                },
                "loss": "ce",
                "ignore_index": -1,
                "lr": 1e-3,
                "freeze_backbone": True,
            },
        },
        {
            "name": "seg_terramind_tiny_lora_upernet",
            "task": "SemanticSegmentationTask",
            "task_args": {
                "model_factory": "EncoderDecoderFactory",
                "model_args": {
                    **_BACKBONE,
                    "backbone_merge_method": "max",
                    "necks": NECKS,
                    "decoder": "UperNetDecoder",
                    "decoder_channels": 16,
                    "num_classes": 3,
                    "peft_config": {
                        "method": "LORA",
                        "replace_qkv": "qkv",
                        "peft_config_kwargs": {
                            "target_modules": ["q_linear", "v_linear"],
                            "r": 4,
                            "lora_alpha": 8,
                        },
                    },
                },
                "loss": "ce",
                "ignore_index": -1,
                "lr": 1e-3,
            },
        },
    ]


def regenerated(key: str) -> bool:
    """Whether ``key`` is a frozen backbone tensor, rebuilt from ``fill_named`` instead of stored."""
    return key.startswith("model.encoder.") and "lora_" not in key


def fill_layout(layout: dict[str, dict[str, Any]], torch: Any) -> dict[str, Any]:
    """Tensors for ``{key: {"shape", "dtype"}}`` exactly as ``fill_named`` sets them under those keys."""
    from golden_cases import fill_named

    tensors = {k: torch.zeros(v["shape"], dtype=getattr(torch, v["dtype"])) for k, v in layout.items()}

    class _Holder:  # fill_named only needs state_dict(keep_vars=True)
        def state_dict(self, keep_vars: bool = False) -> dict[str, Any]:
            return tensors

    fill_named(_Holder(), torch)
    return tensors


def digest(state: dict[str, Any]) -> str:
    """SHA-256 over the keys, shapes, dtypes and bytes of a state dict (in key order)."""
    sha = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        sha.update(f"{key}|{list(tensor.shape)}|{tensor.dtype}|".encode())
        sha.update(tensor.numpy().tobytes())
    return sha.hexdigest()


def make_inputs(torch: Any) -> dict[str, Any]:
    """The seeded evaluation input (a modality dict)."""
    from golden_cases import make_input

    return {
        m: make_input(torch, (1, shape[1], EVAL_SIZE, EVAL_SIZE), seed=3 + i)
        for i, (m, shape) in enumerate(INPUT.items())
    }


def _samples(torch: Any, n: int = 4) -> list[dict[str, Any]]:
    generator = torch.Generator().manual_seed(1)
    return [
        {
            "image": {m: torch.randn(shape[1:], generator=generator) for m, shape in INPUT.items()},
            "mask": torch.randint(0, 3, (SIZE, SIZE), generator=generator),
        }
        for _ in range(n)
    ]


def write(out: Path) -> int:
    import torch
    from golden_cases import fill_named
    from golden_terramind_configs import enable_peft_overlay
    from lightning.pytorch import Trainer
    from safetensors.torch import save_file
    from torch.utils.data import DataLoader

    import terratorch.tasks as tasks

    if not enable_peft_overlay():
        raise RuntimeError("golden_terramind_checkpoint needs peft; see golden_terramind_configs' docstring")
    torch.set_float32_matmul_precision("highest")
    manifest: dict[str, Any] = {}
    for case in checkpoint_cases():
        torch.manual_seed(0)
        task = getattr(tasks, case["task"])(**case["task_args"])
        fill_named(task, torch)
        before = {k: v.clone() for k, v in task.state_dict().items() if regenerated(k)}
        trainer = Trainer(
            max_steps=2,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
        )
        trainer.fit(task, train_dataloaders=DataLoader(_samples(torch), batch_size=2))
        state = task.state_dict()
        for key, value in before.items():  # the dropped tensors must be the regenerable ones
            if not torch.equal(state[key], value):
                raise RuntimeError(f"{case['name']}: frozen tensor {key} changed during training")
        trained = [k for k, v in state.items() if k.startswith("model.") and not regenerated(k)]
        ckpt_path = out / f"{case['name']}.ckpt"
        trainer.save_checkpoint(str(ckpt_path), weights_only=True)
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        full = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in full.items() if not regenerated(k)}
        torch.save(checkpoint, ckpt_path)
        task.eval()
        x = make_inputs(torch)
        with torch.no_grad():
            output = task.model(x).output.contiguous()
        save_file(
            {**{f"input.{m}": t for m, t in x.items()}, "output": output},
            str(out / f"{case['name']}.safetensors"),
        )
        manifest[case["name"]] = {
            **case,
            "checkpoint": ckpt_path.name,
            "digest": digest(full),
            "regenerated": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                for k, v in full.items()
                if regenerated(k)
            },
            "state_dict": {k: list(v.shape) for k, v in full.items()},
            "trained_keys": len(trained),
        }
        print(f"golden_terramind_checkpoint: {case['name']}: {ckpt_path.stat().st_size} bytes")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(manifest)
