"""The case matrix shared by the oracle (run in the reference venv) and our golden tests.

Pure data plus two helpers that work with either package: :func:`fill_named` gives every
parameter and buffer a value derived only from its key and shape, so two implementations with the
same ``state_dict`` layout get bit-identical weights without storing them, and :func:`make_input`
gives the seeded input. This module must import nothing from ``terratorch``.
"""

from __future__ import annotations

import zlib
from typing import Any

PRITHVI_NECKS = [
    {"name": "SelectIndices", "indices": [0, 1, 2, 3]},
    {"name": "ReshapeTokensToImage"},
]
PRITHVI_LEARNED = [*PRITHVI_NECKS, {"name": "LearnedInterpolateToPyramidal"}]
PRITHVI_PYRAMID = [*PRITHVI_NECKS, {"name": "InterpolateToPyramidal"}]
PRITHVI_SINGLE = [{"name": "SelectIndices", "indices": [-1]}, {"name": "ReshapeTokensToImage"}]

_TINY = {"backbone": "prithvi_eo_tiny", "backbone_pretrained": False, "backbone_num_frames": 1}
_RESNET = {"backbone": "timm_resnet18", "backbone_pretrained": False, "backbone_in_chans": 6}


def _case(name: str, input_hw: int = 64, **kwargs: Any) -> dict[str, Any]:
    return {"name": name, "kwargs": kwargs, "input_shape": [1, 6, input_hw, input_hw]}


def encoder_decoder_cases() -> list[dict[str, Any]]:
    """EncoderDecoderFactory cases: backbones x decoders x tasks, with necks and aux heads."""
    cases = []
    for task, extra in (
        ("segmentation", {"num_classes": 3}),
        ("regression", {}),
        ("classification", {"num_classes": 3}),
    ):
        short = task[:3]
        if task != "classification":
            cases += [
                _case(
                    f"{short}_tiny_upernet",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_LEARNED,
                    decoder="UperNetDecoder",
                    decoder_channels=32,
                    **extra,
                ),
                _case(
                    f"{short}_tiny_upernet_scale",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_NECKS,
                    decoder="UperNetDecoder",
                    decoder_channels=16,
                    decoder_scale_modules=True,
                    **extra,
                ),
                _case(
                    f"{short}_tiny_fcn",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_SINGLE,
                    decoder="FCNDecoder",
                    decoder_channels=16,
                    **extra,
                ),
                _case(
                    f"{short}_tiny_unet",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_LEARNED,
                    decoder="UNetDecoder",
                    decoder_channels=[64, 32, 16, 8],
                    **extra,
                ),
                _case(
                    f"{short}_tiny_identity",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_SINGLE,
                    decoder="IdentityDecoder",
                    **extra,
                ),
                _case(
                    f"{short}_tiny_linear_pyr",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_PYRAMID,
                    decoder="UperNetDecoder",
                    decoder_channels=16,
                    **extra,
                ),
                _case(
                    f"{short}_resnet_upernet",
                    task=task,
                    **_RESNET,
                    decoder="UperNetDecoder",
                    decoder_channels=16,
                    **extra,
                ),
                _case(
                    f"{short}_resnet_fcn",
                    task=task,
                    **_RESNET,
                    decoder="FCNDecoder",
                    decoder_channels=16,
                    **extra,
                ),
                _case(
                    f"{short}_resnet_unet",
                    task=task,
                    **_RESNET,
                    decoder="UNetDecoder",
                    decoder_channels=[256, 128, 64, 32, 16],
                    **extra,
                ),
                _case(
                    f"{short}_resnet_smp_unet",
                    task=task,
                    **_RESNET,
                    decoder="smp_Unet",
                    decoder_decoder_channels=[64, 32, 16, 8],
                    **extra,
                ),
                _case(f"{short}_resnet_smp_fpn", task=task, **_RESNET, decoder="smp_FPN", **extra),
                _case(
                    f"{short}_resnet_head_hidden",
                    task=task,
                    **_RESNET,
                    decoder="FCNDecoder",
                    decoder_channels=16,
                    head_channel_list=[8],
                    head_dropout=0.1,
                    **extra,
                ),
                _case(
                    f"{short}_tiny_aux",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_LEARNED,
                    decoder="UperNetDecoder",
                    decoder_channels=16,
                    aux_decoders=[
                        {"name": "aux_fcn", "decoder": "FCNDecoder", "decoder_args": {"decoder_channels": 8}}
                    ],
                    **extra,
                ),
            ]
        else:
            cases += [
                _case(
                    f"{short}_tiny_identity",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_SINGLE,
                    decoder="IdentityDecoder",
                    **extra,
                ),
                _case(
                    f"{short}_tiny_upernet",
                    task=task,
                    **_TINY,
                    necks=PRITHVI_LEARNED,
                    decoder="UperNetDecoder",
                    decoder_channels=16,
                    **extra,
                ),
                _case(f"{short}_resnet_identity", task=task, **_RESNET, decoder="IdentityDecoder", **extra),
                _case(
                    f"{short}_resnet_head_hidden",
                    task=task,
                    **_RESNET,
                    decoder="IdentityDecoder",
                    head_dim_list=[16],
                    head_dropout=0.1,
                    **extra,
                ),
                _case(
                    f"{short}_resnet_fcn",
                    task=task,
                    **_RESNET,
                    decoder="FCNDecoder",
                    decoder_channels=16,
                    **extra,
                ),
            ]
    cases += [
        _case(
            "seg_tiny_mlp",
            task="segmentation",
            **_TINY,
            necks=PRITHVI_SINGLE,
            decoder="MLPDecoder",
            num_classes=3,
        ),
        _case(
            "seg_tiny_linear",
            task="segmentation",
            **_TINY,
            necks=PRITHVI_SINGLE,
            decoder="LinearDecoder",
            decoder_upsampling_size=16,
            decoder_num_classes=3,
            num_classes=3,
        ),
        _case(
            "seg_tiny_bottleneck",
            task="segmentation",
            **_TINY,
            necks=[*PRITHVI_SINGLE, {"name": "AddBottleneckLayer"}],
            decoder="FCNDecoder",
            decoder_channels=16,
            num_classes=3,
        ),
        _case(
            "seg_tiny_maxpool",
            input_hw=128,
            task="segmentation",
            **_TINY,
            necks=[*PRITHVI_NECKS, {"name": "MaxpoolToPyramidal"}],
            decoder="UperNetDecoder",
            decoder_channels=16,
            num_classes=3,
        ),
        _case(
            "seg_swin_upernet",
            task="segmentation",
            backbone="prithvi_swin_B",
            backbone_pretrained=False,
            decoder="UperNetDecoder",
            decoder_channels=16,
            num_classes=3,
        ),
        _case(
            "reg_tiny_upscale",
            task="regression",
            **_TINY,
            necks=PRITHVI_SINGLE,
            decoder="FCNDecoder",
            decoder_channels=16,
            head_learned_upscale_layers=2,
        ),
    ]
    return cases


def fill_named(module: Any, torch: Any) -> None:
    """Give every float parameter/buffer of ``module`` values seeded by a CRC of its key.

    Running statistics get positive values so batch norms stay well conditioned; integer buffers
    (``num_batches_tracked``) are left alone.
    """
    with torch.no_grad():
        for key, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            generator = torch.Generator().manual_seed(zlib.crc32(key.encode()))
            if key.endswith("running_var"):
                values = torch.rand(tensor.shape, generator=generator) + 0.5
            else:
                values = torch.randn(tensor.shape, generator=generator) * 0.05
            tensor.data.copy_(values.to(tensor.dtype))


def make_input(torch: Any, shape: tuple[int, ...], seed: int = 0) -> Any:
    """The seeded float32 input both sides feed."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))
