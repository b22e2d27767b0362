#!/usr/bin/env bash
# Builds the libraries the Windows cross build needs and Debian does not ship for MinGW —
# libsodium, OpenSSL, SQLite, SQLiteCpp, GoogleTest — from Debian's own source packages (the
# versions Debian ships), static, into a prefix outside the source tree. Header-only Boost and
# nlohmann-json are Debian's, reached through a folder of links (MinGW must never see
# /usr/include: it would pick up glibc's headers).
#
# usage: scripts/windows_deps.sh [PREFIX]   (default $PD_WINDOWS_DEPS, else
#        ~/.cache/peerdist/windows-deps). Prints the prefix. A library already built there at
#        the same version is not built again; the machine's apt configuration is not touched
#        (a private sources list and lists folder under the prefix).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=${1:-${PD_WINDOWS_DEPS:-$HOME/.cache/peerdist/windows-deps}}
host=x86_64-w64-mingw32
mkdir -p "$prefix"/{src,apt/lists/partial,include,lib,stamps}
prefix=$(cd "$prefix" && pwd)
log="$prefix/build.log"
jobs=$(nproc)

# Private apt: deb-src for the suites the machine installs from.
cat >"$prefix/apt/sources.list" <<EOF
deb-src http://deb.debian.org/debian bookworm main
deb-src http://deb.debian.org/debian bookworm-updates main
deb-src http://deb.debian.org/debian-security bookworm-security main
EOF
apt_private=(-o Dir::Etc::sourcelist="$prefix/apt/sources.list" -o Dir::Etc::sourceparts=-
             -o Dir::State::Lists="$prefix/apt/lists" -o Debug::NoLocking=1)
lists_fresh=0

# source_dir PACKAGE: unpacks Debian's source of PACKAGE under src/ (once per version) and
# prints its folder: the newest version the archive lists that downloads (a mirror may lack
# the security pool's sources).
source_dir() {
  local pkg=$1 version dir
  for dir in "$prefix/src/$pkg"-[0-9]*; do
    [ -d "$dir" ] && { echo "$dir"; return; }
  done
  if ((lists_fresh == 0)); then
    apt-get "${apt_private[@]}" -qq update >>"$log" 2>&1
    lists_fresh=1
  fi
  for version in $(apt-cache "${apt_private[@]}" showsrc "$pkg" 2>/dev/null | awk '/^Version:/ {print $2}' | sort -Vr); do
    rm -rf "$prefix/src/tmp" && mkdir -p "$prefix/src/tmp"
    if (cd "$prefix/src/tmp" && apt-get "${apt_private[@]}" -qq source "$pkg=$version" >>"$log" 2>&1); then
      dir="$prefix/src/$pkg-$version"
      mv "$(find "$prefix/src/tmp" -mindepth 1 -maxdepth 1 -type d | head -1)" "$dir"
      rm -rf "$prefix/src/tmp"
      echo "$dir"
      return
    fi
    echo "windows_deps: $pkg $version: not downloadable here, trying an older version" >&2
  done
  echo "windows_deps: no Debian source package '$pkg' could be downloaded (see $log)" >&2
  exit 1
}

# built NAME VERSION: true when NAME was built at VERSION already.
built() { [ "$(cat "$prefix/stamps/$1" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$prefix/stamps/$1"; }
version_of() { basename "$1" | sed "s/^$2-//"; }

toolchain="$root/cmake/mingw-w64.cmake"
cmake_build() {  # cmake_build SOURCE BUILD [ARGS...]
  local src=$1 build=$2
  shift 2
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$toolchain" -DPD_WINDOWS_DEPS="$prefix" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$prefix" -DBUILD_SHARED_LIBS=OFF "$@" >>"$log" 2>&1
  cmake --build "$build" -j "$jobs" >>"$log" 2>&1
  cmake --install "$build" >>"$log" 2>&1
}

# Header-only dependencies: links to Debian's headers, nothing else from /usr/include.
ln -sfn /usr/include/boost "$prefix/include/boost"
# header_only NAME TARGET FOLDER DEBIAN_PACKAGE MAJOR: Debian's headers of a header-only
# library through a link in the prefix, and a CMake package (NAME, target TARGET) for them.
header_only() {
  local name=$1 target=$2 folder=$3 deb=$4 major=$5 version
  version=$(dpkg-query -W -f='${Version}' "$deb" | sed -E 's/^[0-9]+://; s/[-+].*//')
  ln -sfn "/usr/include/$folder" "$prefix/include/$folder"
  mkdir -p "$prefix/lib/cmake/$name"
  cat >"$prefix/lib/cmake/$name/${name}Config.cmake" <<EOF2
# Debian's $deb headers, seen through the prefix (never /usr/include).
set(${name}_VERSION $version)
if(NOT TARGET $target)
  add_library($target INTERFACE IMPORTED)
  set_target_properties($target PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "$prefix/include")
endif()
EOF2
  cat >"$prefix/lib/cmake/$name/${name}ConfigVersion.cmake" <<EOF2
set(PACKAGE_VERSION $version)
if(PACKAGE_FIND_VERSION_MAJOR EQUAL $major)
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
endif()
EOF2
}
header_only nlohmann_json nlohmann_json::nlohmann_json nlohmann nlohmann-json3-dev 3
header_only CLI11 CLI11::CLI11 CLI libcli11-dev 2

dir=$(source_dir libsodium) && v=$(version_of "$dir" libsodium)
if ! built libsodium "$v"; then
  echo "windows_deps: libsodium $v" >&2
  (cd "$dir" && { [ -x configure ] || ./autogen.sh -s; } &&
   ./configure --host=$host --prefix="$prefix" --disable-shared --enable-static --disable-dependency-tracking &&
   make -j "$jobs" && make install) >>"$log" 2>&1
  stamp libsodium "$v"
fi

dir=$(source_dir openssl) && v=$(version_of "$dir" openssl)
if ! built openssl "$v"; then
  echo "windows_deps: openssl $v" >&2
  (cd "$dir" && ./Configure mingw64 --cross-compile-prefix=$host- no-shared no-tests --prefix="$prefix" --libdir=lib &&
   make -j "$jobs" build_libs && make install_dev) >>"$log" 2>&1
  stamp openssl "$v"
fi

dir=$(source_dir sqlite3) && v=$(version_of "$dir" sqlite3)
if ! built sqlite3 "$v"; then
  echo "windows_deps: sqlite3 $v" >&2
  (cd "$dir" && { [ -f sqlite3.c ] || { ./configure >/dev/null && make sqlite3.c; }; }) >>"$log" 2>&1
  # The amalgamation as one static library, with the options Debian's build enables that
  # SQLiteCpp relies on.
  mkdir -p "$prefix/build/sqlite3"
  (cd "$prefix/build/sqlite3" &&
   $host-gcc-posix -O2 -DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_THREADSAFE=1 -c "$dir/sqlite3.c" -o sqlite3.o &&
   $host-ar rcs "$prefix/lib/libsqlite3.a" sqlite3.o && cp "$dir/sqlite3.h" "$dir/sqlite3ext.h" "$prefix/include/") >>"$log" 2>&1
  stamp sqlite3 "$v"
fi

dir=$(source_dir sqlitecpp) && v=$(version_of "$dir" sqlitecpp)
if ! built sqlitecpp "$v"; then
  echo "windows_deps: sqlitecpp $v" >&2
  cmake_build "$dir" "$prefix/build/sqlitecpp" -DSQLITECPP_INTERNAL_SQLITE=OFF -DSQLITECPP_RUN_CPPLINT=OFF \
    -DSQLITECPP_RUN_CPPCHECK=OFF -DSQLITECPP_BUILD_TESTS=OFF -DSQLITECPP_BUILD_EXAMPLES=OFF \
    -DSQLite3_INCLUDE_DIR="$prefix/include" -DSQLite3_LIBRARY="$prefix/lib/libsqlite3.a"
  stamp sqlitecpp "$v"
fi

# GoogleTest: Debian ships its source in libgtest-dev (/usr/src/googletest).
v=$(dpkg-query -W -f='${Version}' libgtest-dev)
if ! built googletest "$v"; then
  echo "windows_deps: googletest $v" >&2
  cmake_build /usr/src/googletest "$prefix/build/googletest" -Dgtest_disable_pthreads=OFF
  stamp googletest "$v"
fi

echo "$prefix"
