#!/usr/bin/env bash
# Build (once) and print the path of the reference-oracle interpreter.
#
# The oracle is the published terratorch 1.2.11 wheel in its own venv, kept
# outside the clone so it can never shadow or be shadowed by our editable
# install. Usage from other scripts:  PY="$(tools/reference/venv.sh)"
#
# torch is deliberately left unpinned: pip then resolves the same torch /
# torchvision pair our venv uses. Pinning torch (a local torch<=2.13 +cpu
# wheel in particular) pulls a torchvision that fails to import.
set -euo pipefail

REF_VERSION="1.2.11"
VENV="${TERRATORCH_REFERENCE_VENV:-$HOME/.cache/terratorch-reference/venv}"
MARKER="$VENV/.terratorch-reference-$REF_VERSION"
PY="$VENV/bin/python"

is_ready() {
  [ -x "$PY" ] && "$PY" - "$REF_VERSION" >/dev/null 2>&1 <<'PYEOF'
import importlib.metadata as md
import sys

assert md.version("terratorch") == sys.argv[1]
import pytest  # noqa: F401
import pytest_timeout  # noqa: F401
import terratorch  # noqa: F401
PYEOF
}

if [ -f "$MARKER" ] && [ -x "$PY" ]; then
  echo "$PY"
  exit 0
fi

if ! is_ready; then
  echo "building reference venv at $VENV" >&2
  mkdir -p "$(dirname "$VENV")"
  [ -x "$PY" ] || python3 -m venv "$VENV" >&2
  # An existing venv with the right terratorch only gets the test tooling
  # added, so a lead-built venv is reused instead of reinstalled.
  "$PY" -m pip install --quiet "terratorch==$REF_VERSION" pytest pytest-timeout >&2
  is_ready || { echo "reference venv at $VENV does not import terratorch $REF_VERSION" >&2; exit 1; }
fi

touch "$MARKER"
echo "$PY"
