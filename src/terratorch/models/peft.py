"""Parameter-efficient fine-tuning of backbones with LoRA through the optional ``peft`` package.

Config form (``peft_config`` of :class:`~terratorch.models.EncoderDecoderFactory`)::

    {"method": "LORA",
     "replace_qkv": "qkv",               # optional: split fused qkv Linear layers first
     "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear"], "r": 4, "lora_alpha": 8}}

The backbone is wrapped in a ``peft.PeftModel`` as the reference release does, so state-dict keys read
``base_model.model.<backbone key>`` and checkpoints of both releases load into each other. TerraMind,
Prithvi and timm ViTs name their fused attention projection ``qkv`` (``encoder.<i>.attn.qkv`` in
TerraMind), so the same config works for all of them.

``peft`` is imported only when a config is given (``pip install terratorch[peft]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "SUPPORTED_METHODS",
    "SplitQKV",
    "apply_peft",
    "replace_qkv",
]  # PeftBackbone: lazy, see __getattr__

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
        self.in_features, self.out_features = fused.in_features, fused.out_features
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
    """Replace every ``nn.Linear`` called ``name`` by :class:`SplitQKV`; return how many were replaced.

    ``name`` matches a submodule's own name (``qkv``) or the end of its dotted path (``attn.qkv``), as
    the reference's suffix match does.
    """
    suffix = f".{name}"
    targets = [
        path
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear) and (path == name or path.endswith(suffix))
    ]
    for path in targets:
        parent_path, _, child = path.rpartition(".")
        parent = model.get_submodule(parent_path) if parent_path else model
        setattr(parent, child, SplitQKV(getattr(parent, child)))
    return len(targets)


def _linear_names(model: nn.Module) -> list[str]:
    """Distinct last path segments of the ``nn.Linear`` layers of ``model`` (LoRA target candidates)."""
    return sorted({path.rpartition(".")[2] for path, m in model.named_modules() if isinstance(m, nn.Linear)})


def _check_targets(backbone: nn.Module, kwargs: Mapping[str, Any]) -> None:
    """Raise early when a listed ``target_modules`` name matches no ``nn.Linear`` of the backbone."""
    from terratorch.choices import did_you_mean

    targets = kwargs.get("target_modules")
    if targets is None or isinstance(targets, str):  # a regex or "all-linear": peft decides
        return
    names = _linear_names(backbone)
    paths = [p for p, m in backbone.named_modules() if isinstance(m, nn.Linear)]
    for target in targets:
        if not any(p == target or p.endswith(f".{target}") for p in paths):
            raise ValueError(
                f"peft_config.peft_config_kwargs.target_modules: {target!r} matches no nn.Linear of the "
                f"backbone.{did_you_mean(str(target), names)} Linear layer names: {names}."
            )


_PEFT_BACKBONE: type | None = None


def _peft_backbone_class() -> type:
    """Build (once) the ``PeftModel`` subclass; ``peft`` is only imported here."""
    global _PEFT_BACKBONE
    if _PEFT_BACKBONE is None:
        from peft import PeftModel

        from terratorch.models.backbone_adapter import accepted_kwargs

        class PeftBackbone(PeftModel):
            """A ``peft.PeftModel`` around a backbone that passes on only the keyword arguments it takes.

            The plain ``PeftModel.forward(*args, **kwargs)`` hides the backbone's signature, so batch
            extras (``temporal_coords``, ...) would reach backbones that do not accept them.
            """

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                """Run the wrapped backbone with the LoRA adapters active."""
                accepted = accepted_kwargs(self.get_base_model())
                if accepted is not None:
                    keep = accepted | set(self.special_peft_forward_args)
                    kwargs = {k: v for k, v in kwargs.items() if k in keep}
                return super().forward(*args, **kwargs)

        PeftBackbone.__module__ = __name__
        PeftBackbone.__qualname__ = "PeftBackbone"  # picklable as terratorch.models.peft.PeftBackbone
        _PEFT_BACKBONE = PeftBackbone
    return _PEFT_BACKBONE


def __getattr__(name: str) -> Any:
    # ``PeftBackbone`` needs peft at class creation: resolve it lazily (also for unpickling).
    if name == "PeftBackbone":
        return _peft_backbone_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def apply_peft(backbone: nn.Module, peft_config: Mapping[str, Any]) -> nn.Module:
    """Wrap ``backbone`` in a ``PeftModel`` with LoRA adapters; only the adapters stay trainable.

    Attributes of the backbone (``out_channels``, ``patch_size``, ...) stay reachable through the
    wrapper; the state-dict keys gain the ``base_model.model.`` prefix, as in the reference release.

    Raises:
        ValueError: Unknown ``method`` or config keys, ``replace_qkv`` matching nothing, or a
            ``target_modules`` name matching no ``nn.Linear`` of the backbone.
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
    try:
        from peft import LoraConfig
    except ImportError as error:
        raise ImportError("peft_config needs the 'peft' package: pip install 'terratorch[peft]'.") from error
    qkv_name = peft_config.get("replace_qkv")
    if qkv_name and replace_qkv(backbone, str(qkv_name)) == 0:
        raise ValueError(
            f"peft_config replace_qkv={qkv_name!r}: the backbone has no nn.Linear submodule named "
            f"{qkv_name!r}; give the name of the fused attention projection (TerraMind, Prithvi and "
            f"timm ViTs: 'qkv'). Linear layer names: {_linear_names(backbone)}."
        )
    kwargs = dict(peft_config.get("peft_config_kwargs") or {})
    _check_targets(backbone, kwargs)
    return _peft_backbone_class()(backbone, LoraConfig(**kwargs))
