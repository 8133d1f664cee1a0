"""Process exit codes shared by every ``terratorch`` command (documented in the README).

Scripts and schedulers branch on these, so they are part of the public contract.
"""

from __future__ import annotations

__all__ = ["FAILED_TASKS", "INTERRUPTED", "INVALID_INPUT", "OK", "USAGE"]

OK = 0
"""Everything asked for was done."""
INVALID_INPUT = 1
"""The config, data or checkpoint is wrong; the message says what and where. Nothing was run or lost."""
USAGE = 2
"""The command line itself is wrong (unknown subcommand or flag)."""
FAILED_TASKS = 3
"""A benchmark finished, but one or more of its tasks failed; the others' results are recorded."""
INTERRUPTED = 130
"""Stopped by SIGINT (Ctrl-C) or SIGTERM after saving what could be saved (128 + SIGINT)."""
