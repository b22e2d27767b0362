#!/usr/bin/env bash
# Installs the SDK into a staging prefix, then builds what vendors build against the
# *installed* SDK: host-sample (find_package(peerdist)) and the C99 example in docs/.
# usage: install_and_build_host.sh BUILD_DIR SOURCE_DIR [windows]
# With "windows" the build is the MinGW cross build: the same, with the toolchain file, and
# libpeerdist.dll copied beside the programs (where Windows looks for it).
set -euo pipefail
build=$1 src=$2 target=${3:-native}
stage=$build/stage
cmake --install "$build" --prefix "$stage" >/dev/null
if [ "$target" = windows ]; then
  cmake -S "$src/host-sample" -B "$build/host-sample" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$src/cmake/mingw-w64.cmake" \
        -Dpeerdist_DIR="$stage/lib/cmake/peerdist" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build/host-sample" >/dev/null
  cp "$stage/bin/libpeerdist.dll" "$build/host-sample/"
  x86_64-w64-mingw32-gcc-posix -std=c99 -Wall -Wextra -Werror -pedantic "$src/docs/examples/download.c" \
     -I"$stage/include" -L"$stage/lib" -lpeerdist -o "$build/host-sample/download-example.exe"
  echo "installed to $stage; built $build/host-sample/pd.exe, pd-agent.exe and download-example.exe"
  exit 0
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src/host-sample" -B "$build/host-sample" "${gen[@]}" -DCMAKE_PREFIX_PATH="$stage" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build/host-sample" >/dev/null
# The C example finds the SDK as a Makefile would: through the installed peerdist.pc.
pc=$(PKG_CONFIG_PATH="$stage/lib/pkgconfig" pkg-config --cflags --libs peerdist)
# shellcheck disable=SC2086  # pkg-config's words are separate flags
cc -std=c99 -Wall -Wextra -Werror -pedantic ${CFLAGS:-} "$src/docs/examples/download.c" $pc \
   -Wl,-rpath,"$stage/lib" ${LDFLAGS:-} -o "$build/host-sample/download-example"
echo "installed to $stage; built $build/host-sample/pd and download-example"
