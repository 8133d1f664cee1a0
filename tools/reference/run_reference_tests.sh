#!/usr/bin/env bash
# Run the reference release's own tests for the shared parts against our venv and the oracle venv.
#
#   tools/reference/run_reference_tests.sh [--json out.json] [--files test_registry.py ...]
#                                          [--sides both|ours|reference] [--timeout S] [--keep]
#
# The chosen files and the reasons for leaving the others out are listed in reference_tests.py.
# The sdist is fetched once into ~/.cache/terratorch-reference/sdist; only its tests/ folder is
# copied (to a temporary directory outside the clone), so the tests import the package of the
# interpreter that runs them. Tests that need the network (HF hub) fail on both sides.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
REF_VERSION="1.2.11"
SDIST_CACHE="${TERRATORCH_REFERENCE_SDIST:-$HOME/.cache/terratorch-reference/sdist}"
OURS_PY="${TERRATORCH_OURS_PYTHON:-$ROOT/.venv/bin/python}"
REF_PY="$("$HERE/venv.sh")"

TESTS_DIR="$SDIST_CACHE/terratorch-$REF_VERSION/tests"
if [ ! -d "$TESTS_DIR" ]; then
  mkdir -p "$SDIST_CACHE"
  tarball="$SDIST_CACHE/terratorch-$REF_VERSION.tar.gz"
  if [ ! -f "$tarball" ]; then
    "$REF_PY" -m pip download --quiet --no-deps --no-binary :all: "terratorch==$REF_VERSION" -d "$SDIST_CACHE" >&2
  fi
  tar -xzf "$tarball" -C "$SDIST_CACHE"
fi

"$OURS_PY" -c "import pytest_timeout" 2>/dev/null || {
  echo "pytest-timeout is missing from $OURS_PY (it is a dev dependency of this repo)" >&2
  exit 1
}

exec python3 "$HERE/reference_tests.py" --tests-dir "$TESTS_DIR" \
  --ours-python "$OURS_PY" --reference-python "$REF_PY" "$@"
