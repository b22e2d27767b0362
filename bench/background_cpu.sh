#!/usr/bin/env bash
# CPU cost of the background class per GiB delivered: a seeder and a puller (pd_bench_wan)
# over loopback, unshaped, the seeder as a peer in another office so every request goes
# through the paced path. Prints wall time and CPU seconds (user + system) per GiB for each
# side, the seeder's counted from when it is serving (its publish excluded).
#   bench/background_cpu.sh [BUILD_DIR] [SIZE_MIB] [ROUNDS]
# A library to compare against: LD_LIBRARY_PATH=DIR bench/background_cpu.sh ... (both sides
# load it; docs/benchmarks.md compares libraries back to back this way).
set -euo pipefail
build=${1:-build/dev}
size_mib=${2:-512}
rounds=${3:-3}
tool="$build/bench/pd_bench_wan"
work=$(mktemp -d "${PD_BENCH_DIR:-/var/tmp}/pd-bench-cpu.XXXXXX")
seeder=
trap '[ -n "$seeder" ] && kill "$seeder" 2>/dev/null; rm -rf "$work"' EXIT
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$work/file"
tick=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system, in ticks
for ((i = 0; i < rounds; i++)); do
  rm -rf "$work/seed" "$work/fetch" "$work/out" "$work/m"
  port=$((47300 + i))
  "$tool" seed "$work/file" "$work/seed" "127.0.0.1:$port" "$work/m" > "$work/seed.out" 2>&1 &
  seeder=$!
  for _ in $(seq 300); do grep -q ready "$work/seed.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$work/seed.out" || { echo "the seeder did not start" >&2; exit 1; }
  before=$(cpu_of "$seeder")
  /usr/bin/time -f "%e %U %S" -o "$work/time" "$tool" fetch "$work/m" "$work/fetch" "127.0.0.1:$port wan" "$work/out" > /dev/null
  after=$(cpu_of "$seeder")
  kill "$seeder"; wait "$seeder" 2>/dev/null || true; seeder=
  cmp -s "$work/file" "$work/out" || { echo "the download differs" >&2; exit 1; }
  read -r wall user sys < "$work/time"
  awk -v w="$wall" -v u="$user" -v s="$sys" -v b="$before" -v a="$after" -v t="$tick" -v g="$(echo "$size_mib / 1024" | bc -l)" \
    'BEGIN { printf "round %d: %.1f s, serving peer %.2f CPU s/GiB, receiver %.2f CPU s/GiB\n", '"$i"' + 1, w, (a - b) / t / g, (u + s) / g }'
done
