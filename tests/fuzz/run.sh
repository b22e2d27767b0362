#!/usr/bin/env bash
# Builds the parser fuzz target with clang (libFuzzer + ASan + UBSan) and runs it for
# SECONDS (default 20) from generated seeds. Exit status is libFuzzer's: non-zero on a bug.
# usage: tests/fuzz/run.sh SOURCE_DIR WORK_DIR [SECONDS]
set -euo pipefail
src=$1 work=$2 secs=${3:-20}
mkdir -p "$work/corpus" "$work/seeds"
core="$src/sdk/src"
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$core" -I"$src/sdk/include" -I"$src" -I"$src/plugins" -I"$src/host-sample" -DPD_BUILDING_LIBRARY \
  "$src/tests/fuzz/fuzz_parsers.cpp" "$core/content/manifest.cpp" "$core/content/pccrc.cpp" \
  "$core/content/publication.cpp" "$core/crypto/hash.cpp" "$core/util/error.cpp" "$core/util/hex.cpp" "$core/util/endpoint.cpp" "$core/util/key_file.cpp" \
  "$core/coordinator_client/protocol.cpp" "$src/coordinator/topology.cpp" "$src/coordinator/console/request.cpp" \
  "$core/platform/file.cpp" "$core/platform/file_posix.cpp" "$core/platform/socket_posix.cpp" "$core/net/secure_channel.cpp" "$core/net/record_cipher.cpp" "$core/peer/wire.cpp" "$core/net/ledbat.cpp" \
  "$src/plugins/origin/http_url.cpp" "$src/plugins/branchcache/pccrr.cpp" "$src/plugins/branchcache/pccrd.cpp" "$src/plugins/branchcache/xml.cpp" "$src/host-sample/agent_protocol.cpp" -lcrypto -lsodium -o "$work/fuzz_parsers"
PD_FUZZ_SEEDS="$work/seeds" "$work/fuzz_parsers" -runs=0 "$work/seeds" >/dev/null 2>&1
"$work/fuzz_parsers" -max_total_time="$secs" -max_len=4096 -timeout=10 -print_final_stats=1 -artifact_prefix="$work/" \
  "$work/corpus" "$work/seeds" 2>&1 | tail -12
