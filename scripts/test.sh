#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the dev preset (-Werror) and runs
# ctest (GoogleTest suites, the install test, pytest), then the same under ASan+UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
jobs=$(nproc)
start=$(date +%s)
for preset in dev asan; do
  echo "== $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  echo "== $preset: test"
  ctest --preset "$preset" -j "$jobs"
done
echo "== all tests passed in $(( $(date +%s) - start )) s"
