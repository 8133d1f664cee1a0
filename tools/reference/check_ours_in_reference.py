"""The other direction of the golden tests: weights written by OUR package load into the reference.

Two steps, one per interpreter::

    .venv/bin/python tools/reference/check_ours_in_reference.py --write /tmp/ours
    "$(tools/reference/venv.sh)" tools/reference/check_ours_in_reference.py --check /tmp/ours

``--write`` builds every model of the golden matrix (and every task of the checkpoint fixtures) with
our package, with its own random initialisation, and saves the state dict, a seeded input and our
eval outputs. ``--check`` builds the same models with the reference release, loads each state dict
with ``strict=True`` and prints ``N/M loaded strictly, max |diff|`` over the outputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from golden_cases import encoder_decoder_cases, make_input  # noqa: E402


def _build_model(kwargs: dict[str, Any]) -> torch.nn.Module:
    from terratorch.models import EncoderDecoderFactory
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(kwargs)
    if "aux_decoders" in kwargs:
        kwargs["aux_decoders"] = [AuxiliaryHead(**a) for a in kwargs["aux_decoders"]]
    return EncoderDecoderFactory().build_model(**kwargs)


def _build_task(case: dict[str, Any]) -> Any:
    import terratorch.tasks as tasks
    from terratorch.models.model import AuxiliaryHead

    kwargs = dict(case["task_args"])
    if case.get("aux_heads"):
        kwargs["aux_heads"] = [AuxiliaryHead(**a) for a in case["aux_heads"]]
    return getattr(tasks, case["task"])(**kwargs)


def _task_cases() -> dict[str, dict[str, Any]]:
    path = HERE.parents[1] / "tests" / "compat" / "golden" / "checkpoints" / "manifest.json"
    if not path.exists():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if "task_args" in v and "checkpoint" in v}


def _outputs(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        result = model(x)
    out = {"output": result.output.contiguous()}
    for name, aux in (result.auxiliary_heads or {}).items():
        out[f"aux.{name}"] = aux.contiguous()
    return out


def _entries() -> list[tuple[str, str, dict[str, Any], tuple[int, ...]]]:
    entries = [("model", c["name"], c["kwargs"], tuple(c["input_shape"])) for c in encoder_decoder_cases()]
    entries += [("task", name, case, (1, 6, 64, 64)) for name, case in _task_cases().items()]
    return entries


def write(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for kind, name, spec, shape in _entries():
        try:
            torch.manual_seed(0)
            built = _build_model(spec) if kind == "model" else _build_task(spec)
            model = built if kind == "model" else built.model
            x = make_input(torch, shape, seed=5)
            torch.save(
                {"state_dict": built.state_dict(), "input": x, "outputs": _outputs(model, x)},
                out / f"{kind}_{name}.pt",
            )
            written += 1
        except Exception as error:  # report and go on: the check counts what is missing
            print(f"write {kind} {name}: {type(error).__name__}: {str(error)[:200]}")
    print(f"wrote {written}/{len(_entries())} state dicts to {out}")


def check(src: Path) -> int:
    import terratorch.tasks  # noqa: F401

    torch.set_float32_matmul_precision("highest")  # the reference's import sets "medium" globally
    loaded = total = 0
    worst = 0.0
    for kind, name, spec, _shape in _entries():
        total += 1
        path = src / f"{kind}_{name}.pt"
        if not path.exists():
            print(f"{kind} {name}: not written by ours")
            continue
        saved = torch.load(path, map_location="cpu", weights_only=False)
        try:
            torch.manual_seed(0)
            built = _build_model(spec) if kind == "model" else _build_task(spec)
            built.load_state_dict(saved["state_dict"], strict=True)
        except Exception as error:
            message = str(error).splitlines()
            print(f"{kind} {name}: NOT loaded: {type(error).__name__}: {' | '.join(message[:3])[:300]}")
            continue
        loaded += 1
        model = built if kind == "model" else built.model
        try:
            got = _outputs(model, saved["input"])
        except Exception:
            print(f"{kind} {name}: loaded, forward failed: {traceback.format_exc(limit=1)[-200:]}")
            continue
        diffs = [
            (got[k] - v).abs().max().item() if k in got and got[k].shape == v.shape else float("inf")
            for k, v in saved["outputs"].items()
        ]
        diff = max(diffs) if diffs else float("inf")
        worst = max(worst, diff)
        print(f"{kind} {name}: loaded strictly, max |diff| {diff:.2e}")
    print(f"{loaded}/{total} loaded strictly, max |diff| {worst:.2e}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, help="run with OUR venv: write state dicts here")
    group.add_argument("--check", type=Path, help="run with the REFERENCE venv: load them from here")
    args = parser.parse_args()
    if args.write:
        write(args.write)
        return 0
    return check(args.check)


if __name__ == "__main__":
    raise SystemExit(main())
