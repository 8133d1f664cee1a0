"""Parameter-efficient fine-tuning of backbones with LoRA through the optional ``peft`` package.

Config form (``peft_config`` of :class:`~terratorch.models.EncoderDecoderFactory`)::

    {"method": "LORA",
     "replace_qkv": "qkv",               # optional: split fused qkv Linear layers first
     "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear"], "r": 4, "lora_alpha": 8}}

``peft`` is imported only when a config is given (``pip install terratorch[peft]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["SUPPORTED_METHODS", "SplitQKV", "apply_peft", "replace_qkv"]

SUPPORTED_METHODS = ("LORA",)
_CONFIG_KEYS = {"method", "replace_qkv", "peft_config_kwargs"}


class SplitQKV(nn.Module):
    """A fused ``qkv`` ``nn.Linear`` split into ``q_linear``, ``k_linear``, ``v_linear``.

    The output is the concatenation ``[q, k, v]`` along the last dim, exactly what the fused layer
    returned, so attention code is unchanged while LoRA can target ``q_linear``/``v_linear`` alone.
    """

    def __init__(self, fused: nn.Linear) -> None:
        super().__init__()
        if fused.out_features % 3:
            raise ValueError(
                f"Cannot split a qkv Linear with out_features={fused.out_features} into 3 parts."
            )
        dim = fused.out_features // 3
        has_bias = fused.bias is not None
        self.q_linear, self.k_linear, self.v_linear = (
            nn.Linear(fused.in_features, dim, bias=has_bias) for _ in range(3)
        )
        with torch.no_grad():
            for i, part in enumerate((self.q_linear, self.k_linear, self.v_linear)):
                part.weight.copy_(fused.weight[i * dim : (i + 1) * dim])
                if has_bias:
                    part.bias.copy_(fused.bias[i * dim : (i + 1) * dim])

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in_features)`` → ``(..., 3 * dim)``."""
        return torch.cat([self.q_linear(x), self.k_linear(x), self.v_linear(x)], dim=-1)


def replace_qkv(model: nn.Module, name: str = "qkv") -> int:
    """Replace every ``nn.Linear`` submodule called ``name`` by :class:`SplitQKV`; return how many."""
    targets = [
        (parent, child_name)
        for parent in model.modules()
        for child_name, child in parent.named_children()
        if child_name == name and isinstance(child, nn.Linear)
    ]
    for parent, child_name in targets:
        setattr(parent, child_name, SplitQKV(getattr(parent, child_name)))
    return len(targets)


def apply_peft(backbone: nn.Module, peft_config: Mapping[str, Any]) -> nn.Module:
    """Inject LoRA adapters into ``backbone`` in place and leave only them trainable.

    The backbone keeps its class and attributes (``out_channels``, ``patch_size``, ...).

    Raises:
        ValueError: Unknown ``method``, unknown config keys, or ``replace_qkv`` matching nothing.
        ImportError: ``peft`` is not installed.
    """
    unknown = set(peft_config) - _CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"peft_config has unknown keys {sorted(unknown)}; valid keys: {sorted(_CONFIG_KEYS)}."
        )
    method = str(peft_config.get("method", "")).upper()
    if method not in SUPPORTED_METHODS:
        raise ValueError(
            f"peft_config method {peft_config.get('method')!r} is not supported; valid methods: "
            f"{list(SUPPORTED_METHODS)}."
        )
    qkv_name = peft_config.get("replace_qkv")
    if qkv_name and replace_qkv(backbone, str(qkv_name)) == 0:
        raise ValueError(
            f"peft_config replace_qkv={qkv_name!r}: the backbone has no nn.Linear submodule named "
            f"{qkv_name!r}; give the name of the fused attention projection (timm ViTs: 'qkv')."
        )
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError as error:
        raise ImportError("peft_config needs the 'peft' package: pip install 'terratorch[peft]'.") from error
    config = LoraConfig(**dict(peft_config.get("peft_config_kwargs") or {}))
    backbone = inject_adapter_in_model(config, backbone)
    for param_name, param in backbone.named_parameters():
        param.requires_grad_("lora_" in param_name)
    return backbone
