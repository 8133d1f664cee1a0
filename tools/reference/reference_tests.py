"""Run the reference release's own test files against our package and against the reference itself.

Invoked by ``run_reference_tests.sh``; stdlib only, so any Python 3.10+ can drive it. Each side gets a
fresh copy of the sdist's ``tests/`` folder (and nothing else, so the sdist's ``terratorch/`` source
tree can never shadow the package under test) and runs one pytest process per chosen file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Test files of the reference that exercise parts our package shares with it, with their area.
# Left out on purpose (not shared parts, or the module cannot be collected without a non-shared
# backbone imported at its top): clay* (except test_clay_v1.py, chosen since Clay v1 exists),
# terramind*, dinov3, detr / object detection / od_* / xview,
# wxc / prithvi_wxc, vqvae / quantize_lucid / scheduling_ddpm / generate / vit_models_unit /
# reconstructions-free tokenizers, vit_adapter_modules, torchgeo_resnet and
# encoder_decoder_torchgeo_models (torchgeo backbones), test_backbones.py (imports scalemae and
# torchgeo_vit at module level), test_datasets.py and the per-benchmark dataset files (biomassters,
# burn_intensity, pastis, substation, open_sentinel_map, sen4agrinet, eccc, geobench_v2, tortilla,
# clay datamodule), samplers (test_single_sampler.py), embedding generation task, tiled
# datamodule wrapper, and the BoundaryMeanIoU metric.
CHOSEN: dict[str, str] = {
    "test_registry.py": "registry",
    "test_multi_source_registry.py": "registry",
    "test_custom_modules.py": "custom modules",
    "test_decoders.py": "decoders",
    "test_encoder_decoder_model_factory.py": "factory",
    "test_prithvi_model_factory.py": "prithvi",
    "test_prithvi_vit.py": "prithvi",
    "test_prithvi_mae.py": "prithvi",
    "test_prithvi_vit_comprehensive.py": "prithvi",
    "test_smp_model_factory.py": "smp",
    "test_temporal_wrapper.py": "temporal wrapper",
    "test_clay_v1.py": "clay v1",
    "test_generic_dataset.py": "datasets/datamodules",
    "test_tasks.py": "tasks",
    "test_classification_tasks.py": "tasks",
    "test_prithvi_tasks.py": "tasks",
    "test_reconstructions.py": "tasks",
    "test_optimizer_factory.py": "optimizer",
    "test_cli_tools.py": "CLI",
    "test_finetune.py": "CLI",
}

FAILED = {"failed", "error"}


def _run_file(python: str, workdir: Path, test_file: str, timeout: int, file_timeout: int) -> dict:
    """Run one test file in its own pytest process; return ``{nodeid: {outcome, message}}``."""
    out = workdir / f".outcome-{test_file}.json"
    out.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        {
            "PYTHONPATH": str(HERE),
            "REFTESTS_OUTCOME_JSON": str(out),
            "HF_HUB_OFFLINE": "1",
            "MPLBACKEND": "Agg",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    cmd = [
        python, "-m", "pytest", f"tests/{test_file}", "-q", "-p", "_outcome_plugin",
        "-p", "no:cacheprovider", f"--rootdir={workdir}", "-o", "addopts=",
        f"--timeout={timeout}", "--no-header", "-rN",
    ]  # fmt: skip
    log = workdir / f".log-{test_file}.txt"
    with log.open("w") as fh:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=file_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    results = json.loads(out.read_text()) if out.exists() else {}
    if proc.returncode not in (0, 1) and not results:
        tail = log.read_text().strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        results[f"tests/{test_file}"] = {
            "outcome": "error",
            "message": f"pytest exited {proc.returncode}: {tail[0]}",
        }
    return results


def _which_terratorch(python: str, workdir: Path) -> str:
    code = "import importlib.metadata as m, terratorch; print(m.version('terratorch'), terratorch.__file__)"
    env = dict(os.environ, PYTHONPATH=str(HERE))
    res = subprocess.run(
        [python, "-c", code], cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    return (res.stdout or res.stderr).strip().splitlines()[-1] if (res.stdout or res.stderr) else "?"


def _counts(results: dict) -> tuple[int, int, int]:
    outcomes = [r["outcome"] for r in results.values()]
    passed = sum(o == "passed" for o in outcomes)
    failed = sum(o in FAILED for o in outcomes)
    return passed, failed, len(outcomes) - passed - failed


def run_side(label: str, python: str, tests_dir: Path, files: list[str], args: argparse.Namespace) -> dict:
    """Copy ``tests/`` into a fresh temporary directory and run every chosen file with ``python``."""
    workdir = Path(tempfile.mkdtemp(prefix=f"reftests-{label}-"))
    shutil.copytree(tests_dir, workdir / "tests")
    print(f"[{label}] {python} -> terratorch {_which_terratorch(python, workdir)}", flush=True)
    by_file = {}
    for test_file in files:
        start = time.monotonic()
        by_file[test_file] = _run_file(python, workdir, test_file, args.timeout, args.file_timeout)
        passed, failed, other = _counts(by_file[test_file])
        took = time.monotonic() - start
        print(
            f"[{label}] {test_file}: {passed} passed / {failed} failed / {other} other ({took:.0f}s)",
            flush=True,
        )
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return by_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests-dir", type=Path, required=True, help="the sdist's tests/ folder")
    parser.add_argument("--ours-python", required=True)
    parser.add_argument("--reference-python", required=True)
    parser.add_argument("--json", type=Path, help="write the per-test summary here")
    parser.add_argument("--files", nargs="*", help="subset of the chosen files (default: all)")
    parser.add_argument("--sides", choices=["both", "ours", "reference"], default="both")
    parser.add_argument("--timeout", type=int, default=300, help="per-test timeout (pytest-timeout), seconds")
    parser.add_argument("--file-timeout", type=int, default=1800, help="hard limit per test file, seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temporary run directories")
    args = parser.parse_args(argv)

    files = args.files or list(CHOSEN)
    unknown = [f for f in files if not (args.tests_dir / f).is_file()]
    if unknown:
        parser.error(f"not in {args.tests_dir}: {', '.join(unknown)}")

    sides = {"ours": args.ours_python, "reference": args.reference_python}
    if args.sides != "both":
        sides = {args.sides: sides[args.sides]}
    # Sequential on purpose: the machine's cores are shared.
    runs = {label: run_side(label, py, args.tests_dir, files, args) for label, py in sides.items()}

    print("\nper file:")
    totals = {label: [0, 0] for label in runs}
    for test_file in files:
        parts = []
        for label in runs:
            passed, failed, _ = _counts(runs[label][test_file])
            totals[label][0] += passed
            totals[label][1] += failed
            parts.append(f"{label}: {passed} passed / {failed} failed")
        print(f"  {test_file:42s} " + "   ".join(parts))
    print("total:")
    for label, (passed, failed) in totals.items():
        print(f"  {label}: {passed} passed / {failed} failed")

    if args.json:
        tests: dict[str, dict] = {}
        for label, by_file in runs.items():
            for test_file, results in by_file.items():
                for nodeid, res in results.items():
                    entry = tests.setdefault(nodeid, {"file": test_file, "area": CHOSEN.get(test_file, "?")})
                    entry[label] = res["outcome"]
                    if res.get("message"):
                        entry[f"{label}_message"] = res["message"]
        summary = {
            "files": {
                f: {
                    label: dict(zip(("passed", "failed", "other"), _counts(runs[label][f]))) for label in runs
                }
                for f in files
            },
            "totals": {label: {"passed": p, "failed": f} for label, (p, f) in totals.items()},
            "tests": dict(sorted(tests.items())),
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"summary written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
