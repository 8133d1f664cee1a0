"""TemporalWrapper and LoRA with multimodal (dict-input) encoders, the way TerraMind is used.

A small stand-in encoder takes ``{modality: (B, C_m, H, W)}``, runs a fused-``qkv`` attention block
(named like TerraMind's ``encoder.<i>.attn.qkv``) and returns one token tensor per block, or a dict
of tokens per modality (``merge_method="dict"``).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from terratorch.models.peft import SplitQKV, apply_peft, replace_qkv
from terratorch.models.temporal_wrapper import TemporalWrapper

DIM = 8


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(1, 2) / DIM**0.5, dim=-1)
        return x + self.proj(weights @ v)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = _Attention()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x)


class MultimodalEncoder(nn.Module):
    """Per-modality 4x4 patch embedding, mean merge (or a dict per modality), two blocks."""

    def __init__(self, channels: dict[str, int], merge: str = "mean") -> None:
        super().__init__()
        self.embed = nn.ModuleDict({m: nn.Conv2d(c, DIM, 4, 4) for m, c in channels.items()})
        self.encoder = nn.ModuleList([_Block(), _Block()])
        self.merge = merge
        self.out_channels = [DIM, DIM]
        self.calls: list[dict[str, tuple[int, ...]]] = []

    def forward(self, x: dict[str, torch.Tensor], scale: float = 1.0) -> list:
        self.calls.append({m: tuple(t.shape) for m, t in x.items()})
        tokens = {m: self.embed[m](t).flatten(2).transpose(1, 2) * scale for m, t in x.items()}
        names = list(tokens)
        sequence = torch.cat([tokens[m] for m in names], dim=1)
        out = []
        for block in self.encoder:
            sequence = block(sequence)
            parts = dict(zip(names, sequence.chunk(len(names), dim=1), strict=True))
            out.append(parts if self.merge == "dict" else torch.stack(list(parts.values())).mean(0))
        return out


def _inputs(frames: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "S2L2A": torch.randn(2, 4, frames, 8, 8, generator=generator),
        "S1GRD": torch.randn(2, 2, frames, 8, 8, generator=generator),
    }


def _per_frame(encoder: nn.Module, x: dict[str, torch.Tensor]) -> list[list]:
    """Features of every frame run on its own: ``[frame][layer]``."""
    frames = next(iter(x.values())).shape[2]
    return [encoder({m: t[:, :, i] if t.dim() == 5 else t for m, t in x.items()}) for i in range(frames)]


@pytest.mark.parametrize("pooling", ["mean", "max", "diff", "concat"])
def test_dict_inputs_pool_each_layer_over_time(pooling: str) -> None:
    torch.manual_seed(0)
    encoder = MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}).eval()
    frames = 2 if pooling == "diff" else 3
    wrapper = TemporalWrapper(encoder, pooling=pooling, n_timestamps=frames)
    x = _inputs(frames)
    with torch.no_grad():
        pooled = wrapper(x)
        reference = _per_frame(encoder, x)
    assert encoder.calls[0] == {"S2L2A": (2 * frames, 4, 8, 8), "S1GRD": (2 * frames, 2, 8, 8)}
    for layer, feature in enumerate(pooled):
        stack = torch.stack([frame[layer] for frame in reference], dim=1)  # (B, T, L, D)
        expected = {
            "mean": stack.mean(1),
            "max": stack.max(1).values,
            "diff": stack[:, 0] - stack[:, 1],
            "concat": torch.cat(list(stack.unbind(1)), dim=-1),  # channel t * D + d
        }[pooling]
        torch.testing.assert_close(feature, expected)
    expected_channels = [DIM * frames] * 2 if pooling == "concat" else [DIM, DIM]
    assert wrapper.out_channels == expected_channels


def test_dict_features_are_pooled_per_modality() -> None:
    encoder = MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}, merge="dict").eval()
    x = _inputs()
    with torch.no_grad():
        pooled = TemporalWrapper(encoder, pooling="mean")(x)
        reference = _per_frame(encoder, x)
    assert [sorted(f) for f in pooled] == [["S1GRD", "S2L2A"]] * 2
    for modality in ("S2L2A", "S1GRD"):
        expected = torch.stack([frame[-1][modality] for frame in reference], 1).mean(1)
        torch.testing.assert_close(pooled[-1][modality], expected)


def test_static_modality_is_repeated_for_every_frame() -> None:
    encoder = MultimodalEncoder({"S2L2A": 4, "DEM": 1}).eval()
    x = {"S2L2A": _inputs()["S2L2A"], "DEM": torch.randn(2, 1, 8, 8)}
    with torch.no_grad():
        pooled = TemporalWrapper(encoder, pooling="max")(x)
        reference = _per_frame(encoder, x)
    assert encoder.calls[0]["DEM"] == (6, 1, 8, 8)
    torch.testing.assert_close(pooled[-1], torch.stack([f[-1] for f in reference], 1).max(1).values)


def test_encoder_keyword_arguments_pass_through() -> None:
    encoder = MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}).eval()
    wrapper = TemporalWrapper(encoder)
    x = _inputs()
    with torch.no_grad():
        scaled = wrapper(x, scale=0.0, filename="ignored")  # filename: not an encoder argument
    assert not any(f.abs().sum() == 0 for f in scaled)  # blocks add their bias terms to zero tokens
    with torch.no_grad():
        torch.testing.assert_close(wrapper(x, scale=0.0)[0], scaled[0])


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (
            {"S2L2A": torch.zeros(2, 4, 3, 8, 8), "S1GRD": torch.zeros(2, 2, 2, 8, 8)},
            "share the batch size B",
        ),
        (
            {"S2L2A": torch.zeros(2, 4, 3, 8, 8), "S1GRD": torch.zeros(1, 2, 3, 8, 8)},
            "'S1GRD': \\(1, 2, 3, 8, 8\\)",
        ),
        ({"S2L2A": torch.zeros(2, 4, 8, 8)}, "no modality has a time axis"),
        ({"S2L2A": torch.zeros(2, 8, 8)}, "modalities \\['S2L2A'\\] have shapes"),
        ({}, "empty input dict"),
    ],
)
def test_bad_dict_inputs_name_the_modalities(x: dict, message: str) -> None:
    wrapper = TemporalWrapper(MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}))
    with pytest.raises(ValueError, match=message):
        wrapper(x)


# ----------------------------------------------------------------------------- LoRA

LORA = {
    "method": "LORA",
    "replace_qkv": "qkv",
    "peft_config_kwargs": {"target_modules": ["q_linear", "v_linear"], "r": 2, "lora_alpha": 4},
}


def test_lora_wraps_like_the_reference_and_keeps_the_function() -> None:
    pytest.importorskip("peft")  # an optional extra
    torch.manual_seed(0)
    plain = MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}).eval()
    model = MultimodalEncoder({"S2L2A": 4, "S1GRD": 2})
    model.load_state_dict(plain.state_dict())
    model = apply_peft(model, LORA).eval()
    keys = list(model.state_dict())
    assert all(k.startswith("base_model.model.") for k in keys)
    assert "base_model.model.encoder.0.attn.qkv.q_linear.lora_A.default.weight" in keys
    assert "base_model.model.encoder.0.attn.qkv.k_linear.weight" in keys
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert model.out_channels == [DIM, DIM]  # attributes reach through the wrapper
    x = {m: t[:, :, 0] for m, t in _inputs().items()}
    with torch.no_grad():
        # LoRA starts as a no-op; the keyword the encoder takes passes, the batch extra does not
        torch.testing.assert_close(model(x, scale=0.5, filename="x")[-1], plain(x, scale=0.5)[-1])


def test_lora_under_the_temporal_wrapper_trains_only_the_adapters() -> None:
    pytest.importorskip("peft")  # an optional extra
    torch.manual_seed(0)
    wrapper = apply_peft(TemporalWrapper(MultimodalEncoder({"S2L2A": 4, "S1GRD": 2}), pooling="mean"), LORA)
    assert any(
        k.startswith("base_model.model.encoder.encoder.1.attn.qkv.v_linear.lora_B")
        for k in wrapper.state_dict()
    )
    with torch.no_grad():  # non-zero B so gradients reach A as well
        for name, param in wrapper.named_parameters():
            if "lora_B" in name:
                param.normal_()
    sum(f.sum() for f in wrapper(_inputs())).backward()
    grads = {n for n, p in wrapper.named_parameters() if p.grad is not None}
    assert grads and all("lora_" in n for n in grads)


def test_replace_qkv_takes_a_dotted_suffix() -> None:
    model = MultimodalEncoder({"S2L2A": 4})
    assert replace_qkv(model, "attn.qkv") == 2
    assert isinstance(model.encoder[1].attn.qkv, SplitQKV)
    assert replace_qkv(model, "attn.qkv") == 0  # already split: nothing Linear left to match


def test_unknown_lora_target_gets_a_suggestion() -> None:
    pytest.importorskip("peft")  # an optional extra
    config = {**LORA, "peft_config_kwargs": {"target_modules": ["q_lienar"], "r": 2}}
    with pytest.raises(ValueError, match=r"'q_lienar' matches no nn.Linear.*Did you mean 'q_linear'"):
        apply_peft(MultimodalEncoder({"S2L2A": 4}), config)


def test_lora_wrapper_class_pickles_and_copies() -> None:
    import copy
    import pickle

    pytest.importorskip("peft")  # an optional extra
    model = apply_peft(MultimodalEncoder({"S2L2A": 4}), LORA)
    # the class is found again as terratorch.models.peft.PeftBackbone
    assert pickle.loads(pickle.dumps(type(model))) is type(model)
    assert type(copy.deepcopy(model)) is type(model)
