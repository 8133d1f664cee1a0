"""One helper for every "unknown name, did you mean ...?" message in the toolkit.

Dependency-free (stdlib ``difflib`` only) so that the registry, the CLI and the benchmark tool can all
use it without import cost or circles.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["close_matches", "did_you_mean", "unknown_choice"]


def close_matches(name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Return up to ``n`` of ``candidates`` that look like ``name``, best first, case-insensitively.

    The candidates keep their own spelling in the result; duplicates that differ only in case are
    reported once (the first spelling wins).
    """
    by_lower: dict[str, str] = {}
    for candidate in candidates:
        by_lower.setdefault(str(candidate).lower(), str(candidate))
    found = difflib.get_close_matches(str(name).lower(), list(by_lower), n=n, cutoff=cutoff)
    return [by_lower[f] for f in found]


def did_you_mean(
    name: str, candidates: Iterable[str], n: int = 3, cutoff: float = 0.6, *, bare: bool = False
) -> str:
    """``" Did you mean 'a', 'b'?"`` for the close matches of ``name``, or ``""`` when there are none.

    The leading space lets callers append the hint to a sentence unconditionally. ``bare=True`` gives
    ``" Did you mean: a, b?"``, the form used for config keys and values (CLI, losses, optimizers).
    """
    close = close_matches(name, candidates, n=n, cutoff=cutoff)
    if not close:
        return ""
    if bare:
        return f" Did you mean: {', '.join(close)}?"
    return f" Did you mean {', '.join(repr(c) for c in close)}?"


def unknown_choice(kind: str, name: str, valid: Iterable[str], *, where: str = "", limit: int = 30) -> str:
    """Full message for an unknown ``name`` of some ``kind``: what was wrong, where, close matches, valid set.

    Args:
        kind: What the name names, e.g. ``"decoder"`` or ``"optimizer"``.
        name: The name the user gave.
        valid: The accepted names.
        where: Where the name was read (config key, file), added as ``" in <where>"``.
        limit: List at most this many valid names; the rest are counted.
    """
    valid = sorted({str(v) for v in valid})
    location = f" in {where}" if where else ""
    shown = ", ".join(valid[:limit]) + (f", ... ({len(valid) - limit} more)" if len(valid) > limit else "")
    return f"Unknown {kind} {name!r}{location}.{did_you_mean(name, valid)} Valid: {shown or '(none)'}."
