"""A mistyped ``model_args`` key is named (with a suggestion) before anything is built, in every factory.

Without the check Python reports ``backbon`` as "missing argument 'backbone'", which hides the typo.
"""

from __future__ import annotations

import inspect

import pytest

from terratorch.registry import MODEL_FACTORY_REGISTRY

CASES = [
    (
        "EncoderDecoderFactory",
        {"backbon": "timm_resnet18", "decoder": "FCNDecoder", "num_classes": 2},
        "backbone",
    ),
    (
        "EncoderDecoderFactory",
        {"backbone": "timm_resnet18", "decodr": "FCNDecoder", "num_classes": 2},
        "decoder",
    ),
    ("EncoderDecoderFactory", {"backbone": "x", "decoder": "FCNDecoder", "num_clases": 2}, "num_classes"),
    ("PrithviModelFactory", {"backbone": "x", "decoder": "FCNDecoder", "bandss": ["RED"]}, "bands"),
    (
        "PrithviModelFactory",
        {"backbone": "x", "decoder": "FCNDecoder", "bands": ["RED"], "num_clases": 2},
        "num_classes",
    ),
    ("SMPModelFactory", {"backbone": "resnet18", "modell": "Unet"}, "model"),
    ("TimmModelFactory", {"backbon": "resnet18", "num_classes": 2}, "backbone"),
    ("TimmModelFactory", {"backbone": "resnet18", "num_clases": 2}, "num_classes"),
    ("FullModelFactory", {"modell": "prithvi_eo_tiny_mae"}, "model"),
]


@pytest.mark.parametrize(("factory", "model_args", "meant"), CASES)
def test_unknown_key_is_named_with_a_suggestion(factory, model_args, meant, monkeypatch):
    from terratorch.registry import BACKBONE_REGISTRY

    def no_build(*args, **kwargs):
        raise AssertionError("a backbone was built before the arguments were checked")

    monkeypatch.setattr(BACKBONE_REGISTRY, "build", no_build)
    typo = next(key for key in model_args if key not in _parameters(factory))
    with pytest.raises(ValueError) as info:
        MODEL_FACTORY_REGISTRY.build(factory).build_model(task="segmentation", **model_args)
    message = str(info.value)
    assert repr(typo) in message and repr(meant) in message and "missing" not in message


def test_missing_key_without_a_typo_is_still_reported():
    with pytest.raises(
        TypeError, match=r"EncoderDecoderFactory\.build_model is missing required.*'backbone'"
    ):
        MODEL_FACTORY_REGISTRY.build("EncoderDecoderFactory").build_model(
            task="segmentation", decoder="FCNDecoder"
        )


def test_signatures_stay_visible_to_inspect():
    for name in ("EncoderDecoderFactory", "PrithviModelFactory", "SMPModelFactory", "TimmModelFactory"):
        assert "backbone" in _parameters(name)
    assert "model" in _parameters("FullModelFactory")


def _parameters(factory: str) -> list[str]:
    return list(inspect.signature(MODEL_FACTORY_REGISTRY[factory].build_model).parameters)
