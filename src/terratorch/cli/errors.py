"""Short, actionable messages for what goes wrong in the CLI, and the exceptions that carry them.

jsonargparse reports an unknown key or a failing constructor as a long "Does not validate against
any of the Union subtypes" report; :func:`explain_parse_error` and
:func:`explain_instantiation_error` turn those into one line saying the key path, what is wrong and
what is valid. :func:`check_checkpoint_file` and :func:`checkpoint_load_error` say plainly that a
file is not a checkpoint (torch's own message suggests ``weights_only=False``, which would run
arbitrary code from an untrusted file). :func:`naming_file` makes write errors name their file.

The exit code of each exception is :func:`exit_code_for` (see ``docs/cli.md``). Nothing here
imports torch or Lightning at module import.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from terratorch import exit_codes
from terratorch.choices import did_you_mean

__all__ = [
    "ConfigError",
    "FileWriteError",
    "TrainingInterrupted",
    "UsageError",
    "check_checkpoint_file",
    "checkpoint_load_error",
    "exit_code_for",
    "explain_instantiation_error",
    "explain_parse_error",
    "naming_file",
    "strip_noise",
    "subcommand_parser",
]


class ConfigError(ValueError):
    """A configuration problem found before any work starts (message says where and what is valid)."""


class UsageError(ConfigError):
    """The command line itself is wrong (an unknown ``--flag``); exits with :data:`exit_codes.USAGE`."""


class TrainingInterrupted(KeyboardInterrupt):
    """``fit`` stopped by Ctrl-C (SIGINT) or SIGTERM after saving its last checkpoint (see the message)."""


def exit_code_for(error: BaseException) -> int:
    """The process exit code for ``error``: usage 2, interrupted 130, any other error 1 (invalid input)."""
    if isinstance(error, KeyboardInterrupt):
        return exit_codes.INTERRUPTED
    if isinstance(error, UsageError):
        return exit_codes.USAGE
    return exit_codes.INVALID_INPUT


# ----------------------------------------------------------------------------- parse errors

_UNKNOWN_OPTION = re.compile(
    r"(?:does not accept option|No action for (?:destination )?key) ['\"]([^'\"]+)['\"]"
    r"|[Uu]nrecognized arguments: --([\w.]+)"
)
_CLASS_OPTION = re.compile(
    r"Problem with given class_path '([^']+)':\s*(?:Key '[^']*': )?Option '([^']+)' is not accepted"
)
_NESTED_OPTION = re.compile(r"Option '([^']+)' is not accepted\. Got value: Namespace\(class_path='([^']+)'")
_BAD_CLASS = re.compile(
    r"(?:Expected a dot import path string|Import path \S+ does not exist|No module named)[: ]*'?([\w.]+)"
)
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Given value:",
    "- Expected a <class 'NoneType'>",
)
_KEY_BASES = {"model": "lightning.pytorch.LightningModule", "data": "lightning.pytorch.LightningDataModule"}


def explain_parse_error(message: str, parser: Any = None) -> str:
    """Turn a jsonargparse error into a short message: the key path, what is wrong, what is valid.

    Handles unknown keys (lists the valid keys at that level), unknown constructor arguments of a
    ``class_path`` (lists the class's arguments) and unknown class names (lists known classes);
    anything else is returned without jsonargparse's Union/"Given value" noise.
    """
    text = str(message)
    keys = _PARSER_KEY.findall(text)
    key = keys[0] if keys else ""
    nested = _NESTED_OPTION.search(text)
    if nested is not None:  # e.g. an albumentations transform inside a list argument
        return _unknown_argument(".init_args.".join(keys), nested.group(2), nested.group(1), nested=True)
    class_option = _CLASS_OPTION.search(text)
    if class_option is not None:
        return _unknown_argument(key, class_option.group(1), class_option.group(2))
    option = _UNKNOWN_OPTION.search(text)
    if option is not None:
        return _unknown_key(option.group(1) or option.group(2), parser)
    bad_class = _BAD_CLASS.search(text)
    if bad_class is not None and key in _KEY_BASES:
        return _unknown_class(key, bad_class.group(1))
    return strip_noise(text)


def is_unreadable_config(message: str) -> bool:
    """True when a jsonargparse error says a config file is not valid YAML or not a mapping."""
    return "Problems parsing config" in message or "Unexpected config" in message


def config_files(args: Sequence[str]) -> list[str]:
    """The files given with ``-c``/``--config`` (either ``--config x`` or ``--config=x``), in order."""
    files: list[str] = []
    for i, arg in enumerate(args):
        if arg in ("-c", "--config") and i + 1 < len(args):
            files.append(str(args[i + 1]))
        elif arg.startswith("--config="):
            files.append(arg.split("=", 1)[1])
    return files


def is_unknown_flag(message: str) -> bool:
    """True when a jsonargparse error is about an unrecognised command-line ``--flag`` (a usage error)."""
    return "unrecognized arguments:" in str(message).lower()


def strip_noise(text: str) -> str:
    """Drop jsonargparse's Union bookkeeping lines (subtypes, the whole given value) from a message."""
    kept = [
        line.rstrip() for line in text.splitlines() if line.strip() and not line.strip().startswith(_NOISE)
    ]
    return "\n".join(kept)


def _unknown_key(key: str, parser: Any) -> str:
    key = _first_unknown(key, parser) if parser is not None else key
    valid = _valid_keys(parser, key) if parser is not None else []
    leaf = key.rsplit(".", 1)[-1]
    lines = [f"{key}: unknown key.{did_you_mean(leaf, [v.rsplit('.', 1)[-1] for v in valid])}"]
    if valid:
        lines.append(f"Valid keys here: {', '.join(valid)}")
    return "\n".join(lines)


def _first_unknown(key: str, parser: Any) -> str:
    """``trainr.max_epochs`` -> ``trainr``: the shortest prefix of ``key`` the parser does not know."""
    dests = [getattr(action, "dest", "") for action in getattr(parser, "_actions", [])]
    parts = key.split(".")
    for size in range(1, len(parts) + 1):
        prefix = ".".join(parts[:size])
        if not any(d == prefix or d.startswith(prefix + ".") for d in dests):
            return prefix
    return key


def _valid_keys(parser: Any, key: str) -> list[str]:
    """Keys the parser accepts at the level of ``key`` (same dotted prefix)."""
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    names = set()
    for action in getattr(parser, "_actions", []):
        dest = getattr(action, "dest", "")
        if not dest or dest in ("help", "config", "print_config") or not dest.startswith(prefix):
            continue
        names.add(prefix + dest[len(prefix) :].split(".", 1)[0])
    return sorted(names)


def _import_path(path: str) -> Any:
    import importlib

    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _unknown_argument(key: str, class_path: str, option: str, nested: bool = False) -> str:
    import inspect

    name = class_path.rsplit(".", 1)[-1]
    where = key if nested else (f"{key}.init_args.{option}" if key else option)
    try:
        params = inspect.signature(_import_path(class_path)).parameters
    except (ImportError, ValueError, TypeError, AttributeError):
        return f"{where}: {name} does not take an argument {option!r}."
    valid = [p for p, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)]
    return (
        f"{where}: {name} does not take an argument {option!r}.{did_you_mean(option, valid)}\n"
        f"Valid arguments of {name}: {', '.join(valid)}"
    )


def _subclass_names(base: type) -> list[str]:
    """Names of the public (imported) subclasses of ``base``, recursively."""
    names: set[str] = set()
    stack = list(base.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if not cls.__name__.startswith("_") and "<locals>" not in cls.__qualname__:
            names.add(cls.__name__)
    return sorted(names)


def _unknown_class(key: str, name: str) -> str:
    known = _subclass_names(_import_path(_KEY_BASES[key]))
    ours = [k for k in known if k.endswith(("Task", "DataModule"))] or known
    return (
        f"{key}.class_path: unknown class {name!r}.{did_you_mean(name.rsplit('.', 1)[-1], known)}\n"
        f"Known classes: {', '.join(ours)} (or a full import path; custom classes need custom_modules_path)"
    )


def subcommand_parser(cli_parser: Any, args: Sequence[str]) -> Any:
    """The subcommand parser of ``args`` (for listing valid keys), or the main parser."""
    for action in getattr(cli_parser, "_actions", []):
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and args and args[0] in choices:
            return choices[args[0]]
    return cli_parser


def explain_instantiation_error(error: Exception) -> Exception:
    """The constructor error hidden in jsonargparse's "Does not validate against any Union subtype".

    Returns a :class:`ConfigError` naming the class that failed and quoting the original error
    (chained), or ``error`` itself when it is not such a wrapper.
    """
    cause = error.__cause__
    if cause is None or "Union subtypes" not in str(error):
        return error
    class_path = re.search(r"class_path='([^']+)'", str(error))
    what = class_path.group(1).rsplit(".", 1)[-1] if class_path else "a configured class"
    wrapped = ConfigError(f"building {what} failed: {type(cause).__name__}: {cause}")
    wrapped.__cause__ = cause
    return wrapped


# ----------------------------------------------------------------------------- checkpoints and files

_NOT_A_CHECKPOINT = (
    "not a PyTorch/Lightning checkpoint: {path} (expected a file written by torch.save or Lightning's "
    "ModelCheckpoint, e.g. <default_root_dir>/checkpoints/last.ckpt)"
)


def check_checkpoint_file(path: str | Path, key: str = "ckpt_path") -> None:
    """Raise :class:`ConfigError` unless ``path`` looks like a ``torch.save`` file (cheap: no unpickling).

    The format rule is :func:`terratorch.models.weights.check_checkpoint_format`; this adds the config
    key and the CLI's wording, so it runs before anything is built.
    """
    from terratorch.models.weights import CheckpointFormatError, WeightsNotFoundError, check_checkpoint_format

    try:
        check_checkpoint_format(path)
    except WeightsNotFoundError:
        raise FileNotFoundError(f"{key}: checkpoint file {str(path)!r} does not exist.") from None
    except CheckpointFormatError as error:
        raise ConfigError(f"{key}: " + _NOT_A_CHECKPOINT.format(path=path) + f"; {error}") from None


def checkpoint_load_error(path: str | Path, error: BaseException, key: str = "ckpt_path") -> ConfigError:
    """A :class:`ConfigError` for a checkpoint ``torch.load`` could not read, without torch's advice.

    torch's message for a non-checkpoint (or a checkpoint holding arbitrary Python objects)
    suggests ``weights_only=False``, which executes code from the file; ours does not.
    """
    text = str(error)
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsafe is not None:
        return ConfigError(
            f"{key}: {path} holds a Python object of type {unsafe.group(1)}, which torch's safe loading "
            "refuses. Re-save the checkpoint with only tensors and plain values (e.g. "
            "torch.save(model.state_dict(), path))."
        )
    detail = re.search(r"WeightsUnpickler error: ([^\n]+)", text)
    reason = detail.group(1).strip() if detail else _first_line(text)
    if "weights_only" in reason:  # torch's advice, never ours
        reason = type(error).__name__
    return ConfigError(f"{key}: " + _NOT_A_CHECKPOINT.format(path=path) + f"; reading it failed: {reason}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "(no message)"


class FileWriteError(OSError):
    """Writing a file failed (disk full, "File too large", ...); the message names the file and the reason."""

    def __init__(self, errno: int | None, reason: str, filename: str, what: str = "a file") -> None:
        super().__init__(errno, reason, filename)
        self.what = what

    def __str__(self) -> str:
        return f"could not write {self.what} {self.filename}: {self.strerror}"


@contextmanager
def naming_file(path: str | Path, what: str = "a file") -> Iterator[None]:
    """Re-raise an ``OSError`` (disk full, "File too large") as a :class:`FileWriteError` naming ``path``.

    An ``OSError`` that already names a file is kept as it is. torch's checkpoint writer reports a
    failed write as a ``RuntimeError`` ("PytorchStreamWriter failed writing file"); that becomes a
    :class:`FileWriteError` too.
    """
    try:
        yield
    except OSError as error:
        if error.filename:
            raise
        reason = error.strerror or str(error) or type(error).__name__
        raise FileWriteError(error.errno, reason, str(path), what) from error
    except RuntimeError as error:
        if "PytorchStreamWriter" not in str(error):
            raise
        cause = error.__cause__ or error.__context__
        errno = getattr(cause, "errno", None)
        reason = getattr(cause, "strerror", None) or _first_line(str(error))
        raise FileWriteError(errno, reason, str(path), what) from error
