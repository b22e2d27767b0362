#!/usr/bin/env bash
# Installs the SDK into a staging prefix, then builds what vendors build against the
# *installed* SDK: host-sample (find_package(peerdist)) and the C99 example in docs/.
# usage: install_and_build_host.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
stage=$build/stage
cmake --install "$build" --prefix "$stage" >/dev/null
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src/host-sample" -B "$build/host-sample" "${gen[@]}" -DCMAKE_PREFIX_PATH="$stage" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build/host-sample" >/dev/null
cc -std=c99 -Wall -Wextra -Werror -pedantic ${CFLAGS:-} "$src/docs/examples/download.c" \
   -I"$stage/include" -L"$stage/lib" -lpeerdist -Wl,-rpath,"$stage/lib" ${LDFLAGS:-} \
   -o "$build/host-sample/download-example"
echo "installed to $stage; built $build/host-sample/pd and download-example"
