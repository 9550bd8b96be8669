#!/usr/bin/env bash
# Run the Python Docker SDK / Testcontainers compatibility suite against a private berthd.
#
# Usage: tests/compat/run-python.sh [BIN_DIR] [-- PYTEST_ARGS...]
#
#   BIN_DIR   directory holding berthd and berth-monitor (default: <repo>/target/debug)
#
# Environment:
#   VENV            virtualenv for the Python deps (default /var/cache/berth-venv; created if missing)
#   BERTH_FIXTURES  fixture cache (default /var/cache/berth-fixtures)
#   BERTH_REQUIRE   if it contains "python-sdk", a venv that cannot be made is a failure, not a skip
#   PYTEST_ARGS     extra pytest arguments (also accepted after "--")
#
# The daemon gets its own root/exec-root/socket under T=$(mktemp -d /tmp/berth-py.XXXXXX);
# everything under $T is cleaned up on exit.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

BIN_DIR="$REPO/target/debug"
if [[ $# -gt 0 && "$1" != "--" ]]; then BIN_DIR="$(cd "$1" && pwd)"; shift; fi
[[ "${1:-}" == "--" ]] && shift
EXTRA_ARGS=("$@")

VENV="${VENV:-/var/cache/berth-venv}"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
LABEL="berth.compat=python"

log() { printf '[run-python %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

skip_or_fail() {
    if [[ "${BERTH_REQUIRE:-}" == *python-sdk* ]]; then
        log "error: $* (BERTH_REQUIRE contains python-sdk)"; exit 1
    fi
    log "skip: $*"; exit 0
}

# --- venv -------------------------------------------------------------------------------------
# shellcheck source=tests/compat/lib.sh
source "$REPO/tests/compat/lib.sh"
ensure_venv || skip_or_fail "cannot create the Python venv at $VENV"
PY="$VENV/bin/python"

ensure_binaries
ensure_fixture

# --- daemon -----------------------------------------------------------------------------------
T="$(mktemp -d /tmp/berth-py.XXXXXX)"
SOCK="$T/berth.sock"
export DOCKER_HOST="unix://$SOCK"
DAEMON_PID=""

cleanup() {
    local rc=$?
    set +e
    if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
        # Remove the containers this run made (all labelled, and the daemon is private anyway).
        "$PY" - "$LABEL" <<'EOF' 2>/dev/null
import sys, docker
try:
    c = docker.from_env(version="auto", timeout=30)
    for ct in c.containers.list(all=True):
        try:
            ct.remove(force=True)
        except Exception as e:
            print("cleanup: remove %s: %s" % (ct.id[:12], e), file=sys.stderr)
except Exception as e:
    print("cleanup: %s" % e, file=sys.stderr)
EOF
        kill -TERM "$DAEMON_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
    fi
    # Per-container monitors outlive the daemon by design: kill only ours (command line has $T).
    local pid cmd
    for pid in $(pgrep -x berth-monitor 2>/dev/null); do
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
        [[ "$cmd" == *"$T"* ]] && kill -KILL "$pid" 2>/dev/null
    done
    # Unmount anything left under $T, deepest first.
    local mp
    awk -v t="$T" '{ p=$5; gsub(/\\040/, " ", p); if (p == t || index(p, t "/") == 1) print p }' /proc/self/mountinfo |
        awk '{ print length($0) "\t" $0 }' | sort -rn | cut -f2- | uniq |
        while IFS= read -r mp; do umount -l "$mp" 2>/dev/null; done
    if [[ $rc -ne 0 && -f "$T/daemon.log" ]]; then
        log "daemon log tail ($T/daemon.log):"
        tail -n 60 "$T/daemon.log" >&2
    fi
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting berthd (T=$T)"
NO_COLOR=1 PATH="$BIN_DIR:$PATH" "$BIN_DIR/berthd" -D --root "$T/root" --exec-root "$T/run" -H "unix://$SOCK" \
    >"$T/daemon.log" 2>&1 &
DAEMON_PID=$!

ok=0
for _ in $(seq 1 300); do
    if curl -fsS --max-time 2 --unix-socket "$SOCK" http://localhost/_ping >/dev/null 2>&1; then ok=1; break; fi
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.1
done
[[ $ok -eq 1 ]] || { log "error: berthd did not answer /_ping"; exit 1; }

log "loading $ARCHIVE"
"$PY" - "$ARCHIVE" <<'EOF' || { log "error: image load failed"; exit 1; }
import sys, docker
c = docker.from_env(version="auto", timeout=300)
with open(sys.argv[1], "rb") as f:
    imgs = c.images.load(f.read())
print("loaded:", [t for i in imgs for t in i.tags], file=sys.stderr)
EOF

export TESTCONTAINERS_RYUK_DISABLED=true
export BERTH_COMPAT_LABEL="$LABEL"
export BERTH_COMPAT_TMP="$T"
cd "$HERE"
# shellcheck disable=SC2086
"$PY" -m pytest -p no:cacheprovider -rA ${PYTEST_ARGS:-} "${EXTRA_ARGS[@]}" "$HERE/test_docker_py.py"
exit $?
