#!/usr/bin/env bash
# The main job: builds peerdist and the sample host against the installed SDK, then
# scripts/demo.py publishes a generated package to an nginx CDN and downloads it with
# live progress, against curl from the same CDN measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${PD_DEMO_SIZE_MIB:-256}
bash scripts/setup.sh
echo "== building peerdist (release) and the sample host against the installed SDK"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
stage=build/release/stage
cmake --install build/release --prefix "$stage" >/dev/null
cmake -S host-sample -B build/release/host-sample -G Ninja -DCMAKE_PREFIX_PATH="$PWD/$stage" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release/host-sample >/dev/null

exec /usr/bin/python3 scripts/demo.py "$PWD/$stage" build/release/host-sample "$size_mib"
