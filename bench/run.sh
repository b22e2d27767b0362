#!/usr/bin/env bash
# Foundation benchmarks. Each figure is a ratio against a baseline tool timed in the
# same run on the same file, alternating runs; the median of ROUNDS is reported.
#   publish hashing  vs  openssl dgst -sha256     (target >= 0.9)
#   file download    vs  cp + sync of the copy    (target >= 0.8), in two configurations:
#     default: the library's defaults (hard-link delivery, each byte hashed once)
#     copy:    copy delivery (a clone where the filesystem has one, else a second write)
# usage: bench/run.sh [BUILD_DIR] [SIZE_MIB] [ROUNDS]
set -euo pipefail
build=${1:-build/dev}
size_mib=${2:-1024}
rounds=${3:-5}
python3 "$(dirname "$0")/warm_memory.py" > /dev/null  # the machine's memory first
work=$(mktemp -d "${PD_BENCH_DIR:-/var/tmp}/pd-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/file"
cat "$work/file" > /dev/null  # both sides read from the page cache
t() { local s=$(date +%s.%N); "$@" > /dev/null; echo "$(date +%s.%N) - $s" | bc -l; }
hash_pd=() hash_ssl=() dl_pd=() dl_fast=() dl_cp=()
for ((i = 0; i < rounds; i++)); do
  hash_ssl+=("$(t openssl dgst -sha256 "$work/file")")
  hash_pd+=("$("$build/bench/pd_bench_publish" "$work/file")")
  rm -rf "$work/cache" "$work/out" "$work/copy"
  dl_pd+=("$("$build/bench/pd_bench_download" "$work/file" "$work/cache" "$work/out")")
  cmp -s "$work/file" "$work/out" || { echo "download differs" >&2; exit 1; }
  rm -rf "$work/cache" "$work/out"
  dl_fast+=("$("$build/bench/pd_bench_download" "$work/file" "$work/cache" "$work/out" copy)")
  cmp -s "$work/file" "$work/out" || { echo "download differs" >&2; exit 1; }
  dl_cp+=("$(t sh -c "cp '$work/file' '$work/copy' && sync '$work/copy'")")
done
python3 - "$size_mib" "${hash_ssl[*]}" "${hash_pd[*]}" "${dl_cp[*]}" "${dl_pd[*]}" "${dl_fast[*]}" <<'PY'
import statistics, sys
mib = float(sys.argv[1])
ssl, pd, cp, dl, fast = ([float(x) for x in a.split()] for a in sys.argv[2:])
def row(name, base, ours, target):
    b, o = statistics.median(base), statistics.median(ours)
    ratio = b / o
    print("%-40s baseline %7.1f MiB/s  peerdist %7.1f MiB/s  ratio %.2f (target >= %.1f) %s"
          % (name, mib / b, mib / o, ratio, target, "OK" if ratio >= target else "BELOW TARGET"))
print("size %d MiB, %d rounds, medians" % (mib, len(ssl)))
row("publish hash vs openssl dgst", ssl, pd, 0.9)
row("download (default) vs cp", cp, dl, 0.8)
row("download (copy delivery) vs cp", cp, fast, 0.8)
PY
