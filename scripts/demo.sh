#!/usr/bin/env bash
# The main job: builds peerdist and the sample host against the installed SDK, then
# scripts/demo_fleet.py builds a lab (a central office with the CDN, two branch offices
# behind shaped WAN links, a pd-agent per device), deploys a generated package to every
# device with live progress per office, and compares with the default way in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${PD_DEMO_SIZE_MIB:-128}
bash scripts/setup.sh
echo "== building peerdist (release) and the sample host against the installed SDK"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
stage=build/release/stage
cmake --install build/release --prefix "$stage" >/dev/null
cmake -S host-sample -B build/release/host-sample -G Ninja -DCMAKE_PREFIX_PATH="$PWD/$stage" \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release/host-sample >/dev/null

exec /usr/bin/python3 scripts/demo_fleet.py "$PWD/$stage" build/release/host-sample "$size_mib" "${PD_DEMO_WAN_MBIT:-200}"
