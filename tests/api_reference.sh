#!/usr/bin/env bash
# Generates the API reference from the public headers (docs/api/Doxyfile) into BUILD/api and
# fails on any warning: an undocumented public function, type, enum value or field, or a
# @param naming no parameter. usage: api_reference.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1 out=$2/api
cd "$src"
rm -rf "$out"
log=$( (cat docs/api/Doxyfile; echo "OUTPUT_DIRECTORY = $out"; echo "WARN_AS_ERROR = FAIL_ON_WARNINGS") | doxygen - 2>&1) || {
  echo "$log" >&2
  echo "api_reference: the headers are not fully documented (above)" >&2
  exit 1
}
[ -s "$out/html/index.html" ] || { echo "api_reference: no $out/html/index.html" >&2; exit 1; }
echo "api_reference: $(ls "$out"/html/*.html | wc -l) pages in $out/html"
