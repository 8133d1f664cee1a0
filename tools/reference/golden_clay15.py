"""Golden fixtures of Clay v1.5 (``models/backbones/clay_v15``) and of the two Clay model factories.

The reference release registers no Clay v1.5 backbone, so its ``Encoder`` class is built with a tiny
size (:data:`TINY`, unmasked, no shuffle), filled with :func:`golden_cases.fill_named` and run on seeded
inputs; the stored outputs are block 0 (computed block by block from the reference modules) and the
encoder's own output (the last block after the final norm). Ours loads the same weights through
``ckpt_path`` from a Clay Lightning checkpoint (``{"state_dict": {"model.encoder.*": ...}}``, the
layout of the published ``clay-v1.5.ckpt``). A tiny ``ClayMAE`` stores its layout, its encoder and
decoder outputs at mask ratio 0.5 and its three losses; its teacher is :class:`TinyTeacher` (the
reference's ``timm.create_model`` call is redirected to it, since the real teacher is a download). The
key names and shapes of the published ``large`` encoder and decoder are recorded (built on the meta
device). The factories store the layouts (and output shapes) of what they build and their signatures.
The helpers here import no ``terratorch``, so the
golden test runs the same cases with our implementation.
"""

from __future__ import annotations

import importlib
import inspect
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from golden_cases import fill_named, make_input

IMG_SIZE = 32
PATCH = 8
#: A tiny encoder size both sides can build: (dim - 8) divisible by 4, two blocks.
TINY = {"dim": 32, "depth": 2, "heads": 2, "dim_head": 16, "mlp_ratio": 2}
TINY_DECODER = {
    "decoder_dim": 16,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "decoder_dim_head": 8,
    "decoder_mlp_ratio": 2,
}
#: Clay's central wavelengths (µm) of the default bands (the values our backbone uses for these names).
WAVES = {"blue": 0.493, "green": 0.56, "red": 0.665, "nir": 0.842, "swir16": 1.61, "swir22": 2.19}
META = {
    "time": [[0.5, -0.25, 0.75, 0.1]],
    "latlon": [[0.3, 0.9, -0.6, 0.2]],
}

BACKBONE_CASES: dict[str, dict[str, Any]] = {
    # the default bands and gsd (10 m), no date/location
    "default": {"bands": list(WAVES), "gsd": None, "meta": False},
    # four bands given as wavelengths, date, location and a 30 m gsd
    "meta4": {"bands": [0.49, 0.56, 0.665, 0.842], "gsd": 30.0, "meta": True},
}
DEFAULT_GSD = 10.0

#: ClayMAE arguments of the tiny pre-training model (besides the sizes).
MAE_KWARGS: dict[str, Any] = {
    "mask_ratio": 0.5,
    "patch_size": PATCH,
    "norm_pix_loss": False,
    "shuffle": False,
    "teacher": "tiny_teacher",
    "dolls": [16, 32],
    "doll_weights": [1, 1],
    "metadata": {
        "sentinel-2-l2a": {
            "bands": {"wavelength": dict(WAVES)},
            "gsd": DEFAULT_GSD,
            "rgb_indices": [2, 1, 0],
        }
    },
}

#: Factory cases: (factory, build_model keyword arguments).
FACTORY_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "clay_v1_segmentation": (
        "ClayModelFactory",
        {
            "task": "segmentation",
            "backbone": "clay_v1_base",
            "decoder": "FCNDecoder",
            "in_channels": 6,
            "bands": list(WAVES),
            "num_classes": 3,
            "pretrained": False,
            "backbone_img_size": IMG_SIZE,
        },
    ),
    "clay15_pretraining": (
        "Clay1_5ModelFactory",
        {
            "task": "segmentation",
            "backbone": "clay_v15",
            "decoder": "FCNDecoder",
            "in_channels": 6,
            "bands": list(WAVES),
            "batch_size": 1,
            "platform": ["sentinel-2-l2a"],
            **MAE_KWARGS,
            **TINY,
            **TINY_DECODER,
        },
    ),
}


#: Where each factory class lives (the same module paths in both releases).
FACTORY_MODULES = {
    "ClayModelFactory": "terratorch.models.clay_model_factory",
    "Clay1_5ModelFactory": "terratorch.models.clay1_5_model_factory",
}


class TinyTeacher(torch.nn.Module):
    """A stand-in for the timm teacher (the reference would download one): a 14 px patch projection
    averaged over the image, ``num_features`` wide."""

    num_features = 24

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Conv2d(3, self.num_features, kernel_size=14, stride=14)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).mean(dim=(2, 3))


def with_teacher(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the teacher name replaced by a :class:`TinyTeacher` (what ours is given)."""
    return {**kwargs, "teacher": TinyTeacher()} if kwargs.get("teacher") == "tiny_teacher" else dict(kwargs)


def layout(module: torch.nn.Module) -> dict[str, list[int]]:
    """Key → shape of ``module``'s state dict."""
    return {k: list(v.shape) for k, v in module.state_dict().items()}


def input_for(case: dict[str, Any]) -> torch.Tensor:
    """The seeded ``[1, C, IMG_SIZE, IMG_SIZE]`` input of a backbone case."""
    return make_input(torch, (1, len(case["bands"]), IMG_SIZE, IMG_SIZE))


def waves_of(case: dict[str, Any]) -> list[float]:
    """The wavelength (µm) of each band of ``case``."""
    return [WAVES[b] if isinstance(b, str) else float(b) for b in case["bands"]]


def datacube(case: dict[str, Any]) -> dict[str, Any]:
    """The Clay datacube (pixels, time, latlon, gsd, waves) of ``case``, as the reference encoder reads it."""
    x = input_for(case)
    meta = case["meta"]
    return {
        "pixels": x,
        "time": torch.tensor(META["time"]) if meta else torch.zeros(1, 4),
        "latlon": torch.tensor(META["latlon"]) if meta else torch.zeros(1, 4),
        "gsd": torch.tensor(DEFAULT_GSD if case["gsd"] is None else case["gsd"]),
        "waves": torch.tensor(waves_of(case)),
    }


def backbone_kwargs(case: dict[str, Any], ckpt_path: str | None = None) -> dict[str, Any]:
    """Keyword arguments of ``BACKBONE_REGISTRY.build("clay_v15_tiny", ...)`` (ours) for ``case``."""
    kwargs: dict[str, Any] = {**TINY, "bands": list(case["bands"])}
    if case["gsd"] is not None:
        kwargs["gsd"] = case["gsd"]
    if ckpt_path is not None:
        kwargs["ckpt_path"] = ckpt_path
    return kwargs


def forward_kwargs(case: dict[str, Any]) -> dict[str, Any]:
    """Date and location inputs of our backbone's ``forward`` for ``case``."""
    if not case["meta"]:
        return {}
    return {"time": torch.tensor(META["time"]), "latlon": torch.tensor(META["latlon"])}


def write_encoder_checkpoint(encoder: torch.nn.Module, path: Path) -> None:
    """Fill ``encoder`` by key name and save it as the published Lightning layout (``model.encoder.*``)."""
    fill_named(encoder, torch)
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in encoder.state_dict().items()}}, path)


def mae_datacube() -> dict[str, Any]:
    """A two-sample batch for the MAE: zero locations, so Clay's random channel dropping never fires."""
    pixels = make_input(torch, (2, len(WAVES), IMG_SIZE, IMG_SIZE), seed=1)
    return {
        "pixels": pixels,
        "time": torch.tensor(META["time"] * 2),
        "latlon": torch.zeros(2, 4),
        "platform": ["sentinel-2-l2a", "sentinel-2-l2a"],
    }


def mae_outputs(mae: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Encoder tokens, reconstruction and the three losses of a filled tiny MAE (eval mode)."""
    batch = mae_datacube()
    cube = {
        **batch,
        "gsd": torch.tensor(DEFAULT_GSD),
        "waves": torch.tensor(list(WAVES.values())),
    }
    mae.eval()
    with torch.no_grad():
        encoded, unmasked, masked, mask = mae.encoder(cube)
        pixels, _ = mae.decoder(
            encoded, unmasked, masked, mask, cube["time"], cube["latlon"], cube["gsd"], cube["waves"]
        )
        losses = mae(batch)
    return {
        "encoded": encoded.contiguous(),
        "pixels": pixels.contiguous(),
        "mask": mask.contiguous(),
        "losses": torch.stack(list(losses)),
    }


def factory_output_shape(model: torch.nn.Module, case: dict[str, Any]) -> list[int]:
    """Shape of ``model(x).output`` for a zero input of the factory case."""
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, case["in_channels"], IMG_SIZE, IMG_SIZE))
    return list(out.output.shape)


def signature_of(function: Any) -> list[list[str]]:
    """``[name, repr(default)]`` of every named parameter (sequences as lists, so ``()`` equals ``[]``)."""
    out = []
    for p in inspect.signature(function).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
            continue
        default = p.default
        if isinstance(default, tuple):
            default = list(default)
        out.append([p.name, "<required>" if default is p.empty else repr(default)])
    return out


@contextmanager
def _tiny_teacher() -> Iterator[None]:
    """The reference builds its teacher with ``timm.create_model(name, pretrained=True)`` (a download):
    make that call return a :class:`TinyTeacher` for ``"tiny_teacher"``."""
    import terratorch.models.backbones.clay_v15.model as clay_model

    original = clay_model.timm.create_model

    def create(name: str, *args: Any, **kwargs: Any) -> torch.nn.Module:
        return TinyTeacher() if name == "tiny_teacher" else original(name, *args, **kwargs)

    clay_model.timm.create_model = create
    try:
        yield
    finally:
        clay_model.timm.create_model = original


def _reference_blocks(encoder: torch.nn.Module, cube: dict[str, Any]) -> list[torch.Tensor]:
    """Every block output of the reference encoder (its forward returns only the last, normalised)."""
    patches, _ = encoder.to_patch_embed(cube["pixels"], cube["waves"])
    patches = encoder.add_encodings(patches, cube["time"], cube["latlon"], cube["gsd"])
    kept, *_ = encoder.mask_out(patches)
    x = torch.cat((encoder.cls_token.expand(kept.shape[0], -1, -1), kept), dim=1)
    outputs = []
    for attn, ff in encoder.transformer.layers:
        x = attn(x) + x
        x = ff(x) + x
        outputs.append(x)
    outputs[-1] = encoder.transformer.norm(x)
    return outputs


def write(out: Path) -> int:
    from box import Box
    from safetensors.torch import save_file

    from terratorch.models.backbones.clay_v15.model import ClayMAE, Decoder, Encoder
    from terratorch.registry import MODEL_FACTORY_REGISTRY

    torch.set_float32_matmul_precision("highest")  # importing clay_v15 sets it to "medium"
    manifest: dict[str, Any] = {"img_size": IMG_SIZE, "tiny": TINY, "backbone": {}, "factories": {}}
    tensors: dict[str, torch.Tensor] = {}

    for name, case in BACKBONE_CASES.items():
        torch.manual_seed(0)
        encoder = Encoder(mask_ratio=0.0, patch_size=PATCH, shuffle=False, **TINY)
        fill_named(encoder, torch)
        encoder.eval()
        cube = datacube(case)
        with torch.no_grad():
            last, *_ = encoder(cube)
            blocks = _reference_blocks(encoder, cube)
        assert torch.equal(blocks[-1], last), "block-by-block run must end in the encoder's output"
        tensors[f"{name}.block0"] = blocks[0].contiguous()
        tensors[f"{name}.last"] = last.contiguous()
        manifest["backbone"][name] = {
            **case,
            "checkpoint_layout": {f"model.encoder.{k}": v for k, v in layout(encoder).items()},
        }

    with torch.device("meta"):
        sizes = {"dim": 1024, "depth": 24, "heads": 16, "dim_head": 64, "mlp_ratio": 4}
        large = {
            "encoder": Encoder(mask_ratio=0.75, patch_size=PATCH, shuffle=False, **sizes),
            "decoder": Decoder(
                mask_ratio=0.75, patch_size=PATCH, encoder_dim=1024, dim=512, depth=4, heads=4, dim_head=64,
                mlp_ratio=4,
            ),
        }  # fmt: skip
    manifest["large_layout"] = {
        f"model.{part}.{k}": v for part, m in large.items() for k, v in layout(m).items()
    }

    with _tiny_teacher():
        torch.manual_seed(0)
        # the reference reads metadata by attribute (python-box), as its factory converts it
        mae = ClayMAE(**{**MAE_KWARGS, "metadata": Box(MAE_KWARGS["metadata"])}, **TINY, **TINY_DECODER)
    fill_named(mae, torch)
    for key, tensor in mae_outputs(mae).items():
        tensors[f"mae.{key}"] = tensor
    manifest["mae_layout"] = layout(mae)

    for name, (factory, kwargs) in FACTORY_CASES.items():
        torch.manual_seed(0)
        with _tiny_teacher():
            model = MODEL_FACTORY_REGISTRY.build(factory).build_model(**kwargs)
        entry: dict[str, Any] = {"factory": factory, "layout": layout(model), "type": type(model).__name__}
        if "metadata" not in kwargs:
            entry["output_shape"] = factory_output_shape(model, kwargs)
        manifest["factories"][name] = entry
    for factory, module in FACTORY_MODULES.items():
        cls = getattr(importlib.import_module(module), factory)
        manifest.setdefault("signatures", {})[factory] = signature_of(cls.build_model)

    save_file(tensors, str(out / "features.safetensors"))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(BACKBONE_CASES) + 1 + len(FACTORY_CASES)
