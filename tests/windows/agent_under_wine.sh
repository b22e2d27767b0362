#!/usr/bin/env bash
# pd-agent.exe and pd.exe under Wine, end to end: the agent on a named pipe, pd.exe
# publishing a package and having the agent download it from a file:///Z:/ origin, a second
# agent refused on the same pipe, and pd.exe's error for an agent that is not there.
# usage: agent_under_wine.sh HOST_BIN_DIR PLUGIN_DIR WORK_DIR
set -euo pipefail
bin=$1 plugins=$2 work=$3
run=$(cd "$(dirname "$0")/../../cmake" && pwd)/wine-run.sh
winpath() { echo "Z:$(echo "$1" | tr / '\\')"; }
rm -rf "$work" && mkdir -p "$work"
pipe="\\\\.\\pipe\\pdtest-$$"
head -c 3000000 /dev/urandom >"$work/pkg.bin"
cat >"$work/agent.json" <<JSON
{"cache_dir": "$(winpath "$work/cache" | sed 's/\\/\\\\/g')",
 "control_socket": "$(echo "$pipe" | sed 's/\\/\\\\/g')",
 "plugin_dir": "$(winpath "$plugins" | sed 's/\\/\\\\/g')",
 "settings": {"trust.allow_unsigned": 1}}
JSON
"$run" "$bin/pd-agent.exe" --config "$(winpath "$work/agent.json")" >"$work/agent.log" 2>&1 &
agent=$!
trap 'kill $agent 2>/dev/null || true; wait $agent 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "pd-agent ready" "$work/agent.log" && break; sleep 0.1; done
grep -q "pd-agent ready" "$work/agent.log" || { cat "$work/agent.log"; echo "FAIL: the agent did not start"; exit 1; }

# A second agent (its own cache) on the same pipe is refused, saying so; the first carries on.
sed 's/cache"/cache2"/' "$work/agent.json" >"$work/second.json"
if "$run" "$bin/pd-agent.exe" --config "$(winpath "$work/second.json")" >"$work/second.log" 2>&1; then
  echo "FAIL: a second agent took the same pipe"; exit 1
fi
grep -q "another agent is listening" "$work/second.log" || { cat "$work/second.log"; echo "FAIL: no reason given"; exit 1; }

"$run" "$bin/pd.exe" publish "$(winpath "$work/pkg.bin")" --manifest "$(winpath "$work/pkg.pdm")" \
       --cache "$(winpath "$work/publisher")" >/dev/null 2>&1
"$run" "$bin/pd.exe" --agent "$pipe" get "$(winpath "$work/pkg.pdm")" --origin "file:///Z:$work/pkg.bin" \
       --dest "$(winpath "$work/out.bin")" >"$work/get.log" 2>&1 || { cat "$work/get.log" "$work/agent.log"; echo "FAIL: get"; exit 1; }
cmp "$work/pkg.bin" "$work/out.bin" || { echo "FAIL: the delivered file differs"; exit 1; }
grep -q '"event":"job-completed"' "$work/agent.log" || { echo "FAIL: no job-completed event logged"; exit 1; }

# pd.exe against a pipe nobody serves: a clear error, a failure status.
if "$run" "$bin/pd.exe" --agent '\\.\pipe\nobody-here' status --once >"$work/nobody.log" 2>&1; then
  echo "FAIL: pd.exe succeeded without an agent"; exit 1
fi
grep -q "cannot reach pd-agent" "$work/nobody.log" || { cat "$work/nobody.log"; echo "FAIL: unclear error"; exit 1; }
echo "pd-agent.exe and pd.exe under Wine: download, duplicate agent and missing agent behave"
