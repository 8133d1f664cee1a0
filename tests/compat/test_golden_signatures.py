"""Our public signatures against the reference's (``tests/compat/golden/signatures/manifest.json``).

One test per shared public name, imported by the reference's import path. A name fails when ours
lacks a parameter the reference has, uses another default, turns a positional parameter into a
keyword-only one, reorders the reference's required positional parameters, or drops the
reference's ``*args``/``**kwargs``. Extra parameters of ours are fine. Our ``**kwargs`` stands in
for a named reference parameter only where :data:`FORWARDED` names the callable it forwards to and
that callable takes the parameter.

Deliberate differences are listed in :data:`ALLOWED` with a one-line reason; each must also be
described in ``docs/compatibility.md`` (checked by :func:`test_allowed_differences_are_documented`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from golden_signatures import describe, resolve
from tests.compat.conftest import load_manifest

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = load_manifest("signatures")
SIGNATURES: dict[str, Any] = MANIFEST["signatures"]

#: (manifest key, parameter) -> why ours differs on purpose. Also documented in docs/compatibility.md.
ALLOWED: dict[tuple[str, str], str] = {
    ("terratorch.tasks:MultiLabelClassificationTask", "loss"): (
        "deliberately different: default None selects bce (independent labels); the reference's 'ce' "
        "default treats labels as exclusive. loss='ce' is still accepted"
    ),
    **{
        ("terratorch.tasks.tiled_inference:TiledInferenceParameters", field): (
            "deliberately different: the reference's defaults are one-element tuples (a trailing-comma bug); "
            "ours are the plain values the tuples hold"
        )
        for field in (
            "h_crop",
            "h_stride",
            "w_crop",
            "w_stride",
            "delta",
            "average_patches",
            "blend_overlaps",
            "batch_size",
            "verbose",
        )
    },
}

ALLOWED.update(
    {
        (f"terratorch.models:{factory}.build_model", "pretrained"): (
            "deliberately different: default False; the reference's True downloads weights at build time, "
            "and we never download unless asked (pass pretrained=True with a local file or HF cache)"
        )
        for factory in ("SMPModelFactory", "TimmModelFactory")
    }
)

#: CLI flag -> why our default differs on purpose (also documented in docs/compatibility.md).
ALLOWED_FLAGS: dict[str, str] = {
    "--out_dtype": (
        "deliberately different: default None picks the smallest dtype that holds the predictions; "
        "the reference's int16 truncates regression outputs. --out_dtype int16 still works"
    ),
}

#: manifest key -> "module:qualname" that our ``**kwargs`` really forwards to.
FORWARDED: dict[str, str] = {}

_POSITIONAL = {"POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"}
_VARIADIC = {"VAR_POSITIONAL", "VAR_KEYWORD"}


def _ours(key: str) -> Any:
    entry = SIGNATURES[key]
    module, qualname = entry["module"], entry["qualname"]
    try:
        importlib.import_module(module)
    except ImportError as error:
        pytest.fail(f"{key}: our package has no module {module!r} (the reference's import path): {error}")
    try:
        return resolve(module, qualname)
    except AttributeError:
        pytest.fail(f"{key}: {module} has no {qualname!r}")


def signature_problems(key: str, ours: list[dict[str, str]]) -> list[str]:
    """How our parameters fall short of the reference's for ``key`` (allow-listed pairs skipped)."""
    reference = SIGNATURES[key]["parameters"]
    by_name = {p["name"]: p for p in ours}
    our_kinds = {p["kind"] for p in ours}
    forwarded: set[str] = set()
    if "VAR_KEYWORD" in our_kinds and key in FORWARDED:
        target_module, target_qualname = FORWARDED[key].split(":")
        forwarded = {p["name"] for p in describe(resolve(target_module, target_qualname))}
    problems = []
    for param in reference:
        name, kind, default = param["name"], param["kind"], param["default"]
        if (key, name) in ALLOWED:
            continue
        if kind in _VARIADIC:
            if kind not in our_kinds:
                problems.append(
                    f"{'**' if kind == 'VAR_KEYWORD' else '*'}{name}: accepted by the reference, not by ours"
                )
            continue
        mine = by_name.get(name)
        if mine is None:
            if name in forwarded:
                continue
            problems.append(f"{name}: missing (reference default {default})")
            continue
        if kind in _POSITIONAL and mine["kind"] not in _POSITIONAL:
            problems.append(f"{name}: positional in the reference, {mine['kind']} in ours")
        if default != "required" and mine["default"] != default:
            problems.append(f"{name}: default {mine['default']} in ours, {default} in the reference")
    ref_required = [p["name"] for p in reference if p["kind"] in _POSITIONAL and p["default"] == "required"]
    our_positional = [p["name"] for p in ours if p["kind"] in _POSITIONAL]
    order_allowed = any((key, n) in ALLOWED for n in ref_required)
    if not order_allowed and our_positional[: len(ref_required)] != ref_required:
        problems.append(
            f"positional order: reference starts {ref_required}, ours {our_positional[: len(ref_required)]}"
        )
    return problems


@pytest.mark.parametrize(
    "key", sorted(SIGNATURES), ids=lambda k: f"{SIGNATURES[k]['area']}-{k.split(':')[1]}"
)
def test_signature_matches_reference(key: str) -> None:
    ours = describe(_ours(key))
    problems = signature_problems(key, ours)
    assert not problems, f"{key} differs from the reference:\n  " + "\n  ".join(problems)


def test_allowed_differences_are_documented() -> None:
    """Every allow-listed pair is named (qualname and parameter on one line) in docs/compatibility.md."""
    lines = (ROOT / "docs" / "compatibility.md").read_text().splitlines()
    undocumented = [flag for flag in ALLOWED_FLAGS if not any(f"`{flag}`" in line for line in lines)]
    for key, param in ALLOWED:
        qualname = key.split(":")[1]
        if not any(qualname in line and f"`{param}`" in line for line in lines):
            undocumented.append(f"{qualname}.{param}")
    assert not undocumented, f"allow-listed differences missing from docs/compatibility.md: {undocumented}"


def test_forwarded_targets_exist() -> None:
    for key, target in FORWARDED.items():
        assert key in SIGNATURES, key
        module, qualname = target.split(":")
        assert callable(resolve(module, qualname)), target


def _our_cli_parser() -> Any:
    from lightning.pytorch.cli import LightningArgumentParser

    from terratorch.cli_tools import _cli_class

    cli = _cli_class()
    parser = LightningArgumentParser()
    cli.add_arguments_to_parser(object.__new__(cli), parser)
    return parser


@pytest.mark.parametrize("flag", sorted(MANIFEST["cli_flags"]))
def test_cli_flag_matches_reference(flag: str) -> None:
    expected = MANIFEST["cli_flags"][flag]
    parser = _our_cli_parser()
    actions = {opt: action for action in parser._actions for opt in action.option_strings}
    assert flag in actions, f"`terratorch fit` has no {flag} (the reference's LightningCLI adds it)"
    if flag in ALLOWED_FLAGS:
        return
    default = repr(actions[flag].default)
    assert default == expected["default"], (
        f"{flag}: default {default} in ours, {expected['default']} in the reference"
    )
