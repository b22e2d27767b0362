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
for _ in $(seq 100); do grep -qs "pd-agent ready" "$work/agent.log" && break; sleep 0.1; done
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

# The Windows service, in a Wine prefix of its own (an automatic-start service starts with
# every new session of its prefix: none may be left behind in the shared one).
export WINEPREFIX="$work/service-prefix"
svc_pipe="\\\\.\\pipe\\pdtest-svc-$$"
mkdir -p "$work/service"  # its log goes beside its config: service/agent.log
sed -e 's/cache"/service-cache"/' -e "s/pdtest-$$/pdtest-svc-$$/" "$work/agent.json" >"$work/service/service.json"
service_done() { "$run" "$bin/pd-agent.exe" service uninstall >/dev/null 2>&1 || true; /usr/lib/wine/wineserver -k 2>/dev/null || true; }
trap 'kill $agent 2>/dev/null || true; wait $agent 2>/dev/null || true; service_done' EXIT
"$run" "$bin/pd-agent.exe" service install --config "$(winpath "$work/service/service.json")" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; echo "FAIL: service install"; exit 1; }
# A "reboot" of the prefix: the next session starts its automatic-start services.
/usr/lib/wine/wineserver -k 2>/dev/null || true
ok=
for _ in $(seq 50); do
  if "$run" "$bin/pd.exe" --agent "$svc_pipe" call '{"cmd":"version"}' >"$work/svc-call.log" 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ -n "$ok" ] || { cat "$work/svc-call.log" "$work/service/agent.log" 2>/dev/null; echo "FAIL: the service did not answer on its pipe"; exit 1; }
grep -q "pd-agent ready" "$work/service/agent.log" || { echo "FAIL: the service logged nothing beside its config"; exit 1; }
"$run" sc stop peerdist-agent >/dev/null 2>&1
for _ in $(seq 50); do grep -q "stopping; verified blocks are kept" "$work/service/agent.log" && break; sleep 0.2; done
grep -q "stopping; verified blocks are kept" "$work/service/agent.log" || { echo "FAIL: the service did not stop"; exit 1; }
"$run" "$bin/pd-agent.exe" service uninstall >"$work/uninstall.log" 2>&1 || { cat "$work/uninstall.log"; echo "FAIL: uninstall"; exit 1; }
if "$run" sc query peerdist-agent 2>&1 | grep -q RUNNING; then echo "FAIL: the service outlived its removal"; exit 1; fi
echo "pd-agent.exe and pd.exe under Wine: download, duplicate agent, missing agent, and the service (install, run, stop, uninstall) behave"
