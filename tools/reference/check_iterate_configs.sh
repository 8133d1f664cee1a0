#!/usr/bin/env bash
# Dry-run every benchmark config shipped with the reference benchmark tool through OUR
# `terratorch iterate --dry-run` and report how many pass.
#
#   tools/reference/check_iterate_configs.sh [CONFIG_DIR_OR_FILE ...]
#
# Without arguments it looks for YAML files under configs/ and examples/ of the terratorch-iterate
# sdists unpacked in ~/.cache/terratorch-reference/ (fetch one with
#   pip download --no-deps --no-binary :all: terratorch-iterate==0.4 -d ~/.cache/terratorch-reference/
# and unpack it there), and in ~/.cache/terratorch-reference/iterate_configs/ (copies of configs of
# the reference tool's git repository, kept outside this repo). The reference's configs are never
# copied into this repository.
#
# A config counts as passing when the dry run succeeds, or when every problem it reports is a file
# or folder missing on this machine (dataset roots, weights files) and names that path. Anything
# else is a failure and its problems are printed.
set -u
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
CACHE="${TERRATORCH_REFERENCE_CACHE:-$HOME/.cache/terratorch-reference}"

sources=("$@")
if [ ${#sources[@]} -eq 0 ]; then
  for tarball in "$CACHE"/terratorch_iterate-*.tar.gz "$CACHE"/iterate_sdist*/terratorch_iterate-*.tar.gz; do
    [ -f "$tarball" ] || continue
    dest="$CACHE/unpacked/$(basename "$tarball" .tar.gz)"
    [ -d "$dest" ] || { mkdir -p "$dest" && tar xzf "$tarball" -C "$dest"; }
    sources+=("$dest")
  done
  [ -d "$CACHE/iterate_configs" ] && sources+=("$CACHE/iterate_configs")
fi

configs=()
for source in "${sources[@]}"; do
  if [ -f "$source" ]; then
    configs+=("$source")
  else
    while IFS= read -r file; do configs+=("$file"); done < <(
      find "$source" \( -path '*/configs/*' -o -path '*/examples/*' -o -path '*/iterate_configs/*' \) \
        \( -name '*.yaml' -o -name '*.yml' \) -not -name '.pre-commit-config.yaml' | sort
    )
  fi
done

total=0
passed=0
for config in "${configs[@]}"; do
  # Only benchmark configs (tasks + optimization space, or a summarize config) are counted.
  grep -qE '^(tasks|list_of_experiment_names):' "$config" || continue
  total=$((total + 1))
  output="$("$PY" -m terratorch iterate --config "$config" --dry-run 2>&1 | grep -v -E 'Warning|warnings.warn')"
  status=$?
  if echo "$output" | grep -q '^dry run: config is valid'; then
    passed=$((passed + 1)); echo "PASS  $config"; continue
  fi
  problems="$(echo "$output" | grep -E '^  - ')"
  other="$(echo "$problems" | grep -v -E "does not exist|No such file or directory|not found: '?/" || true)"
  if [ -n "$problems" ] && [ -z "$other" ]; then
    passed=$((passed + 1)); echo "PASS  $config (only paths missing on this machine)"
    echo "$problems" | sed 's/^/        /'
  else
    echo "FAIL  $config"
    echo "$output" | tail -20 | sed 's/^/        /'
  fi
done
echo "reference configs passing dry-run: $passed/$total"
[ "$total" -gt 0 ] && [ "$passed" -eq "$total" ]
