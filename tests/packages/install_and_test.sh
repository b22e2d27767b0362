#!/usr/bin/env bash
# The Debian packages as an administrator gets them: builds them (cpack) from a tree
# configured with the `packages` preset, installs them on this machine with apt (root),
# checks them installed (test_installed.py: files, users, man pages, pkg-config, Python, both
# daemons started as their units say, a download through the agent), then purges them.
# usage: tests/packages/install_and_test.sh BUILD_DIR   (the packages preset's build folder)
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "install_and_test: installing packages needs root; skipped" >&2
  exit 0
fi
for p in peerdist-agent peerdist-coordinator; do
  dpkg-query -W "$p" >/dev/null 2>&1 && { echo "install_and_test: $p is already installed here; refusing to touch it" >&2; exit 1; }
done
rm -rf "$build/debs"
(cd "$build" && cpack -G DEB >/dev/null)
packages=()
for deb in "$build"/debs/*.deb; do packages+=("$(dpkg-deb -f "$deb" Package)"); done
echo "install_and_test: ${packages[*]}"
purge() { DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq "${packages[@]}" >/dev/null 2>&1 || true; }
trap purge EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$build"/debs/*.deb >/dev/null
# Not from the build tree: what the packages installed, in a clean environment.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root PD_SOURCE_DIR="$here/../.." PD_DEBS="$build/debs" \
  /usr/bin/python3 -m pytest -p no:cacheprovider -q "$here/test_installed.py"
purge
trap - EXIT
for f in /usr/bin/pd /usr/bin/pd-agent /usr/bin/pd-coordinator /etc/peerdist /var/lib/peerdist /var/cache/peerdist \
         /var/lib/peerdist-coordinator; do
  [ ! -e "$f" ] || { echo "install_and_test: $f is left after purge" >&2; exit 1; }
done
! getent passwd peerdist >/dev/null || { echo "install_and_test: user peerdist is left after purge" >&2; exit 1; }
echo "install_and_test: installed, tested and purged $(ls "$build"/debs/*.deb | wc -l) packages"
