#!/usr/bin/env bash
# A coordinator database made by the last release's own pd-coordinator (built from the tree
# abi_check unpacked), with a topology and a group set through that release's admin command,
# is opened by this build: upgraded in place to the current schema, its data intact, the
# fleet key kept, an administrator added. usage: upgrade_from_release.sh BUILD_DIR
set -euo pipefail
build=$1
base=$build/abi-baseline
[ -d "$base/build" ] || { echo "upgrade_from_release: run abi_check first (it unpacks the release)" >&2; exit 1; }
cmake --build "$base/build" --target pd-coordinator >/dev/null
old=$base/build/coordinator/pd-coordinator new=$build/coordinator/pd-coordinator pd=$build/host-sample/pd
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
serve() {  # serve BINARY LOG: starts it on the database, sets $address
  "$1" serve --db "$work/c.db" --listen 127.0.0.1:0 >"$2" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    address=$(grep -o 'listening on [0-9.:]*' "$2" | awk '{print $3}') && [ -n "$address" ] && return 0
    sleep 0.1
  done
  cat "$2" >&2; return 1
}
"$old" init --db "$work/c.db" --key-out "$work/fleet.key" >/dev/null
printf 'name,parent,type,ranges\nCentral,,Default,10.0.0.0/24\nBranch,Central,Default,10.1.0.0/24\n' >"$work/topo.csv"
serve "$old" "$work/old.log"
"$old" admin --connect "$address" --key-file "$work/fleet.key" topology-import "$work/topo.csv" >/dev/null
"$old" admin --connect "$address" --key-file "$work/fleet.key" group-set pilots --devices pc-1,pc-2 >/dev/null
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
[ "$(sqlite3 "$work/c.db" 'PRAGMA user_version')" = 1 ] || { echo "upgrade_from_release: expected a schema-1 database" >&2; exit 1; }
fleet_before=$(sqlite3 "$work/c.db" "SELECT value FROM meta WHERE key='fleet_key'")

# 0.4.0 left its database readable by others; this build refuses it until the operator fixes it.
if "$new" admin-key add --db "$work/c.db" --name ops --out "$work/ops.cred" 2>"$work/refused.txt"; then
  echo "upgrade_from_release: a database others can read was accepted" >&2; exit 1
fi
grep -q "chmod 600" "$work/refused.txt" || { cat "$work/refused.txt" >&2; exit 1; }
chmod 600 "$work/c.db"
"$new" admin-key add --db "$work/c.db" --name ops --out "$work/ops.cred" >/dev/null
serve "$new" "$work/new.log"
"$pd" admin --coordinator "$address" --credential "$work/ops.cred" topology-export >"$work/topo.out"
grep -q '^Branch,Central,' "$work/topo.out" || { echo "upgrade_from_release: the topology was lost" >&2; cat "$work/topo.out" >&2; exit 1; }
"$pd" admin --coordinator "$address" --credential "$work/ops.cred" --json groups | grep -q '"pc-2"' ||
  { echo "upgrade_from_release: the group was lost" >&2; exit 1; }
[ "$(sqlite3 "$work/c.db" 'PRAGMA user_version')" = 4 ] || { echo "upgrade_from_release: not upgraded to schema 4" >&2; exit 1; }
[ "$(sqlite3 "$work/c.db" "SELECT value FROM meta WHERE key='fleet_key'")" = "$fleet_before" ] ||
  { echo "upgrade_from_release: the fleet key changed" >&2; exit 1; }
echo "upgrade_from_release: a 0.4.0 database (topology, group, fleet key) upgraded to schema 4 intact"
