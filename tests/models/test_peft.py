"""LoRA through the peft package: qkv splitting, adapter injection, trainable parameters."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terratorch.models import EncoderDecoderFactory
from terratorch.models.peft import SplitQKV, apply_peft, replace_qkv

pytest.importorskip("peft")  # an optional extra: these tests run wherever it is installed

LORA = {
    "method": "LORA",
    "replace_qkv": "qkv",
    "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear"], "r": 4, "lora_alpha": 8},
}


def _vit_kwargs() -> dict:
    return {
        "backbone_pretrained": False,
        "backbone_img_size": 32,
        "backbone_depth": 2,
        "backbone_out_indices": [1],
    }


def test_split_qkv_computes_the_same_function():
    torch.manual_seed(0)
    fused = nn.Linear(12, 36)
    split = SplitQKV(fused)
    x = torch.randn(3, 5, 12)
    torch.testing.assert_close(split(x), fused(x))


def test_replace_qkv_counts():
    block = nn.Sequential(nn.Module(), nn.Module())
    block[0].qkv = nn.Linear(6, 18)
    block[1].qkv = nn.Linear(6, 18)
    assert replace_qkv(block, "qkv") == 2
    assert isinstance(block[0].qkv, SplitQKV)


def test_lora_through_the_factory():
    torch.manual_seed(0)
    factory = EncoderDecoderFactory()
    plain = factory.build_model(
        "classification", "vit_tiny_patch16_224", "IdentityDecoder", num_classes=2, **_vit_kwargs()
    )
    torch.manual_seed(0)
    model = factory.build_model(
        "classification",
        "vit_tiny_patch16_224",
        "IdentityDecoder",
        num_classes=2,
        peft_config=LORA,
        **_vit_kwargs(),
    )
    trainable = [n for n, p in model.encoder.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert any("q_linear.lora_A" in n for n in trainable) and any("v_linear.lora_B" in n for n in trainable)
    assert not any("k_linear.lora" in n for n in trainable)
    assert model.encoder.out_channels == [192]  # attributes survive the injection
    # LoRA starts as a no-op (B = 0) and qkv splitting preserves the function
    model.eval()
    plain.eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.encoder(x)[0], plain.encoder(x)[0], rtol=1e-4, atol=1e-4)
    model(x).output.sum().backward()
    assert all(p.grad is not None for n, p in model.encoder.named_parameters() if p.requires_grad)


def test_bad_configs():
    backbone = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"method 'DORA' is not supported; valid methods: \['LORA'\]"):
        apply_peft(backbone, {"method": "DORA"})
    with pytest.raises(ValueError, match=r"unknown keys \['rank'\]"):
        apply_peft(backbone, {"method": "LORA", "rank": 4})
    with pytest.raises(ValueError, match=r"no nn\.Linear submodule named 'qkv'"):
        apply_peft(backbone, {"method": "LORA", "replace_qkv": "qkv"})
