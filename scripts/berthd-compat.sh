#!/usr/bin/env bash
# Container commands are single-quoted on purpose (they expand in the container).
# shellcheck disable=SC2016
#
# berthd compatibility checks: drive the real docker CLI against a private berthd
# through a scripted container lifecycle.
#
# Usage: scripts/berthd-compat.sh [BERTHD_BIN_DIR]
#
#   BERTHD_BIN_DIR  directory holding berthd and berth-monitor (default $BERTHD_DIR
#                   or target/debug; build them with
#                   `cargo build -p berthd -p berth-monitor`).
#
# Environment:
#   BERTH_FIXTURES        fixture cache (default /var/cache/berth-fixtures); the
#                         busybox docker archive is built when missing
#   BERTH_REQUIRE         when it contains "docker-cli", a missing docker CLI fails
#                         instead of skipping
#   BERTH_COMPAT_TIMEOUT  seconds one docker command may take (default 60)
#   BERTH_COMPAT_LOG      when set, berthd's log is copied there on exit
#
# Starts its own berthd on a socket in a fresh directory T=/tmp/berth-compat.XXXXXX
# (--root T/root, --exec-root T/run, log in T/daemon.log) and points DOCKER_HOST at
# it. Covers: version, info, load, images, run (stdout, exit codes 3/126/127, -i,
# -t, -it window size), run -d, ps (filters, format), logs (--tail, -f,
# --timestamps), inspect, stop, start, restart, kill, wait, rm (-f, refused while
# running), rename, pause/unpause, labels, --read-only and --tmpfs, bind mounts,
# --user, --workdir, -e, --entrypoint, --hostname, --memory, --pids-limit,
# --cap-drop ALL, restart policies, containers surviving a SIGKILLed daemon and
# re-adopted by a new one; then exec, exec -it, top, stats, cp, diff, commit,
# export, save/load, tag, rmi, volumes, system df, container prune and events.
# Eventual states are polled (never timed).
#
# On exit (also on failure) removes every container it made, stops the berthd it
# started (SIGTERM, then SIGKILL), kills the berth-monitor processes working under
# T, unmounts what is left mounted under T and removes T.
# Prints one PASS/FAIL line per check (a failure with docker's stderr and the lines
# berthd logged meanwhile) and a summary; exits 1 when any check fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

case "${1:-}" in
    -h|--help) sed -n '/^# berthd compatibility/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
esac
BIN="${1:-${BERTHD_DIR:-$REPO/target/debug}}"
BIN="$(readlink -f "$BIN" 2>/dev/null || echo "$BIN")"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
CMD_TIMEOUT="${BERTH_COMPAT_TIMEOUT:-60}"

if ! command -v docker >/dev/null; then
    if [[ "${BERTH_REQUIRE:-}" == *docker-cli* ]]; then
        echo "berthd-compat: FAIL: the docker CLI is missing (BERTH_REQUIRE=$BERTH_REQUIRE)" >&2
        exit 1
    fi
    echo "berthd-compat: SKIP: the docker CLI is not installed"
    exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "berthd-compat: must run as root" >&2; exit 1; }
for b in berthd berth-monitor; do
    [[ -x "$BIN/$b" ]] || { echo "berthd-compat: $BIN/$b not found (cargo build -p berthd -p berth-monitor)" >&2; exit 1; }
done
ARCHIVE="$FIXTURES/busybox/docker-archive.tar"
[[ -f "$ARCHIVE" ]] || BERTH_FIXTURES="$FIXTURES" "$REPO/tests/fixtures/build-images.sh" busybox
[[ -f "$ARCHIVE" ]] || { echo "berthd-compat: $ARCHIVE missing" >&2; exit 1; }

T="$(mktemp -d /tmp/berth-compat.XXXXXX)"
SOCK="$T/berth.sock"
LOG="$T/daemon.log"
export DOCKER_HOST="unix://$SOCK"
# Keep the CLI away from the caller's contexts and config.
export DOCKER_CONFIG="$T/docker-config"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
mkdir -p "$DOCKER_CONFIG"
# Every container this run names starts with $PFX.
PFX="bc$$"
BERTHD_PID=""
FOLLOW_PID=""
FEEDER_PID=""
passed=0
failed=0
failed_names=()

# ------------------------------------------------------------------ daemon

ping_ok() { curl -sf --max-time 2 --unix-socket "$SOCK" http://berth/_ping >/dev/null 2>&1; }

start_berthd() {
    echo "--- berthd start $(date -u +%FT%TZ)" >>"$LOG"
    "$BIN/berthd" --root "$T/root" --exec-root "$T/run" -H "unix://$SOCK" >>"$LOG" 2>&1 &
    BERTHD_PID=$!
    # No job notice ("Killed") when the daemon restart check SIGKILLs it; bash still
    # reaps it, and stop_berthd polls with kill -0.
    disown "$BERTHD_PID"
    local i
    for ((i = 0; i < 300; i++)); do
        if ping_ok; then return 0; fi
        if ! kill -0 "$BERTHD_PID" 2>/dev/null; then
            echo "berthd-compat: berthd exited during start-up:" >&2
            tail -n 30 "$LOG" >&2
            BERTHD_PID=""
            return 1
        fi
        sleep 0.1
    done
    echo "berthd-compat: berthd did not answer /_ping within 30s" >&2
    tail -n 30 "$LOG" >&2
    return 1
}

# stop_berthd SIGNAL: send SIGNAL to our berthd (only it) and reap it; SIGTERM falls
# back to SIGKILL after 10s.
stop_berthd() {
    local sig="$1" i
    [[ -n "$BERTHD_PID" ]] || return 0
    kill "-$sig" "$BERTHD_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$BERTHD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$BERTHD_PID" 2>/dev/null; then
        kill -KILL "$BERTHD_PID" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            kill -0 "$BERTHD_PID" 2>/dev/null || break
            sleep 0.1
        done
    fi
    BERTHD_PID=""
}

on_exit() {
    local rc=$? ids p m
    set +e
    [[ -n "$FOLLOW_PID" ]] && kill "$FOLLOW_PID" 2>/dev/null
    [[ -n "$FEEDER_PID" ]] && kill "$FEEDER_PID" 2>/dev/null
    if [[ -n "$BERTHD_PID" ]] && kill -0 "$BERTHD_PID" 2>/dev/null; then
        ids="$(timeout 20 docker ps -aq 2>/dev/null)"
        if [[ -n "$ids" ]]; then
            # shellcheck disable=SC2086
            timeout -k 5 60 docker rm -f $ids >/dev/null 2>&1 ||
                echo "berthd-compat: WARNING: docker rm -f failed for ${ids//$'\n'/ }" >&2
        fi
    fi
    stop_berthd TERM
    # Per-container monitors outlive the daemon by design: end ours (and only ours).
    for p in $(pgrep -f "berth-monitor $T" 2>/dev/null); do
        echo "berthd-compat: killing leftover monitor $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
        kill -KILL "$p" 2>/dev/null
    done
    sleep 0.2
    # Anything still mounted under $T, deepest first.
    awk -v t="$T" '$5 == t || index($5, t "/") == 1 { print $5 }' /proc/self/mountinfo |
        awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2- |
        while read -r m; do
            m="$(printf '%b' "$m")"
            umount -l "$m" 2>/dev/null || echo "berthd-compat: WARNING: could not unmount $m" >&2
        done
    if [[ -n "${BERTH_COMPAT_LOG:-}" && -f "$LOG" ]]; then cp "$LOG" "$BERTH_COMPAT_LOG"; fi
    if [[ $failed -gt 0 && -f "$LOG" ]]; then
        echo "--- berthd log (tail) $LOG"
        tail -n 40 "$LOG" | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    /'
    fi
    rm -rf "$T" || echo "berthd-compat: WARNING: could not remove $T" >&2
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ checks

# tmo CMD...: run CMD with a timeout (shell functions run as they are; they time
# out their own docker commands).
tmo() {
    if [[ "$(type -t "$1")" == function ]]; then
        "$@"
    else
        timeout -k 5 "$CMD_TIMEOUT" "$@"
    fi
}
dk() { timeout -k 5 "$CMD_TIMEOUT" docker "$@"; }

log_mark=0
begin_check() { log_mark="$(wc -l <"$LOG" 2>/dev/null || echo 0)"; }

pass() {
    echo "PASS $1"
    passed=$((passed + 1))
}

report_fail() {
    echo "FAIL $1"
    failed=$((failed + 1))
    failed_names+=("$2")
    if [[ -s "$T/stderr" ]]; then
        echo "    stderr:"
        tail -n 10 "$T/stderr" | sed 's/^/      /'
    fi
    if [[ -f "$LOG" ]] && [[ "$(wc -l <"$LOG")" -gt "$log_mark" ]]; then
        echo "    berthd logged meanwhile:"
        tail -n "+$((log_mark + 1))" "$LOG" | tail -n 8 | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/      /' | cut -c1-400
    fi
}

# check NAME EXPECTED_OUTPUT CMD...: pass when CMD exits 0 and its stdout (trimmed,
# without CRs) equals EXPECTED_OUTPUT ("-" means: do not compare output).
check() {
    local name="$1" want="$2" got rc=0
    shift 2
    begin_check
    got="$(tmo "$@" 2>"$T/stderr" | tr -d '\r')" || rc=$?
    if [[ $rc -eq 0 && ( "$want" == - || "$got" == "$want" ) ]]; then
        pass "$name"
    else
        report_fail "$name (exit $rc, stdout: ${got@Q}, want: ${want@Q})" "$name"
    fi
}

# check_re NAME REGEX CMD...: like check, but stdout must match the bash REGEX.
check_re() {
    local name="$1" re="$2" got rc=0
    shift 2
    begin_check
    got="$(tmo "$@" 2>"$T/stderr" | tr -d '\r')" || rc=$?
    if [[ $rc -eq 0 && "$got" =~ $re ]]; then
        pass "$name"
    else
        report_fail "$name (exit $rc, stdout: ${got@Q}, want match: ${re@Q})" "$name"
    fi
}

# check_exit NAME CODE CMD...: pass when CMD exits with CODE.
check_exit() {
    local name="$1" want="$2" rc=0 got
    shift 2
    begin_check
    got="$(tmo "$@" 2>"$T/stderr")" || rc=$?
    if [[ $rc -eq $want ]]; then
        pass "$name"
    else
        report_fail "$name (exit $rc, want $want, stdout: ${got@Q})" "$name"
    fi
}

# check_refused NAME REGEX CMD...: pass when CMD fails and its stderr matches the
# (case-insensitive) bash REGEX.
check_refused() {
    local name="$1" re="$2" rc=0 err
    shift 2
    begin_check
    tmo "$@" >/dev/null 2>"$T/stderr" || rc=$?
    err="$(cat "$T/stderr")"
    if [[ $rc -ne 0 && "${err,,}" =~ ${re,,} ]]; then
        pass "$name"
    else
        report_fail "$name (exit $rc, want failure with stderr matching ${re@Q})" "$name"
    fi
}

# wait_until SECONDS CMD...: poll CMD (quietly) every 0.2s until it succeeds.
wait_until() {
    local secs="$1" i
    shift
    for ((i = 0; i < secs * 5; i++)); do
        if tmo "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    echo "timed out after ${secs}s waiting for: $*" >&2
    return 1
}

# output_is WANT CMD...: true when CMD's stdout equals WANT.
output_is() {
    local want="$1"
    shift
    [[ "$("$@" 2>/dev/null)" == "$want" ]]
}
# output_has RE CMD...: true when CMD's stdout matches RE.
output_has() {
    local re="$1"
    shift
    [[ "$("$@" 2>/dev/null)" =~ $re ]]
}

# eventually SECS WANT CMD...: poll until CMD prints WANT, then print CMD's output
# (the last one seen on timeout).
eventually() {
    local secs="$1" want="$2"
    shift 2
    wait_until "$secs" output_is "$want" "$@" || true
    "$@"
}
# eventually_re SECS RE CMD...: like eventually, for a regex.
eventually_re() {
    local secs="$1" re="$2"
    shift 2
    wait_until "$secs" output_has "$re" "$@" || true
    "$@"
}

# in_tty SHELL-COMMAND: run it on a fresh pseudo-terminal (script(1)); prints its
# output without CRs/NULs. script's stdin is a pipe that stays open (an EOF typed
# into the terminal would race with the container).
in_tty() {
    local rc=0
    rm -f "$T/tty-stdin"
    mkfifo "$T/tty-stdin"
    sleep "$CMD_TIMEOUT" >"$T/tty-stdin" &
    FEEDER_PID=$!
    timeout -k 5 "$CMD_TIMEOUT" script -qec "$1" /dev/null <"$T/tty-stdin" | tr -d '\r\0' || rc=$?
    kill "$FEEDER_PID" 2>/dev/null || true
    wait "$FEEDER_PID" 2>/dev/null || true
    FEEDER_PID=""
    return "$rc"
}

# Inspect helpers.
state() { dk inspect -f '{{.State.Status}}' "$1"; }
cpid() { dk inspect -f '{{.State.Pid}}' "$1"; }
gone() {
    if dk inspect "$1" >/dev/null 2>&1; then echo "$1 still exists"; else echo gone; fi
}
pid_alive() { if kill -0 "$1" 2>/dev/null; then echo alive; else echo dead; fi; }

IMG=busybox
CG_MEM='cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
CG_PIDS='cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'
TTY_PROBE='test -t 0 && echo tty || echo notty'
TICKER='i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done'

echo "berthd-compat: berthd from $BIN, state in $T, $(docker --version)"
start_berthd || { failed=1; failed_names+=("berthd start"); exit 1; }

# ------------------------------------------------------------------ basics

check "version: server API 1.51" "1.51" dk version -f '{{.Server.APIVersion}}'
check_re "version: plain output" 'Server:.*API version: +1\.51' dk version
check_re "info" 'Server Version' dk info
check_re "load busybox" 'Loaded image' dk load -i "$ARCHIVE"
check_re "images lists busybox" '(^|'$'\n'')busybox latest' dk images --format '{{.Repository}} {{.Tag}}'
check "run echo" "hi" dk run --rm "$IMG" echo hi
check_exit "run exit code 3" 3 dk run --rm "$IMG" sh -c 'exit 3'
check_exit "run missing executable: 127" 127 dk run --rm "$IMG" /no/such/binary
check_exit "run command not in PATH: 127" 127 dk run --rm "$IMG" no-such-command
check_exit "run non-executable file: 126" 126 dk run --rm "$IMG" /etc/passwd
check "run -i (stdin piped)" "piped" sh -c 'printf "echo piped\n" | timeout -k 5 "$1" docker run -i --rm busybox sh' sh "$CMD_TIMEOUT"
check "run -t (stdout is a tty)" "tty" dk run -t --rm "$IMG" sh -c 'test -t 1 && echo tty || echo notty'
check "run without -t: no tty" "notty" dk run --rm "$IMG" sh -c "$TTY_PROBE"
check_re "run -it: window size 30 100" '(^|'$'\n'')30 100' \
    in_tty "stty rows 30 cols 100; docker run -it --rm busybox sh -c 'stty size'"

# ------------------------------------------------------------------ lifecycle

D="$PFX-detached"
check_re "run -d prints an id" '^[0-9a-f]{64}$' dk run -d --name "$D" "$IMG" sh -c 'echo one; echo two; echo three; exec sleep 1000'
check_re "ps shows the container" "(^|"$'\n'")$D( |$)" eventually_re 20 "(^|"$'\n'")$D running" \
    dk ps --format '{{.Names}} {{.State}}'
check "ps -a --filter name --format" "$D running" dk ps -a --filter "name=$D" --format '{{.Names}} {{.State}}'
check "logs" $'one\ntwo\nthree' eventually 20 $'one\ntwo\nthree' dk logs "$D"
check "logs --tail 1" "three" dk logs --tail 1 "$D"
check_re "logs --timestamps" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z one'$'\n' dk logs --timestamps "$D"
inspect_running() {
    local out pid
    out="$(dk inspect -f '{{.State.Running}} {{.State.Pid}} {{.Config.Image}} {{.HostConfig.RestartPolicy.Name}}' "$1")" || return 1
    echo "$out"
    pid="$(cut -d' ' -f2 <<<"$out")"
    { [[ "$pid" =~ ^[1-9][0-9]*$ ]] && kill -0 "$pid" 2>/dev/null; } || { echo "State.Pid $pid is not a live host process" >&2; return 1; }
    [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline")" == "sleep 1000 " ]] || { echo "State.Pid $pid runs $(tr '\0' ' ' <"/proc/$pid/cmdline")" >&2; return 1; }
}
check_re "inspect -f State/Config/HostConfig" '^true [1-9][0-9]* busybox no$' inspect_running "$D"
stop_status() {
    dk stop -t "$2" "$1" >/dev/null || return 1
    dk inspect -f '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}' "$1"
}
check "stop -t 1 (SIGKILL after the timeout)" "exited false 137" stop_status "$D" 1
start_status() {
    dk start "$1" >/dev/null || return 1
    eventually 20 running state "$1"
}
check "start" "running" start_status "$D"
restart_new_pid() {
    local before after
    before="$(cpid "$1")" || return 1
    dk restart -t 1 "$1" >/dev/null || return 1
    after="$(eventually_re 20 '^[1-9]' cpid "$1")"
    [[ "$after" != "$before" && "$after" != 0 ]] || { echo "pid before $before after $after" >&2; return 1; }
    state "$1"
}
check "restart -t 1 (new process)" "running" restart_new_pid "$D"
check "logs after restart (appended)" $'one\ntwo\nthree\none\ntwo\nthree\none\ntwo\nthree' \
    eventually 20 $'one\ntwo\nthree\none\ntwo\nthree\none\ntwo\nthree' dk logs "$D"
kill_wait() {
    dk kill "$1" >/dev/null || return 1
    dk wait "$1"
}
check "kill, wait prints 137" "137" kill_wait "$D"
check "state after kill" "exited 137" dk inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$D"
# A PID 1 that exits 7 on SIGTERM: stop must deliver SIGTERM first.
TT="$PFX-term"
check_re "run -d (TERM trap)" '^[0-9a-f]{64}$' dk run -d --name "$TT" "$IMG" \
    sh -c 'trap "exit 7" TERM; echo ready; while :; do sleep 0.1; done'
check "logs (TERM trap ready)" "ready" eventually 20 ready dk logs "$TT"
check "stop delivers SIGTERM (exit 7)" "exited false 7" stop_status "$TT" 30
check_re "ps -a Status text" '^Exited \(7\) ' dk ps -a --filter "name=$TT" --format '{{.Status}}'
check "ps -a --filter status=exited" "$TT" dk ps -a --filter status=exited --filter "name=$TT" --format '{{.Names}}'
check_refused "run with a name in use is refused" 'already in use' dk run -d --name "$TT" "$IMG" true
check_refused "inspect of a missing container" 'no such (container|object)' dk inspect "$PFX-missing"
check "logs: stdout and stderr apart" "out|err" sh -c \
    'o="$(docker run --name "$1" busybox sh -c "echo out; echo err >&2" 2>/dev/null)" &&
     e="$(docker logs "$1" 2>&1 >/dev/null)" && echo "$o|$e"' sh "$PFX-streams"
check "run --rm removes the container" "" sh -c 'docker run --rm --name "$1" busybox true && docker ps -aq --filter "name=$1"' sh "$PFX-rmflag"

CR="$PFX-created"
check_re "create" '^[0-9a-f]{64}$' dk create --name "$CR" "$IMG" sh -c 'echo attached-out; exit 4'
check "ps -a shows it created" "$CR created" dk ps -a --filter "name=$CR" --format '{{.Names}} {{.State}}'
check "start -a prints the output" "attached-out" sh -c 'timeout -k 5 "$1" docker start -a "$2"; true' sh "$CMD_TIMEOUT" "$CR"
check "exit code after start -a" "exited 4" dk inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CR"
check_re "run -d --rm" '^[0-9a-f]{64}$' dk run -d --rm --name "$PFX-autorm" "$IMG" true
check "run -d --rm: removed once it exits" "" eventually 20 "" dk ps -aq --filter "name=$PFX-autorm"

W="$PFX-wait"
check_re "run -d (exit 5)" '^[0-9a-f]{64}$' dk run -d --name "$W" "$IMG" sh -c 'sleep 1; exit 5'
check "wait prints the exit code" "5" dk wait "$W"
check "wait on an exited container" "5" dk wait "$W"

P="$PFX-pause"
check_re "run -d (pause)" '^[0-9a-f]{64}$' dk run -d --name "$P" "$IMG" sh -c "$TICKER"
pause_state() {
    dk pause "$1" >/dev/null || return 1
    state "$1"
}
unpause_state() {
    dk unpause "$1" >/dev/null || return 1
    state "$1"
}
# The ticker's log must not grow while it is paused.
paused_silent() {
    local a b
    a="$(dk logs "$1" 2>/dev/null | wc -l)"
    sleep 1
    b="$(dk logs "$1" 2>/dev/null | wc -l)"
    if [[ "$a" == "$b" ]]; then echo frozen; else echo "log grew $a -> $b"; fi
}
check "pause" "paused" pause_state "$P"
check "paused process does not run" "frozen" paused_silent "$P"
check "unpause" "running" unpause_state "$P"

PS="$PFX-paused-stop"
check_re "run -d (stop while paused)" '^[0-9a-f]{64}$' dk run -d --name "$PS" "$IMG" sleep 1000
check "pause (to stop)" "paused" pause_state "$PS"
check "stop -t 1 of a paused container" "exited false 137" stop_status "$PS" 1
check_refused "rm of a running container is refused" 'cannot remove a running container' dk rm "$P"
check "rm -f (running)" "gone" sh -c 'docker rm -f "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$P"
check "rm (exited)" "gone" sh -c 'docker rm "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$W"

RN="$PFX-renamed"
rename_check() {
    dk rename "$1" "$2" || return 1
    echo "$(dk inspect -f '{{.Name}}' "$2") $(gone "$1")"
}
check "rename" "/$RN gone" rename_check "$D" "$RN"
check "ps -a after rename" "$RN exited" dk ps -a --filter "name=$RN" --format '{{.Names}} {{.State}}'

L="$PFX-label"
check_re "run -d --label a=b" '^[0-9a-f]{64}$' dk run -d --name "$L" --label a=b "$IMG" sleep 1000
check "ps --filter label=a=b" "$L" dk ps --filter label=a=b --format '{{.Names}}'
check "ps --filter label=a=c (none)" "" dk ps --filter label=a=c --format '{{.Names}}'
check "inspect Config.Labels" "b" dk inspect -f '{{index .Config.Labels "a"}}' "$L"

# ------------------------------------------------------------------ run options

check "--read-only: / not writable" "ro" dk run --rm --read-only "$IMG" sh -c 'touch /probe 2>/dev/null && echo rw || echo ro'
check "--read-only --tmpfs /tmp writable" "ro tmp-ok" \
    dk run --rm --read-only --tmpfs /tmp "$IMG" sh -c 'touch /probe 2>/dev/null && r=rw || r=ro; touch /tmp/probe && echo "$r tmp-ok"'
check "writable rootfs by default" "rw" dk run --rm "$IMG" sh -c 'touch /probe 2>/dev/null && echo rw || echo ro'
mkdir -p "$T/vol"
echo host-data >"$T/vol/in"
check "-v HOSTDIR:/data (read in container)" "host-data" \
    dk run --rm -v "$T/vol:/data" "$IMG" sh -c 'cat /data/in && echo container-data >/data/out'
check "-v HOSTDIR:/data (write seen on host)" "container-data" cat "$T/vol/out"
check "-v HOSTDIR:/data:ro" "denied" \
    dk run --rm -v "$T/vol:/data:ro" "$IMG" sh -c 'echo x 2>/dev/null >/data/in && echo written || echo denied'
check "--user 1000:1000" "1000 1000" dk run --rm --user 1000:1000 "$IMG" sh -c 'echo $(id -u) $(id -g)'
check "--workdir" "/tmp" dk run --rm --workdir /tmp "$IMG" pwd
check "--workdir (created when missing)" "/new/dir" dk run --rm -w /new/dir "$IMG" pwd
check "-e" "bar baz" dk run --rm -e FOO=bar -e X=baz "$IMG" sh -c 'echo $FOO $X'
check "--entrypoint" "from-entrypoint" dk run --rm --entrypoint echo "$IMG" from-entrypoint
check "--hostname" "h-berth" dk run --rm --hostname h-berth "$IMG" hostname
check "--memory 64m" "67108864" dk run --rm --memory 64m "$IMG" sh -c "$CG_MEM"
check "--pids-limit 42" "42" dk run --rm --pids-limit 42 "$IMG" sh -c "$CG_PIDS"
CHOWN_PROBE='touch /tmp/f && chown 1 /tmp/f 2>/dev/null && echo chowned || echo denied'
check "chown works by default" "chowned" dk run --rm "$IMG" sh -c "$CHOWN_PROBE"
check "--cap-drop ALL: chown fails" "denied" dk run --rm --cap-drop ALL "$IMG" sh -c "$CHOWN_PROBE"

OF="$PFX-onfail"
check_re "run -d --restart on-failure:2" '^[0-9a-f]{64}$' dk run -d --name "$OF" --restart on-failure:2 "$IMG" sh -c 'exit 1'
check "on-failure:2 ends with RestartCount 2" "2 exited 1" \
    eventually 30 "2 exited 1" dk inspect -f '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}' "$OF"
AL="$PFX-always"
check_re "run -d --restart always" '^[0-9a-f]{64}$' dk run -d --name "$AL" --restart always "$IMG" sh -c 'sleep 0.5; exit 0'
check_re "restart always: restarted after exit" '^[1-9][0-9]* always$' \
    eventually_re 30 '^[1-9][0-9]* always$' dk inspect -f '{{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}' "$AL"
check "stop (restart always) stays stopped" "exited" sh -c \
    'docker stop -t 1 "$1" >/dev/null && sleep 2 && docker inspect -f "{{.State.Status}}" "$1"' sh "$AL"
check "rm -f (restart always)" "gone" sh -c 'docker rm -f "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$AL"

# ------------------------------------------------------------------ daemon restart

S="$PFX-survivor"
check_re "run -d (ticker for daemon restart)" '^[0-9a-f]{64}$' dk run -d --name "$S" "$IMG" sh -c "$TICKER"
wait_until 20 output_has tick dk logs "$S" || true
# One that exits (code 3) while berthd is down, when told through a bind mount.
DN="$PFX-exits-while-down"
mkdir -p "$T/trigger"
check_re "run -d (exits while berthd is down)" '^[0-9a-f]{64}$' dk run -d --name "$DN" -v "$T/trigger:/trigger" "$IMG" \
    sh -c 'echo waiting; while [ ! -f /trigger/go ]; do sleep 0.1; done; echo bye; exit 3'
wait_until 20 output_has waiting dk logs "$DN" || true
DNPID="$(cpid "$DN" 2>/dev/null || echo 0)"
SPID="$(cpid "$S" 2>/dev/null || echo 0)"
SLOG="$(dk inspect -f '{{.LogPath}}' "$S" 2>/dev/null || true)"
if [[ ! -f "$SLOG" ]]; then
    SLOG="$(find "$T/root" -name '*-json.log' -path "*$(dk inspect -f '{{.Id}}' "$S" 2>/dev/null || echo none)*" 2>/dev/null | head -n1)"
fi
log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
log_grows() {
    local a
    a="$(log_size "$1")"
    [[ -f "$1" ]] || { echo "no log file ${1@Q}"; return 0; }
    wait_until 20 sh -c '[ "$(stat -c %s "$1")" -gt "$2" ]' sh "$1" "$a" ||
        { echo "log stuck at $a bytes"; return 0; }
    echo grows
}
begin_check
stop_berthd KILL
echo "berthd-compat: berthd killed with SIGKILL (container pid $SPID, log ${SLOG:-?})"
check "container survives berthd SIGKILL" "alive" pid_alive "$SPID"
check "its log keeps growing without berthd" "grows" log_grows "$SLOG"
touch "$T/trigger/go"
check "the other one exits while berthd is down" "dead" eventually 20 dead pid_alive "$DNPID"
begin_check
if start_berthd; then pass "berthd restarts on the same state"; else report_fail "berthd restarts on the same state" "berthd restart"; fi
check "ps after daemon restart" "$S running" dk ps --filter "name=$S" --format '{{.Names}} {{.State}}'
check "inspect Pid after daemon restart" "$SPID" dk inspect -f '{{.State.Pid}}' "$S"
newest_tick() { dk logs --tail 1 "$S" | tr -dc '0-9'; }
logs_after_restart() {
    local a b
    a="$(newest_tick)" || return 1
    wait_until 20 sh -c '[ "$(docker logs --tail 1 "$1" | tr -dc 0-9)" -gt "$2" ]' sh "$S" "$a" || true
    b="$(newest_tick)"
    [[ "$(dk logs "$S" | head -n1)" == tick1 ]] || { echo "logs lost their start"; return 0; }
    if [[ -n "$b" && "$b" -gt "${a:-0}" ]]; then echo "logs ok"; else echo "stuck at tick$a"; fi
}
check "logs after daemon restart (old and new lines)" "logs ok" logs_after_restart
check "exit while berthd was down: inspect" "exited false 3" \
    eventually 20 "exited false 3" dk inspect -f '{{.State.Status}} {{.State.Running}} {{.State.ExitCode}}' "$DN"
check "exit while berthd was down: wait" "3" dk wait "$DN"
check "exit while berthd was down: logs" $'waiting\nbye' dk logs "$DN"
check "stop after daemon restart" "exited false 137" stop_status "$S" 1
check "container process gone after stop" "dead" eventually 20 dead pid_alive "$SPID"
check "rm after daemon restart" "gone" sh -c 'docker rm "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$S"

# ------------------------------------------------------------------ logs -f

F="$PFX-follow"
check_re "run -d (ticker for logs -f)" '^[0-9a-f]{64}$' dk run -d --name "$F" "$IMG" sh -c "$TICKER"
# Pass when `docker logs -f` prints a line the container wrote after the follow had
# already started (and printed something).
follow_sees_new() {
    local last want
    timeout -k 5 40 docker logs -f "$F" >"$T/follow.out" 2>"$T/follow.err" &
    FOLLOW_PID=$!
    wait_until 20 grep -q tick "$T/follow.out" || true
    last="$(dk logs --tail 1 "$F" | tr -dc '0-9')"
    want="tick$((${last:-0} + 3))"
    wait_until 20 grep -qx "$want" "$T/follow.out" || true
    kill "$FOLLOW_PID" 2>/dev/null || true
    wait "$FOLLOW_PID" 2>/dev/null || true
    FOLLOW_PID=""
    cat "$T/follow.err" >&2
    if grep -qx "$want" "$T/follow.out"; then echo "saw $want"; else echo "follow stopped at $(tail -n1 "$T/follow.out")"; fi
    return 0
}
check_re "logs -f sees new lines" '^saw tick[0-9]+$' follow_sees_new
follow_ends() {
    timeout -k 5 40 docker logs -f "$F" >/dev/null 2>&1 &
    FOLLOW_PID=$!
    sleep 0.5
    dk kill "$F" >/dev/null || return 1
    if wait_until 20 sh -c '! kill -0 "$1" 2>/dev/null' sh "$FOLLOW_PID"; then echo ended; else echo "still following"; fi
    kill "$FOLLOW_PID" 2>/dev/null || true
    wait "$FOLLOW_PID" 2>/dev/null || true
    FOLLOW_PID=""
}
check "logs -f ends when the container dies" "ended" follow_ends
check "rm" "gone" sh -c 'docker rm "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$F"

# ------------------------------------------------------------------ maybe not implemented yet

E="$PFX-exec"
check_re "run -d (exec target)" '^[0-9a-f]{64}$' dk run -d --name "$E" "$IMG" sh -c 'echo made-inside >/tmp/inside; exec sleep 1000'
check "exec" "sleep" dk exec "$E" cat /proc/1/comm
check_exit "exec exit code" 5 dk exec "$E" sh -c 'exit 5'
# The CLI reads the exit code once the output ends: it must be recorded by then.
exec_codes() {
    local i rc codes=""
    for ((i = 0; i < 20; i++)); do
        rc=0
        dk exec "$E" sh -c 'exit 5' || rc=$?
        codes+="$rc "
    done
    echo "$codes"
}
check "exec exit code, 20 times" "$(printf '5 %.0s' {1..20})" exec_codes
check_exit "exec missing executable: 127" 127 dk exec "$E" /no/such/binary
check_exit "exec command not in PATH: 127" 127 dk exec "$E" no-such-command
check_exit "exec non-executable file: 126" 126 dk exec "$E" /etc/passwd
check "exec -u -e -w" "1000 bar /tmp" dk exec -u 1000 -e FOO=bar -w /tmp "$E" sh -c 'echo $(id -u) $FOO $(pwd)'
check "exec -i (stdin piped)" "piped" sh -c 'echo piped | timeout -k 5 "$1" docker exec -i "$2" cat' sh "$CMD_TIMEOUT" "$E"
check_re "exec -it" '(^|'$'\n'')tty 30 100' \
    in_tty "stty rows 30 cols 100; docker exec -it $E sh -c 'test -t 0 && echo tty \$(stty size)'"
check_re "top" 'sleep 1000' dk top "$E"
check "stats --no-stream" "$E" dk stats --no-stream --format '{{.Name}}' "$E"
echo copied-in >"$T/cp-in"
check "cp host -> container" - dk cp "$T/cp-in" "$E:/tmp/cp-in"
check "cp container -> host (copied file)" "copied-in" sh -c 'docker cp "$1:/tmp/cp-in" "$2" && cat "$2"' sh "$E" "$T/cp-back"
check "cp container -> host" "made-inside" sh -c 'docker cp "$1:/tmp/inside" "$2" && cat "$2"' sh "$E" "$T/cp-inside"
check_re "diff" 'A /tmp/inside' dk diff "$E"
check_re "commit" '^sha256:[0-9a-f]{64}$' dk commit "$E" "$PFX-img:v1"
check "run the committed image" "made-inside" dk run --rm --pull never "$PFX-img:v1" cat /tmp/inside
check_re "export" '(^|'$'\n'')(\./)?tmp/inside('$'\n''|$)' sh -c 'docker export "$1" | tar -t' sh "$E"
check "tag" "$PFX/bb:t1" sh -c 'docker tag busybox "$1" && docker images --format "{{.Repository}}:{{.Tag}}" | grep -x "$1"' sh "$PFX/bb:t1"
check "save" - dk save -o "$T/saved.tar" "$PFX/bb:t1"
check_re "rmi" 'Untagged: '"$PFX"'/bb:t1' dk rmi "$PFX/bb:t1"
check "rmi: gone from images" "" sh -c 'docker images --format "{{.Repository}}:{{.Tag}}" | grep -x "$1" || true' sh "$PFX/bb:t1"
check_re "load the saved image" "Loaded image: $PFX/bb:t1" dk load -i "$T/saved.tar"
check "run the reloaded image" "hi" dk run --rm --pull never "$PFX/bb:t1" echo hi
V="$PFX-vol"
check "volume create" "$V" dk volume create "$V"
check_re "volume ls" "(^|"$'\n'")$V("$'\n'"|$)" dk volume ls -q
check "-v name:/data (write)" "" dk run --rm -v "$V:/data" "$IMG" sh -c 'echo in-volume >/data/f'
check "-v name:/data (read back)" "in-volume" dk run --rm -v "$V:/data" "$IMG" cat /data/f
check "volume rm" "$V" dk volume rm "$V"
check "volume create (to prune)" "$V-p" dk volume create "$V-p"
check_re "volume prune -f" 'Total reclaimed space' dk volume prune -af
check_re "system df" 'Images' dk system df
PR="$PFX-prune"
check "container prune -f" "gone" sh -c 'docker run --name "$1" busybox true >/dev/null && docker container prune -f >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$PR"
EV="$PFX-events"
# Records the events of one `docker run --rm` (filtered by its name) as
# "TYPE ACTION" lines in $T/events.
record_events() {
    local since until
    since="$(date +%s)"
    # Image events in the same window, which the container filter must leave out.
    dk tag "$IMG" "$EV-tag" >/dev/null || true
    dk rmi "$EV-tag" >/dev/null || true
    dk run --rm --name "$EV" "$IMG" true >/dev/null || return 1
    until=$(($(date +%s) + 1))
    dk events --since "$since" --until "$until" --filter "container=$EV" \
        --format '{{.Type}} {{.Action}}' >"$T/events" || return 1
    tr '\n' ',' <"$T/events"
}
check_re "events --since --until --filter container=" . record_events
check_re "events: create, start, die, destroy" '^create (attach )?start die destroy $' \
    sh -c 'awk '\''$1 == "container" { printf "%s ", $2 }'\'' "$1"' sh "$T/events"
check "events --filter container= shows only that container" "" \
    sh -c 'grep -v "^container " "$1" | tr "\n" "," || true' sh "$T/events"
check "rm -f (exec target)" "gone" sh -c 'docker rm -f "$1" >/dev/null && { docker inspect "$1" >/dev/null 2>&1 && echo "still exists" || echo gone; }' sh "$E"

# Every container is gone now: so must be every monitor (containers' and execs').
monitors_left() {
    local ids
    ids="$(dk ps -aq)" || return 1
    # shellcheck disable=SC2086
    [[ -z "$ids" ]] || dk rm -f $ids >/dev/null || return 1
    wait_until 20 sh -c '! pgrep -f "berth-monitor $1" >/dev/null' sh "$T" || true
    pgrep -af "berth-monitor $T" | sed "s|$T|\$T|g" | tr '\n' ';' || true
}
check "no berth-monitor left once all containers are removed" "" monitors_left

# ------------------------------------------------------------------ summary

echo
echo "berthd-compat: $passed passed, $failed failed"
if [[ $failed -gt 0 ]]; then
    printf '  failed: %s\n' "${failed_names[@]}"
    exit 1
fi
