#!/usr/bin/env bash
# Runs a Windows program under Wine for CMake and CTest (CMAKE_CROSSCOMPILING_EMULATOR):
# quiet, in a Wine prefix of its own (WINEPREFIX, else one per user under ~/.cache), with
# the MinGW runtime DLLs on the path. The exit status is the program's.
set -euo pipefail
export WINEDEBUG=${WINEDEBUG:--all}
export WINEPREFIX=${WINEPREFIX:-$HOME/.cache/peerdist/wine}
if [ ! -d "$WINEPREFIX" ]; then
  mkdir -p "$WINEPREFIX"
  /usr/lib/wine/wine64 wineboot --init >/dev/null 2>&1 || true
  # The SDK targets Windows 10 (_WIN32_WINNT 0x0A00); a new prefix says Windows 7.
  /usr/lib/wine/wine64 winecfg -v win10 >/dev/null 2>&1 || true
fi
# libstdc++, libgcc and winpthread come with the compiler; the programs link them statically,
# but plugins loaded at run time may not.
runtime="Z:$(dirname "$(x86_64-w64-mingw32-g++-posix -print-file-name=libstdc++-6.dll)" | tr / '\\')"
export WINEPATH="${WINEPATH:+$WINEPATH;}$runtime"
exec /usr/lib/wine/wine64 "$@"
