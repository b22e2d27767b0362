#!/usr/bin/env bash
# Installs every Debian package peerdist needs to build, test and run its demo.
# Idempotent: skips apt entirely when everything is already installed.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libboost-dev libsodium-dev libsqlitecpp-dev libsqlite3-dev libssl-dev nlohmann-json3-dev libcli11-dev
  pybind11-dev python3-dev python3-pytest python3-matplotlib
  # pip install of the binding against an installed SDK (docs/python.md): offline, no build isolation.
  python3-pip python3-setuptools python3-pybind11
  libgtest-dev libgmock-dev clang libclang-rt-14-dev
  nginx iproute2 iperf3 ethtool openssl curl
  # The web console tested in a real browser (docs/console.md).
  chromium chromium-driver python3-selenium
  # AES for the independent BranchCache client in the tests (tests/python/branchcache_client.py).
  python3-cryptography
  # The Debian packages (cmake/packaging.cmake): man pages from --help, the users they create.
  help2man adduser
  # The API reference from the headers, and the ABI check against the last release.
  doxygen abigail-tools sqlite3
  # The Windows cross build (docs/windows.md): MinGW-w64, Wine, and what building Debian's
  # source packages of the dependencies needs.
  g++-mingw-w64-x86-64-posix wine64 autoconf automake libtool dpkg-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq -o DPkg::Lock::Timeout=300
  $sudo_cmd apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 "${missing[@]}"
fi
