"""Every code block in README.md and docs/*.md runs (python, bash) or parses (yaml, json).

Python blocks of one page run in order in one fresh interpreter, like a reader following the page.
Shell blocks run line by line with bash in a scratch directory that links ``examples/`` and ``.venv``.
Three kinds of line are not re-run because CI itself runs them: creating the venv, ``pip install``
and the test command (which runs this very test). A block can be exempted only with
``<!-- docs-test: skip: <reason> -->`` on the line before it (for commands that need a cluster or
a GPU); the reason is mandatory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
FENCE = re.compile(r"^```([\w+-]*)[^\n]*\n(.*?)^```", re.S | re.M)
SKIP = re.compile(r"<!--\s*docs-test:\s*skip:\s*(\S[^>]*?)\s*-->\s*$")
INSTALL_LINE = re.compile(
    r"^(python3? -m venv|\S*pip3? install|\S*python3? -m pip install|\S*python3? -m pytest)\b"
)


def _blocks(page: Path) -> list[tuple[str, str, int]]:
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if SKIP.search(before):
            continue
        line = text[: match.start()].count("\n") + 1
        blocks.append((match.group(1).lower(), match.group(2), line))
    return blocks


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MPLBACKEND", "Agg")
    env.setdefault("HF_HUB_OFFLINE", "1")
    return env


def _scratch(tmp_path: Path) -> Path:
    for name in ("examples", "docs"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    return tmp_path


def test_skips_have_reasons():
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            if "docs-test:" in line:
                assert SKIP.search(line), f"{page.name}:{number}: docs-test marker without a reason"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_code_blocks_run(page, tmp_path):
    blocks = _blocks(page)
    cwd = _scratch(tmp_path)
    python = "\n\n".join(code for lang, code, _ in blocks if lang in ("python", "py"))
    if python.strip():
        result = subprocess.run(
            [sys.executable, "-c", python], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{page.name} python blocks failed:\n{result.stderr[-4000:]}"
    for lang, code, line in blocks:
        where = f"{page.name}:{line}"
        if lang in ("yaml", "yml"):
            yaml.safe_load(code)
        elif lang == "json":
            json.loads(code)
        elif lang in ("bash", "sh", "shell", "console"):
            commands = [c for c in _shell_lines(code) if not INSTALL_LINE.match(c)]
            if not commands:
                continue
            script = "set -euo pipefail\n" + "\n".join(commands)
            result = subprocess.run(
                ["bash", "-c", script], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900
            )
            assert result.returncode == 0, f"{where}: block failed:\n{script}\n{result.stderr[-4000:]}"


def _shell_lines(code: str) -> list[str]:
    """Shell commands of a block: prompts stripped, ``\\`` continuations joined, ``&&`` chains split."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("$ ")
        commands.extend(part.strip() for part in line.split(" && "))
    return commands
