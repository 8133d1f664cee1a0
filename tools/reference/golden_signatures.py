"""Golden fixtures of the public signatures we share with the reference release.

For every entry of :data:`SHARED` (a callable we also ship, addressed by the reference's import
path) the reference's parameters are recorded: name, kind and default (``repr`` of the default, or
``"required"``). Classes are recorded by their ``__init__``, methods as ``Class.method``. The CLI
part records the flags the reference's LightningCLI subclass adds beyond Lightning's own, read from
the source of ``add_arguments_to_parser`` (no instance of the CLI is built).

``tests/compat/test_golden_signatures.py`` compares our package against ``manifest.json``.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path
from typing import Any

_PRITHVI_VIT = "terratorch.models.backbones.prithvi_vit"
_PRITHVI_MAE = "terratorch.models.backbones.prithvi_mae"
_NECKS = "terratorch.models.necks"
_DECODERS = "terratorch.models.decoders"
_HEADS = "terratorch.models.heads"
_TASKS = "terratorch.tasks"
_TILED = "terratorch.tasks.tiled_inference"

#: (area, module path as the reference spells it, qualname). ``area`` names the owner of the code.
SHARED: list[tuple[str, str, str]] = [
    # backbones
    *[
        ("backbones", _PRITHVI_VIT, name)
        for name in (
            "prithvi_eo_tiny",
            "prithvi_eo_v1_100",
            "prithvi_eo_v2_tiny_tl",
            "prithvi_eo_v2_100_tl",
            "prithvi_eo_v2_300",
            "prithvi_eo_v2_600",
            "prithvi_eo_v2_300_tl",
            "prithvi_eo_v2_600_tl",
            "prithvi_eo_v1_100_mae",
            "prithvi_eo_v2_tiny_tl_mae",
            "prithvi_eo_v2_100_tl_mae",
            "prithvi_eo_v2_300_mae",
            "prithvi_eo_v2_300_tl_mae",
            "prithvi_eo_v2_600_mae",
            "prithvi_eo_v2_600_tl_mae",
        )
    ],
    ("backbones", _PRITHVI_MAE, "PrithviViT"),
    ("backbones", _PRITHVI_MAE, "PrithviMAE"),
    ("backbones", _PRITHVI_MAE, "MAEDecoder"),
    ("backbones", _PRITHVI_MAE, "PatchEmbed"),
    ("backbones", _PRITHVI_MAE, "TemporalEncoder"),
    ("backbones", _PRITHVI_MAE, "LocationEncoder"),
    ("backbones", "terratorch.models.backbones.prithvi_swin", "prithvi_swin_B"),
    ("backbones", "terratorch.models.backbones.prithvi_swin", "prithvi_swin_L"),
    ("backbones", "terratorch.models.backbones.select_patch_embed_weights", "select_patch_embed_weights"),
    ("backbones", "terratorch.registry.timm_registry", "TimmBackboneWrapper"),
    # necks
    *[
        ("necks", _NECKS, name)
        for name in (
            "SelectIndices",
            "AggregateTokens",
            "PermuteDims",
            "InterpolateToPyramidal",
            "MaxpoolToPyramidal",
            "ReshapeTokensToImage",
            "AddBottleneckLayer",
            "LearnedInterpolateToPyramidal",
            "FeaturePyramidNetworkNeck",
            "build_neck_list",
        )
    ],
    # decoders and heads
    *[
        ("decoders", _DECODERS, name)
        for name in (
            "FCNDecoder",
            "IdentityDecoder",
            "LinearDecoder",
            "MLPDecoder",
            "UNetDecoder",
            "UperNetDecoder",
            "ASPPSegmentationHead",
            "ASPPRegressionHead",
        )
    ],
    ("decoders", "terratorch.models.decoders.aspp_head", "ASPPModule"),
    ("decoders", "terratorch.models.decoders.aspp_head", "ASPPHead"),
    ("decoders", "terratorch.registry.smp_registry", "SMPDecoderWrapper"),
    ("heads", _HEADS, "RegressionHead"),
    ("heads", _HEADS, "ScalarHead"),
    ("heads", _HEADS, "SegmentationHead"),
    ("heads", _HEADS, "ClassificationHead"),
    # factories and models
    ("factories", "terratorch.models", "EncoderDecoderFactory.build_model"),
    ("factories", "terratorch.models", "PrithviModelFactory.build_model"),
    ("factories", "terratorch.models", "SMPModelFactory.build_model"),
    ("factories", "terratorch.models", "TimmModelFactory.build_model"),
    ("factories", "terratorch.models", "FullModelFactory.build_model"),
    ("factories", "terratorch.models.model", "AuxiliaryHead"),
    ("factories", "terratorch.models.model", "ModelOutput"),
    ("factories", "terratorch.models.utils", "TemporalWrapper"),
    ("factories", "terratorch.models.pixel_wise_model", "PixelWiseModel"),
    ("factories", "terratorch.models.scalar_output_model", "ScalarOutputModel"),
    # tasks
    *[
        ("tasks", _TASKS, name)
        for name in (
            "SemanticSegmentationTask",
            "PixelwiseRegressionTask",
            "ClassificationTask",
            "MultiLabelClassificationTask",
            "ScalarRegressionTask",
            "ReconstructionTask",
        )
    ],
    ("tasks", "terratorch.tasks.loss_handler", "CombinedLoss"),
    ("tasks", "terratorch.tasks.optimizer_factory", "optimizer_factory"),
    ("tasks", _TILED, "tiled_inference"),
    ("tasks", _TILED, "TiledInferenceParameters"),
    # io
    *[
        ("io", "terratorch.io.file", name)
        for name in ("open_generic_torch_model", "load_torch_weights", "load_from_file_or_attribute")
    ],
    # datamodules and datasets
    ("datamodules", "terratorch.datamodules", "GenericNonGeoSegmentationDataModule"),
    ("datamodules", "terratorch.datamodules", "GenericNonGeoPixelwiseRegressionDataModule"),
    ("datamodules", "terratorch.datamodules", "GenericNonGeoClassificationDataModule"),
    ("datasets", "terratorch.datasets", "GenericNonGeoSegmentationDataset"),
    ("datasets", "terratorch.datasets", "GenericNonGeoPixelwiseRegressionDataset"),
    ("datasets", "terratorch.datasets", "GenericNonGeoClassificationDataset"),
    # registries
    ("registry", "terratorch.registry", "Registry"),
    ("registry", "terratorch.registry", "Registry.register"),
    ("registry", "terratorch.registry", "Registry.build"),
    ("registry", "terratorch.registry", "MultiSourceRegistry"),
    ("registry", "terratorch.registry", "MultiSourceRegistry.build"),
    ("registry", "terratorch.registry", "MultiSourceRegistry.find_registry"),
    ("registry", "terratorch.registry", "MultiSourceRegistry.find_class"),
    ("registry", "terratorch.registry", "MultiSourceRegistry.register_source"),
    # cli
    ("cli", "terratorch.cli_tools", "build_lightning_cli"),
    ("cli", "terratorch.cli_tools", "LightningInferenceModel"),
    *[
        ("cli", "terratorch.cli_tools", f"LightningInferenceModel.{method}")
        for method in ("from_config", "from_task_and_datamodule", "inference", "inference_on_dir")
    ],
    ("tasks", _TASKS, "EmbeddingGenerationTask"),
    # multimodal data
    ("datamodules", "terratorch.datamodules", "GenericMultiModalDataModule"),
    *[
        ("datasets", "terratorch.datasets", name)
        for name in (
            "GenericMultimodalSegmentationDataset",
            "GenericMultimodalPixelwiseRegressionDataset",
            "GenericMultimodalScalarDataset",
        )
    ],
]


def _default_repr(value: Any) -> str:
    """A stable text for a default: objects without a useful repr are named by their type."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return f"{value.__module__}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        return f"<{type(value).__module__}.{type(value).__qualname__}>"
    return text


def describe(obj: Any) -> list[dict[str, str]]:
    """The parameters of a callable (a class by its ``__init__``), ``self`` left out."""
    target = obj.__init__ if inspect.isclass(obj) else obj
    signature = inspect.signature(target)
    params = []
    for index, param in enumerate(signature.parameters.values()):
        if index == 0 and param.name in {"self", "cls"}:
            continue
        default = "required" if param.default is inspect.Parameter.empty else _default_repr(param.default)
        params.append({"name": param.name, "kind": param.kind.name, "default": default})
    return params


def resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def cli_flags() -> dict[str, dict[str, str]]:
    """The flags the reference's LightningCLI subclass adds, with their defaults (source-read)."""
    import terratorch.cli_tools as cli

    tree = ast.parse(Path(cli.__file__).read_text())
    flags: dict[str, dict[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "add_arguments_to_parser":
            for call in ast.walk(node):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "add_argument"
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    keywords = {k.arg: ast.unparse(k.value) for k in call.keywords if k.arg}
                    flags[call.args[0].value] = {
                        "default": keywords.get("default", "None"),
                        "type": keywords.get("type", ""),
                    }
    return flags


def write(out: Path) -> int:
    entries: dict[str, Any] = {}
    for area, module, qualname in SHARED:
        obj = resolve(module, qualname)
        entries[f"{module}:{qualname}"] = {
            "area": area,
            "module": module,
            "qualname": qualname,
            "kind": "class" if inspect.isclass(obj) else "callable",
            "parameters": describe(obj),
        }
    manifest = {"signatures": entries, "cli_flags": cli_flags()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(entries) + len(manifest["cli_flags"])
