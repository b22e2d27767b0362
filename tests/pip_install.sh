#!/usr/bin/env bash
# pip installs the Python package against the SDK installed under BUILD/stage (offline, no
# build isolation, from a copy of bindings/python so the tree stays clean), then uses it
# from a clean environment: publish, download, typed status, the plugins found beside the
# installed library.  usage: pip_install.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/bindings/python" "$work/package"
PKG_CONFIG_PATH="$build/stage/lib/pkgconfig" /usr/bin/python3 -m pip install --quiet --no-build-isolation \
  --no-deps --no-index --root-user-action=ignore --target "$work/site" "$work/package"
head -c 300000 /dev/urandom > "$work/payload.bin"
cd "$work"
env -i PATH=/usr/bin:/bin PYTHONPATH="$work/site" /usr/bin/python3 - <<'PY'
import pathlib
import peerdist
assert peerdist.__file__.startswith(str(pathlib.Path.cwd() / "site")), peerdist.__file__
here = pathlib.Path.cwd()
with peerdist.Session(here / "cache") as s:
    s.load_plugin()  # beside the installed library: nothing told it where
    s.set_setting("trust.allow_unsigned", "1")
    m = s.publish(here / "payload.bin")
    s.import_manifest(m, str(here / "payload.bin"))
    status = s.start(m.id, destination=here / "out.bin").wait(timeout=60)
    assert status.state is peerdist.JobState.COMPLETED, status
assert (here / "out.bin").read_bytes() == (here / "payload.bin").read_bytes()
print("pip-installed peerdist", peerdist.version(), "downloaded", status.bytes_total, "bytes")
PY
