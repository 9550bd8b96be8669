#!/usr/bin/env bash
# Stress berthd through the Docker SDK: a 100-client load test, a kill -9 crash loop and a
# kill -9/restart with 20 running containers.
#
# Usage: tests/compat/run-stress.sh [BIN_DIR]
#
#   BIN_DIR   directory holding berthd and berth-monitor (default: <repo>/target/debug)
#
# Environment:
#   VENV            virtualenv with the docker SDK (default /var/cache/berth-venv; created if
#                   missing, as run-python.sh does)
#   BERTH_FIXTURES  fixture cache (default /var/cache/berth-fixtures)
#   STRESS_CLIENTS  concurrent clients of the load scenario (default 100)
#   STRESS_ROUNDS   rounds of the crash loop (default 50)
#   STRESS_ONLY     "load", "crash" or "restart20" to run one scenario
#   STRESS_KEEP_LOG a path to copy the daemon log to when a scenario fails
#
# Scenarios (tests/compat/stress.py):
#   load   STRESS_CLIENTS threads, one DockerClient each, create/start/stop(1)/rm a busybox
#          `sleep 30`; reports failures, wall time, ops/s, p95 latency per operation.
#   crash  STRESS_ROUNDS rounds of create/start/stop/rm in a thread while berthd is kill -9'd
#          by PID at random 50-400 ms intervals and restarted on the same root, exec-root and
#          socket; afterwards every listed container must be whole (inspect/start/stop/rm).
#   restart20  20 containers (5 tty, 10 logging, 3 sleep, 2 restart=always exiting every 2 s);
#          berthd kill -9'd for ~4 s: processes live, logs grow, monitors serve attach without
#          the daemon; berthd restarted: ps/logs/exec/attach/stop/rm work on all 20, restart
#          policies resume; reports the restart-to-/_ping (re-adoption) time.
# After each: no container listed, no berth-monitor with $T in its command line, no mount
# under $T, nothing in $T/run but the runtime's empty state, no container directory, no
# berth-<id> cgroup of this run's containers in any hierarchy.
#
# Figures are printed, never asserted. Exit 1 on any failure. The daemon gets its own
# root/exec-root/socket under T=$(mktemp -d /tmp/berth-stress.XXXXXX); everything under $T,
# and any cgroup of this run's containers, is cleaned up on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

BIN_DIR="$REPO/target/debug"
if [[ $# -gt 0 ]]; then BIN_DIR="$(cd "$1" && pwd)"; shift; fi

VENV="${VENV:-/var/cache/berth-venv}"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
CLIENTS="${STRESS_CLIENTS:-100}"
ROUNDS="${STRESS_ROUNDS:-50}"
ONLY="${STRESS_ONLY:-}"

log() { printf '[run-stress %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- venv (the same steps as run-python.sh, so either runner can make it) -------------------
# shellcheck source=tests/compat/lib.sh
source "$REPO/tests/compat/lib.sh"
ensure_venv || { log "error: cannot create the Python venv at $VENV"; exit 1; }
PY="$VENV/bin/python"

ensure_binaries
ensure_fixture

# --- daemon -----------------------------------------------------------------------------------
T="$(mktemp -d /tmp/berth-stress.XXXXXX)"
SOCK="$T/berth.sock"
PIDFILE="$T/berthd.pid"    # the crash scenario restarts berthd and records its PID here
export DOCKER_HOST="unix://$SOCK"
DAEMON_PID=""
FAILED=0

alive() { # a live (not zombie) process
    local st
    st="$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)"
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

our_daemon() { # PID of the berthd serving $T (ours: its command line names $T), if alive
    local pid
    pid="$(cat "$PIDFILE" 2>/dev/null)"
    [[ -n "$pid" ]] || pid="$DAEMON_PID"
    [[ -n "$pid" ]] && alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$T" &&
        echo "$pid"
}

start_daemon() {
    NO_COLOR=1 PATH="$BIN_DIR:$PATH" "$BIN_DIR/berthd" -D --root "$T/root" --exec-root "$T/run" -H "unix://$SOCK" \
        >>"$T/daemon.log" 2>&1 &
    DAEMON_PID=$!
    echo "$DAEMON_PID" >"$PIDFILE"
    local ok=0
    for _ in $(seq 1 300); do
        if curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; then ok=1; break; fi
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ $ok -eq 1 ]]
}

cleanup() {
    local rc=$?
    set +e
    local pid cmd
    pid="$(our_daemon)"
    if [[ -n "$pid" ]]; then
        "$PY" - <<'EOF' 2>/dev/null
import sys, docker
try:
    c = docker.from_env(version="auto", timeout=60)
    for ct in c.containers.list(all=True):
        try:
            ct.remove(force=True)
        except Exception as e:
            print("cleanup: remove %s: %s" % (ct.id[:12], e), file=sys.stderr)
except Exception as e:
    print("cleanup: %s" % e, file=sys.stderr)
EOF
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        for _ in $(seq 1 50); do alive "$pid" || break; sleep 0.1; done
    fi
    [[ -n "$DAEMON_PID" ]] && { wait "$DAEMON_PID"; } 2>/dev/null
    # Per-container monitors outlive the daemon by design: kill only ours (command line has $T).
    for pid in $(pgrep -x berth-monitor 2>/dev/null); do
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
        [[ "$cmd" == *"$T"* ]] && kill -KILL "$pid" 2>/dev/null
    done
    sleep 0.2
    # Unmount anything left under $T, deepest first.
    local mp
    awk -v t="$T" '{ p=$5; gsub(/\\040/, " ", p); if (p == t || index(p, t "/") == 1) print p }' /proc/self/mountinfo |
        awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | uniq |
        while IFS= read -r mp; do umount -l "$mp" 2>/dev/null; done
    # cgroups of this run's containers (the scenarios already reported them as leaks).
    local id cg n=0
    if [[ -f "$T/ids.txt" ]]; then
        for id in $(sort -u "$T/ids.txt"); do
            for cg in /sys/fs/cgroup/*/berth-"$id" /sys/fs/cgroup/*/*/berth-"$id"; do
                [[ -d "$cg" ]] || continue
                n=$((n + 1))
                # Anything still inside (a container's processes outside a monitor): kill it.
                for pid in $(cat "$cg"/cgroup.procs 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
                find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null ||
                    { sleep 0.5; find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null; } ||
                    log "cleanup: cannot remove cgroup $cg"
            done
        done
    fi
    [[ $n -gt 0 ]] && { log "cleanup: removed $n leftover cgroup(s) of this run's containers"; [[ $rc -eq 0 ]] && rc=1; }
    if [[ $rc -ne 0 && -f "$T/daemon.log" ]]; then
        log "daemon log tail ($T/daemon.log):"
        tail -n 40 "$T/daemon.log" >&2
        if [[ -n "${STRESS_KEEP_LOG:-}" ]]; then
            cp "$T/daemon.log" "$STRESS_KEEP_LOG" && log "daemon log kept in $STRESS_KEEP_LOG"
        fi
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting berthd (T=$T)"
start_daemon || { log "error: berthd did not answer /_ping"; exit 1; }

log "loading $ARCHIVE"
curl -fsS --max-time 300 --unix-socket "$SOCK" -X POST -H 'Content-Type: application/x-tar' \
    --data-binary @"$ARCHIVE" 'http://localhost/images/load?quiet=1' >/dev/null ||
    { log "error: image load failed"; exit 1; }

# Many clients, each with its own connections; the runner's limits must allow them.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

if [[ -z "$ONLY" || "$ONLY" == load ]]; then
    "$PY" "$HERE/stress.py" load --sock "$SOCK" --tmp "$T" --clients "$CLIENTS" || FAILED=1
fi

if [[ -z "$ONLY" || "$ONLY" == crash ]]; then
    # The scenario kills this berthd by PID and starts its successors itself, recording
    # each PID in $PIDFILE, which cleanup reads.
    # (disowned: bash still reaps it, without a "Killed" notice.)
    disown "$DAEMON_PID" 2>/dev/null
    "$PY" "$HERE/stress.py" crash --sock "$SOCK" --tmp "$T" --rounds "$ROUNDS" \
        --bin-dir "$BIN_DIR" --pid-file "$PIDFILE" || FAILED=1
fi

if [[ -z "$ONLY" || "$ONLY" == restart20 ]]; then
    # Kills the current berthd (by the PID in $PIDFILE) and starts its successor itself.
    disown "$DAEMON_PID" 2>/dev/null
    "$PY" "$HERE/stress.py" restart20 --sock "$SOCK" --tmp "$T" \
        --bin-dir "$BIN_DIR" --pid-file "$PIDFILE" || FAILED=1
fi

exit "$FAILED"
