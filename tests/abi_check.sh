#!/usr/bin/env bash
# The C ABI against the last release: builds libpeerdist of release BASELINE (git archive, the
# same compiler, ccache), then compares it with this build's library with abidiff and the
# public headers of both. Every difference — a symbol removed or added, a struct that grew, a
# parameter that changed, the SONAME — must be in docs/abi/changes-since-BASELINE.txt, which
# is reviewed like exported-symbols.txt: an ABI change means changing that file (and the
# CHANGELOG) in the same commit.   usage: abi_check.sh SOURCE_DIR BUILD_DIR [BASELINE]
set -euo pipefail
src=$1 build=$2 baseline=${3:-v0.4.0}
reviewed=$src/docs/abi/changes-since-$baseline.txt
work=$build/abi-baseline
# The release's commit: its tag, else the commit docs/abi/releases.txt records for it (a clone
# made without tags still has the history).
commit=$(git -C "$src" rev-parse -q --verify "refs/tags/$baseline^{commit}" ||
         awk -v r="$baseline" '$1 == r { print $2 }' "$src/docs/abi/releases.txt")
if [ -z "$commit" ] || ! git -C "$src" cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "abi_check: release $baseline is not in this clone (a shallow clone? git fetch --tags --unshallow)" >&2
  exit 1
fi
if [ ! -f "$work/stamp" ] || [ "$(cat "$work/stamp")" != "$commit" ]; then
  rm -rf "$work" && mkdir -p "$work/src"
  git -C "$src" archive "$commit" | tar -x -C "$work/src"
  cmake -S "$work/src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPEERDIST_DEVELOPER_MODE=OFF \
        -DPEERDIST_PYTHON=OFF -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  cmake --build "$work/build" --target peerdist >/dev/null
  echo "$commit" >"$work/stamp"
fi
set +e
abidiff --headers-dir1 "$work/src/sdk/include" --headers-dir2 "$src/sdk/include" \
        "$work/build/sdk/src/libpeerdist.so" "$build/sdk/src/libpeerdist.so" >"$work/abidiff.txt"
rc=$?
set -e
if (( rc & 1 )) || (( rc & 2 )); then  # abidiff itself failed or was misused
  cat "$work/abidiff.txt" >&2
  echo "abi_check: abidiff failed ($rc)" >&2
  exit 1
fi
# Source positions move with every edit: compare what changed, not where.
sed -E 's/ at [^ ]+:[0-9]+:[0-9]+//g' "$work/abidiff.txt" >"$work/changes.txt"
if ! diff -u "$reviewed" "$work/changes.txt"; then
  echo "abi_check: the ABI differs from $baseline in ways $reviewed does not list (diff above);" \
       "if intended, update that file and the CHANGELOG" >&2
  exit 1
fi
echo "abi_check: every difference from $baseline is a reviewed one ($(grep -c '^  \[' "$reviewed") entries)"
