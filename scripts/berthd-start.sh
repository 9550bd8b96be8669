#!/usr/bin/env bash
# Start berthd in the background on its default socket, unless one already answers.
#
# Usage (as root): scripts/berthd-start.sh [BIN_DIR]
#   BIN_DIR holds berthd and berth-monitor (default target/release).
# Environment: BERTH_SOCKET (default /run/berth/berth.sock), BERTH_LOG (default
# /var/log/berthd.log). Containers outlive berthd; stop it with
# `kill $(cat /run/berth/berthd.pid)` (SIGTERM: a graceful shutdown).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/release}
sock=${BERTH_SOCKET:-/run/berth/berth.sock}
log=${BERTH_LOG:-/var/log/berthd.log}
ping() { curl -fsS --max-time 2 --unix-socket "$sock" http://berth/_ping >/dev/null 2>&1; }
if ping; then
    echo "berthd already answers on $sock"
    exit 0
fi
[[ -x "$bin/berthd" && -x "$bin/berth-monitor" ]] || { echo "berthd-start: $bin/berthd or $bin/berth-monitor missing (make build)" >&2; exit 1; }
mkdir -p "$(dirname "$sock")"
nohup "$bin/berthd" -H "unix://$sock" >>"$log" 2>&1 </dev/null &
echo $! >"$(dirname "$sock")/berthd.pid"
for _ in $(seq 1 100); do
    ping && { echo "berthd started (pid $(cat "$(dirname "$sock")/berthd.pid"), socket $sock, log $log)"; exit 0; }
    sleep 0.1
done
echo "berthd-start: berthd did not answer on $sock; last log lines:" >&2
tail -n 20 "$log" >&2
exit 1
