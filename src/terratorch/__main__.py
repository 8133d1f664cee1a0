"""The ``terratorch`` command: dispatches subcommands without importing torch for ``--help``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from terratorch import exit_codes

# subcommand -> (module:function, one-line description). Modules are imported only when used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "fit": ("terratorch.cli.lightning:main", "Fine-tune a model from a YAML config (LightningCLI)."),
    "validate": ("terratorch.cli.lightning:main", "Run the validation loop of a config/checkpoint."),
    "test": ("terratorch.cli.lightning:main", "Run the test loop of a config/checkpoint."),
    "predict": ("terratorch.cli.lightning:main", "Predict and write GeoTIFFs that keep georeference."),
    "compute_statistics": (
        "terratorch.cli.lightning:main",
        "Per-band mean/std and label histogram of a datamodule.",
    ),
    "iterate": ("terratorch.iterate.__main__:main", "Benchmark backbones across tasks with HPO and MLflow."),
    "demo-data": ("terratorch.datasets.demo:main", "Write small georeferenced demo GeoTIFF datasets."),
    "list-backbones": ("terratorch.__main__:list_backbones_main", "List registered backbones and metadata."),
    "embeddings": (
        "terratorch.embeddings.__main__:main",
        "Search GeoParquet embeddings for the nearest footprints.",
    ),
    "serve": ("terratorch.serve.__main__:main", "Serve a fine-tuned model's predictions over HTTP."),
}

# Entry modules that receive the subcommand name itself (LightningCLI style).
_LIGHTNING_MODULES = ("terratorch.cli.lightning", "terratorch.cli_tools")

USAGE = "usage: terratorch [--verbose] {" + ",".join(SUBCOMMANDS) + "} ..."


def _help() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [USAGE, "", "Fine-tune and benchmark geospatial foundation models.", "", "subcommands:"]
    lines += [f"  {name.ljust(width)}  {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    lines += [
        "",
        "Run 'terratorch <subcommand> --help' for its options. Add --verbose (or set",
        "TERRATORCH_DEBUG=1) to see full tracebacks on errors.",
    ]
    return "\n".join(lines)


def debug_enabled(argv: Sequence[str] | None = None) -> bool:
    """True when full tracebacks were asked for (``--verbose`` or ``TERRATORCH_DEBUG=1``)."""
    args = sys.argv if argv is None else argv
    return "--verbose" in args or os.environ.get("TERRATORCH_DEBUG", "") not in ("", "0")


def run_friendly(func: Callable[..., Any], *args: Any, argv: Sequence[str] | None = None) -> Any:
    """Call ``func``; turn an error into one ``error: ...`` line and its exit code (``docs/cli.md``).

    Exit codes (:mod:`terratorch.exit_codes`): 1 for invalid input (any error), 2 for a wrong
    command line (:class:`terratorch.cli.errors.UsageError`), 130 after Ctrl-C. With ``--verbose``
    or ``TERRATORCH_DEBUG=1`` an error is re-raised with its traceback instead.
    """
    try:
        return func(*args)
    except KeyboardInterrupt as interrupt:
        if debug_enabled(argv):
            import traceback

            traceback.print_exc()
        detail = str(interrupt)
        print(f"interrupted: {detail}" if detail else "interrupted", file=sys.stderr)
        raise SystemExit(exit_codes.INTERRUPTED) from None
    except SystemExit:
        raise
    except Exception as error:
        if debug_enabled(argv):
            raise
        from terratorch.cli.errors import exit_code_for

        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        print("(run again with --verbose for the full traceback)", file=sys.stderr)
        raise SystemExit(exit_code_for(error)) from None


def list_backbones_main(argv: Sequence[str]) -> int:
    """``terratorch list-backbones [PATTERN]``: print our backbones with their metadata."""
    from terratorch.registry import list_backbones

    pattern = argv[0] if argv else None
    entries = list_backbones(pattern)
    if not entries:
        names = ", ".join(e.name for e in list_backbones())
        print(f"no backbone matches {pattern!r}; registered: {names}", file=sys.stderr)
        return exit_codes.INVALID_INPUT
    for entry in entries:
        meta = entry.metadata
        bands = ",".join(meta.get("bands", [])) or "-"
        patch, dim = meta.get("patch_size", "-"), meta.get("embed_dim", "-")
        print(f"{entry.name:28s} patch={patch!s:3s} dim={dim!s:5s} bands={bands}")
    return exit_codes.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``terratorch`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_help())
        return exit_codes.OK
    if args[0] == "--version":
        from terratorch import __version__

        print(f"terratorch {__version__}")
        return exit_codes.OK
    given = args
    if args[0] == "--verbose":  # ``terratorch --verbose fit ...``: the flag belongs to the dispatcher
        args = args[1:]
        if not args:
            print(_help())
            return exit_codes.OK
    command = args[0]
    if command not in SUBCOMMANDS:
        from terratorch.choices import did_you_mean

        hint = did_you_mean(command, SUBCOMMANDS)
        print(f"{USAGE}\nterratorch: error: unknown subcommand {command!r}.{hint}", file=sys.stderr)
        return exit_codes.USAGE
    target, _ = SUBCOMMANDS[command]
    module_name, func_name = target.split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    # LightningCLI subcommands receive the subcommand itself; the others only their own args.
    forwarded = args if module_name in _LIGHTNING_MODULES else args[1:]
    result = run_friendly(func, forwarded, argv=given)
    return int(result or exit_codes.OK)


if __name__ == "__main__":
    raise SystemExit(main())
