"""Golden part "terramind_configs": TerraMind configs in the reference's documented styles, as it builds them.

Each YAML of ``tests/compat/golden/terramind_configs/configs/`` (multimodal data, band subsets, merge
methods, Thinking-in-Modalities, the temporal wrapper, LoRA) is instantiated with
``build_lightning_cli([...], run=False)`` (``${DATA}`` replaced by tiny GeoTIFFs from
:func:`make_data`) and these facts are recorded:

* task and datamodule class names, the model's state-dict layout (key -> shape);
* the class of every module that owns parameters (``module.Class``), the trainable parameter names;
* dataset lengths and the keys/shapes/dtypes of the first validation sample after ``setup("fit")``;
* the eval output of the model on a seeded input once every tensor is set by ``fill_named``
  (stored in ``outputs.safetensors``).

The reference venv has no ``peft``; the LoRA configs need it. Install it beside the venv (not into it)::

    "$(tools/reference/venv.sh)" -m pip install --target ~/.cache/terratorch-reference/peft-overlay \\
        --no-deps peft==0.21.2 transformers==5.24.0 accelerate==1.16.0 psutil==7.2.2 tokenizers==0.23.3 typer

This module puts that folder (``$TERRATORCH_REFERENCE_PEFT_OVERLAY``) on ``sys.path`` when it exists.

The TiM config's reference model also holds the LULC tokenizer (``encoder.tokenizer.*``), which ours
does not ship; the test leaves exactly those keys out and checks that the reference has them.
``tests/compat/test_golden_terramind_configs.py`` imports it to collect the same facts from ours.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOLDEN = ROOT / "tests" / "compat" / "golden" / "terramind_configs"
CONFIGS = GOLDEN / "configs"
PLACEHOLDER = "${DATA}"
SIZE = 64
#: Seeded model inputs per config: one shape per modality (a dict input) or ``"tensor"`` for one.
INPUTS: dict[str, dict[str, list[int]]] = {
    "tm_mm_seg_unet": {"S2L2A": [1, 12, SIZE, SIZE], "S1GRD": [1, 2, SIZE, SIZE]},
    "tm_mm_seg_bands_concat_upernet": {"S2L2A": [1, 6, SIZE, SIZE], "S1GRD": [1, 2, SIZE, SIZE]},
    "tm_tim_seg": {"S2L2A": [1, 12, SIZE, SIZE], "S1GRD": [1, 2, SIZE, SIZE]},
    "tm_temporal_concat_seg": {"tensor": [1, 6, 3, SIZE, SIZE]},
    "tm_lora_seg": {"S2L2A": [1, 12, SIZE, SIZE], "S1GRD": [1, 2, SIZE, SIZE]},
    "tm_mm_temporal_lora_seg": {"S2L2A": [1, 6, 2, SIZE, SIZE], "S1GRD": [1, 2, 2, SIZE, SIZE]},
}


def config_names() -> list[str]:
    """Stems of the TerraMind configs, sorted."""
    return sorted(p.stem for p in CONFIGS.glob("*.yaml"))


def enable_peft_overlay() -> bool:
    """Make ``peft`` importable in the reference venv from the overlay folder; True when it is."""
    overlay = Path(
        os.environ.get(
            "TERRATORCH_REFERENCE_PEFT_OVERLAY", Path.home() / ".cache/terratorch-reference/peft-overlay"
        )
    )
    if overlay.is_dir() and str(overlay) not in sys.path:
        sys.path.insert(0, str(overlay))
    try:
        importlib.import_module("peft")
    except ImportError:
        return False
    utils = sys.modules.get("terratorch.models.peft_utils")
    if utils is not None and not getattr(utils, "_has_peft", True):
        importlib.reload(utils)  # the reference decided "no peft" at import time
    return True


# ----------------------------------------------------------------------------- data


def make_data(root: Path) -> Path:
    """Write the tiny GeoTIFF folders the configs point at; returns ``root``.

    ``mm/{S2L2A,S1GRD,mask}/{train,val}`` (12 and 2 bands), ``mm6/S2L2A`` (6 bands) and
    ``temporal/{train,val}`` (3 frames of 6 bands, time-major in the band axis, masks beside them).
    Files are named ``<sample>_<MODALITY>.tif`` / ``<sample>_mask.tif``.
    """
    import numpy as np
    from golden_configs import _write_tif

    rng = np.random.default_rng(0)
    root = Path(root)

    def s2(bands: int) -> Any:
        return rng.integers(0, 4000, size=(bands, SIZE, SIZE)).astype("int16")

    def s1(bands: int = 2) -> Any:
        return rng.normal(-15, 5, size=(bands, SIZE, SIZE)).astype("float32")

    for split, count in (("train", 4), ("val", 2)):
        for i in range(count):
            sample = f"{split}{i}"
            _write_tif(root / "mm" / "S2L2A" / split / f"{sample}_S2L2A.tif", s2(12))
            _write_tif(root / "mm" / "S1GRD" / split / f"{sample}_S1GRD.tif", s1())
            mask = rng.integers(0, 3, size=(SIZE, SIZE)).astype("int16")
            _write_tif(root / "mm" / "mask" / split / f"{sample}_mask.tif", mask)
            _write_tif(root / "mm6" / "S2L2A" / split / f"{sample}_S2L2A.tif", s2(6))
            _write_tif(root / "temporal" / split / f"{sample}_S2L2A.tif", s2(18))
            _write_tif(root / "temporal" / split / f"{sample}_mask.tif", mask)
    return root


def cli_args(name: str, data_root: Path, work: Path) -> list[str]:
    """``["-c", <config with the placeholder replaced>]`` for config ``name``."""
    text = (CONFIGS / f"{name}.yaml").read_text().replace(PLACEHOLDER, str(data_root))
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"{name}.yaml"
    path.write_text(text)
    return ["-c", str(path)]


# ----------------------------------------------------------------------------- facts


def _tensor_facts(value: Any) -> Any:
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if isinstance(value, dict):
        return {str(k): _tensor_facts(v) for k, v in sorted(value.items())}
    return None


def _dataset_facts(datamodule: Any) -> dict[str, Any]:
    try:
        datamodule.setup("fit")
    except Exception as error:
        return {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    facts: dict[str, Any] = {}
    for split in ("train", "val"):
        dataset = getattr(datamodule, f"{split}_dataset", None)
        if dataset is not None:
            facts[f"{split}_len"] = len(dataset)
    val = getattr(datamodule, "val_dataset", None)
    if val is not None and len(val):
        try:
            sample = val[0]
            facts["val_sample"] = {
                k: f for k in sorted(sample) if (f := _tensor_facts(sample[k])) is not None
            }
        except Exception as error:
            facts["val_sample"] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    return facts


def module_classes(model: Any) -> dict[str, str]:
    """``path -> module.Class`` for every module that owns parameters itself."""
    classes = {}
    for path, module in model.named_modules():
        if any(True for _ in module.parameters(recurse=False)):
            cls = type(module)
            classes[path] = f"{cls.__module__}.{cls.__name__}"
    return classes


def make_inputs(torch: Any, name: str) -> Any:
    """The seeded model input of config ``name`` (a tensor or a modality dict)."""
    from golden_cases import make_input

    spec = INPUTS[name]
    if list(spec) == ["tensor"]:
        return make_input(torch, tuple(spec["tensor"]), seed=0)
    return {m: make_input(torch, tuple(shape), seed=i) for i, (m, shape) in enumerate(spec.items())}


def model_output(torch: Any, model: Any, name: str) -> Any:
    """Eval output of ``model`` (every tensor set by ``fill_named``) on the seeded input of ``name``."""
    from golden_cases import fill_named

    fill_named(model, torch)
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        return model(make_inputs(torch, name)).output.contiguous()


def collect(build_lightning_cli: Any, name: str, data_root: Path, work: Path) -> tuple[dict[str, Any], Any]:
    """Instantiate config ``name`` with ``build_lightning_cli(..., run=False)``; return (facts, output)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = build_lightning_cli(cli_args(name, data_root, work), run=False)
    task = cli.model
    model = getattr(task, "model", task)
    facts: dict[str, Any] = {
        "task": type(task).__name__,
        "datamodule": type(cli.datamodule).__name__,
        "layout": {k: list(v.shape) for k, v in model.state_dict().items()},
        "module_classes": module_classes(model),
        "trainable": sorted(n for n, p in model.named_parameters() if p.requires_grad),
        "datasets": _dataset_facts(cli.datamodule),
    }
    return facts, model_output(torch, model, name)


def write(out: Path) -> int:
    """Record every TerraMind config's facts in ``out/manifest.json``, outputs in ``outputs.safetensors``."""
    import tempfile

    from safetensors.torch import save_file

    from terratorch.cli_tools import build_lightning_cli

    os.environ.setdefault("TERRATORCH_DISABLE_RICH", "1")
    if not enable_peft_overlay():
        print("golden_terramind_configs: no peft (see the module docstring); LoRA configs will fail")
    manifest: dict[str, Any] = {}
    outputs = {}
    with tempfile.TemporaryDirectory() as tmp:
        data_root = make_data(Path(tmp) / "data")
        for name in config_names():
            try:
                manifest[name], outputs[name] = collect(build_lightning_cli, name, data_root, Path(tmp) / "w")
            except BaseException as error:
                manifest[name] = {"reference_error": f"{type(error).__name__}: {str(error)[:500]}"}
            print(f"golden_terramind_configs: {name}: {'ok' if 'task' in manifest[name] else manifest[name]}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    save_file(outputs, str(out / "outputs.safetensors"))
    return len(manifest)
