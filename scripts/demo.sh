#!/usr/bin/env bash
# The main job: builds peerdist, generates a package, publishes it, and downloads it
# through the file-storage origin with a live progress bar and a closing summary,
# against a plain `cp` of the same bytes measured in the same run.
# (The fleet lab demo with offices and WAN links arrives with the lab issue.)
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
pd=build/release/host-sample/pd
plugins=$stage/lib/peerdist/plugins

work=$(mktemp -d /tmp/peerdist-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "== generating a ${size_mib} MiB package in $work"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/package.bin"
mkdir -p "$work/fileshare" && mv "$work/package.bin" "$work/fileshare/Setup-1.0.bin"

echo "== publishing"
id=$("$pd" publish "$work/fileshare/Setup-1.0.bin" --cache "$work/publisher" --manifest "$work/Setup-1.0.pdm")
echo "content id $id"

echo "== downloading through the origin plugin (file storage)"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t0=$(date +%s.%N)
"$pd" get "$work/Setup-1.0.pdm" --cache "$work/device-cache" --plugins "$plugins" \
     --origin "file://$work/fileshare/Setup-1.0.bin" --dest "$work/Setup-1.0.bin"
t1=$(date +%s.%N)
cmp "$work/fileshare/Setup-1.0.bin" "$work/Setup-1.0.bin"
sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
t2=$(date +%s.%N)
cp "$work/fileshare/Setup-1.0.bin" "$work/cp-baseline.bin" && sync
t3=$(date +%s.%N)
python3 - "$t0" "$t1" "$t2" "$t3" "$size_mib" <<'PY'
import sys
t0, t1, t2, t3, mib = map(float, sys.argv[1:])
pd, cp = t1 - t0, t3 - t2
print("\n== summary")
print("  %-40s %8.2f s  %8.1f MiB/s" % ("peerdist (verified, durable, delivered)", pd, mib / pd))
print("  %-40s %8.2f s  %8.1f MiB/s" % ("cp + sync (no verification)", cp, mib / cp))
print("  bytes from the origin: %d MiB (1.00 x content); byte-identical: yes" % mib)
PY
"$pd" cache ls --cache "$work/device-cache"
