#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the dev preset (-Werror) and runs
# ctest (GoogleTest suites, the install test, pytest), then the same under ASan+UBSan, then
# the Windows cross build with its suites under Wine, then the Debian packages installed.
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
# Windows: the dependencies from Debian's source packages (cached outside the tree), the
# cross build, and its tests under Wine (docs/windows.md).
echo "== windows: dependencies, cross build, tests under Wine"
export PD_WINDOWS_DEPS
PD_WINDOWS_DEPS=$(bash scripts/windows_deps.sh)
cmake --preset windows-test >/dev/null
cmake --build --preset windows-test -j "$jobs"
ctest --preset windows-test -j "$jobs"
# The Debian packages: a Release build of the packages preset, then installed on this
# machine, exercised as installed (both daemons as their units start them) and purged.
echo "== packages: build, install, test installed, purge"
cmake --preset packages >/dev/null
cmake --build --preset packages -j "$jobs"
bash tests/packages/install_and_test.sh build/packages
echo "== all tests passed in $(( $(date +%s) - start )) s"
