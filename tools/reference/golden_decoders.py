"""Golden fixtures of the decoders on their own: each built from ``DECODER_REGISTRY`` (or from its
class where the registry cannot build it) with tiny sizes, filled with
:func:`golden_cases.fill_named` and run in eval mode on seeded features.

``manifest.json`` holds, per case, the registry name (and class path, if built from the class),
channel list, constructor kwargs, feature shapes, the state-dict layout (keys and shapes),
``out_channels`` (``None`` where the decoder has none), ``includes_head`` and the output shapes;
``<case>.safetensors`` holds the features (``feature.<i>``), any extra input (``ids_restore``) and
the outputs (``output``, or ``output.<i>`` for list outputs).

:data:`CASES` and the helpers :func:`build`, :func:`features`, :func:`extra_inputs` and :func:`run`
work with either package, so our test builds and calls each case exactly as the oracle did.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PYRAMID = [4, 8, 16, 32]
PYRAMID_SHAPES = [[2, 4, 16, 16], [2, 8, 8, 8], [2, 16, 4, 4], [2, 32, 2, 2]]
# an smp-style 5-level list: entry 0 at the "input" resolution, then strides 2..16 of it
SMP5 = [4, 8, 8, 16, 16]
SMP5_SHAPES = [[1, 4, 32, 32], [1, 8, 16, 16], [1, 8, 8, 8], [1, 16, 4, 4], [1, 16, 2, 2]]
SMP4 = [8, 8, 16, 16]
SMP4_SHAPES = [[1, 8, 16, 16], [1, 8, 8, 8], [1, 16, 4, 4], [1, 16, 2, 2]]
SAME4_SHAPES = [[2, 8, 4, 4]] * 4


def _case(
    case_name: str, registry_name: str, channel_list: list[int], shapes: list[list[int]], **kwargs: Any
) -> dict[str, Any]:
    return {
        "name": case_name,
        "decoder": registry_name,
        "channel_list": channel_list,
        "feature_shapes": shapes,
        "kwargs": kwargs,
    }


CASES: list[dict[str, Any]] = [
    _case("upernet", "UperNetDecoder", PYRAMID, PYRAMID_SHAPES, channels=8),
    _case(
        "upernet_pool_noalign",
        "UperNetDecoder",
        PYRAMID,
        PYRAMID_SHAPES,
        pool_scales=[1, 2],
        channels=6,
        align_corners=False,
    ),
    _case(
        "upernet_scale_modules", "UperNetDecoder", [8, 8, 8, 8], SAME4_SHAPES, channels=8, scale_modules=True
    ),
    _case("fcn", "FCNDecoder", PYRAMID, PYRAMID_SHAPES, channels=8, num_convs=2),
    _case("fcn_in_index", "FCNDecoder", PYRAMID, PYRAMID_SHAPES, channels=4, num_convs=1, in_index=1),
    _case("identity", "IdentityDecoder", PYRAMID, PYRAMID_SHAPES, out_index=1),
    _case("linear", "LinearDecoder", PYRAMID, PYRAMID_SHAPES, num_classes=3, upsampling_size=4, in_index=-2),
    _case("mlp_maps", "MLPDecoder", [8, 8], [[2, 8, 4, 4], [2, 8, 4, 4]], activation="GELU"),
    _case("mlp_vectors", "MLPDecoder", [16], [[2, 16]], channels=7, out_dim=5),
    _case("unet", "UNetDecoder", PYRAMID, PYRAMID_SHAPES, channels=[16, 8, 8, 4]),
    _case(
        "unet_scse_nonorm",
        "UNetDecoder",
        PYRAMID,
        PYRAMID_SHAPES,
        channels=[16, 16, 16, 16],
        use_batchnorm=False,
        attention_type="scse",
    ),
    # the registry passes the channel list first, which ASPPModule takes as its dilations; it maps a
    # single map (not a list) to one map per dilation
    {
        **_case(
            "aspp_module",
            "ASPPModule",
            [1, 2],
            [[2, 8, 6, 6]],
            in_channels=8,
            channels=4,
            conv_cfg=None,
            norm_cfg=None,
            act_cfg=None,
        ),
        "call": "tensor",
    },
    # likewise ASPPHead takes the registry's channel list as its dilations
    _case("aspp_head", "ASPPHead", [1, 2, 3], PYRAMID_SHAPES, in_channels=32, channels=8),
    _case(
        "aspp_segmentation",
        "ASPPSegmentationHead",
        PYRAMID,
        PYRAMID_SHAPES,
        dilations=[1, 2],
        in_channels=32,
        channels=8,
        num_classes=3,
    ),
    _case(
        "aspp_segmentation_concat",
        "ASPPSegmentationHead",
        PYRAMID,
        PYRAMID_SHAPES,
        dilations=[1, 2],
        in_channels=48,
        channels=4,
        num_classes=2,
        input_transform="resize_concat",
        in_index=[2, 3],
        align_corners=True,
    ),
    _case(
        "aspp_regression",
        "ASPPRegressionHead",
        PYRAMID,
        PYRAMID_SHAPES,
        dilations=[1, 3],
        in_channels=16,
        channels=8,
        out_channels=2,
        in_index=2,
    ),
    # SatMAEHead via the registry would get the channel list as embed_dim, which it cannot use:
    # built from its class; "satmae" calls forward(feature.0, ids_restore)
    {
        **_case(
            "satmae_head",
            "SatMAEHead",
            [],
            [[2, 3, 8]],  # cls + 2 kept of 4 patches
            embed_dim=8,
            out_channels=8,
            num_heads=2,
            mlp_ratio=2.0,
            patch_size=2,
            num_patches=4,
            depth=1,
            in_chans=3,
        ),
        "class": "terratorch.models.decoders.satmae_head:SatMAEHead",
        "call": "satmae",
    },
    {
        **_case(
            "satmae_head_vit",
            "SatMAEHeadViT",
            [],
            [[5, 8], [5, 8]],  # one (1 + 4 patches, E) tensor per sample
            embed_dim=(4, 8),
            out_channels=8,
            num_heads=2,
            mlp_ratio=2.0,
            patch_size=2,
            num_patches=4,
            depth=2,
            in_chans=3,
        ),
        "class": "terratorch.models.decoders.satmae_head:SatMAEHeadViT",
    },
    _case("smp_unet", "smp_Unet", SMP5, SMP5_SHAPES, decoder_channels=[16, 8, 8, 4]),
    _case(
        "smp_unet_4",
        "smp_Unet",
        SMP4,
        SMP4_SHAPES,
        decoder_channels=[16, 16, 16],
        decoder_attention_type="scse",
    ),
    _case("smp_unetplusplus", "smp_UnetPlusPlus", SMP4, SMP4_SHAPES, decoder_channels=[8, 8, 4]),
    _case(
        "smp_manet", "smp_MAnet", SMP5, SMP5_SHAPES, decoder_channels=[16, 8, 8, 4], decoder_pab_channels=8
    ),
    _case("smp_linknet", "smp_Linknet", SMP5, SMP5_SHAPES),
    _case(
        "smp_fpn", "smp_FPN", SMP5, SMP5_SHAPES, decoder_pyramid_channels=8, decoder_segmentation_channels=32
    ),
    _case(
        "smp_fpn_cat",
        "smp_FPN",
        SMP4,
        SMP4_SHAPES,
        decoder_pyramid_channels=8,
        decoder_segmentation_channels=32,
        decoder_merge_policy="cat",
        decoder_interpolation="bilinear",
    ),
    _case("smp_deeplabv3", "smp_DeepLabV3", SMP5, SMP5_SHAPES, decoder_channels=8),
    _case(
        "smp_deeplabv3plus",
        "smp_DeepLabV3Plus",
        SMP5,
        SMP5_SHAPES,
        decoder_channels=8,
        decoder_atrous_rates=[1, 2, 3],
    ),
    _case("smp_pspnet", "smp_PSPNet", SMP5, SMP5_SHAPES, psp_out_channels=8),
    _case(
        "smp_pan",
        "smp_PAN",
        SMP5,
        [[1, 4, 64, 64], [1, 8, 32, 32], [1, 8, 16, 16], [1, 16, 8, 8], [1, 16, 8, 8]],
        decoder_channels=8,
    ),
    _case("smp_upernet", "smp_UPerNet", SMP5, SMP5_SHAPES, decoder_channels=8),
    _case("smp_segformer", "smp_Segformer", SMP5, SMP5_SHAPES, decoder_segmentation_channels=8),
]


def features(torch: Any, case: dict[str, Any]) -> list[Any]:
    """The seeded features of ``case`` (entry ``i`` seeded with ``100 + i``)."""
    from golden_cases import make_input

    return [make_input(torch, tuple(shape), seed=100 + i) for i, shape in enumerate(case["feature_shapes"])]


def extra_inputs(torch: Any, case: dict[str, Any]) -> dict[str, Any]:
    """Inputs besides the features: the restore permutation of the SatMAE case."""
    from golden_cases import make_input

    if case.get("call") != "satmae":
        return {}
    batch = case["feature_shapes"][0][0]
    noise = make_input(torch, (batch, case["kwargs"]["num_patches"]), seed=7)
    return {"ids_restore": torch.argsort(noise, dim=1)}


def build(case: dict[str, Any]) -> Any:
    """Build ``case`` from the registry, or from its class where ``case["class"]`` names one."""
    if "class" in case:
        import importlib

        module, qualname = case["class"].split(":")
        return getattr(importlib.import_module(module), qualname)(**case["kwargs"])
    from terratorch.registry import DECODER_REGISTRY

    return DECODER_REGISTRY.build(case["decoder"], list(case["channel_list"]), **case["kwargs"])


def run(decoder: Any, inputs: list[Any], extra: dict[str, Any], case: dict[str, Any]) -> Any:
    """Call ``decoder`` the way ``case`` says (a list, one tensor, or tokens + ids_restore)."""
    call = case.get("call", "list")
    if call == "tensor":
        return decoder(inputs[0])
    if call == "satmae":
        return decoder(inputs[0], extra["ids_restore"])
    return decoder(inputs)


def write(out: Path) -> int:
    import torch
    from golden_cases import fill_named
    from safetensors.torch import save_file

    # importing the reference sets "medium" (a clay backbone module does it): compute in full precision
    torch.set_float32_matmul_precision("highest")
    manifest = {}
    for case in CASES:
        torch.manual_seed(0)
        decoder = build(case)
        fill_named(decoder, torch)
        decoder.eval()
        inputs = features(torch, case)
        extra = extra_inputs(torch, case)
        with torch.no_grad():
            result = run(decoder, inputs, extra, case)
        tensors = {f"feature.{i}": f for i, f in enumerate(inputs)}
        tensors.update(extra)
        if isinstance(result, (list, tuple)):
            tensors.update({f"output.{i}": r.clone().contiguous() for i, r in enumerate(result)})
        else:
            tensors["output"] = result.clone().contiguous()
        save_file(tensors, str(out / f"{case['name']}.safetensors"))
        out_channels = getattr(decoder, "out_channels", None)
        manifest[case["name"]] = {
            "decoder": case["decoder"],
            "class": case.get("class"),
            "call": case.get("call", "list"),
            "channel_list": case["channel_list"],
            "kwargs": case["kwargs"],
            "feature_shapes": case["feature_shapes"],
            "state_dict": {k: list(v.shape) for k, v in decoder.state_dict().items()},
            "out_channels": int(out_channels) if isinstance(out_channels, int) else None,
            "includes_head": bool(getattr(type(decoder), "includes_head", False)),
            "outputs": {k: list(v.shape) for k, v in tensors.items() if k.startswith("output")},
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return len(manifest)
