#!/usr/bin/env bash
# Container commands are single-quoted on purpose (they expand in the container).
# shellcheck disable=SC2016
#
# Compatibility checks: drive a runc-compatible runtime through the peer engines
# (podman, dockerd, containerd) with the busybox fixture.
#
# Usage: scripts/compat-test.sh [--engines podman,docker,containerd] [RUNTIME]
#
#   RUNTIME   runtime binary (default $BERTH_RUNTIME or target/runtime/berth-runtime).
#             `scripts/compat-test.sh /usr/sbin/runc` validates the harness itself.
#
# Covers, per engine where it applies: run, stdout/stdin, exit codes (also of
# killed containers), --user, env, workdir, interactive tty (run -it and exec -it, driven
# through `script`), detached containers with exec (exit code, user, env, cwd),
# pause/unpause (engine state and the cgroup freezer), memory and pids limits as
# seen inside the container, stop (SIGTERM honoured, SIGKILL after the timeout),
# logs, wait, rm, --read-only, bind mounts (rw and ro), --cap-drop ALL, and
# `ps` through docker top / ctr task ps.
#
# Starts the private dockerd/containerd from scripts/setup-peers.sh and stops them
# (and removes what podman leaves behind) on exit, also on failure. Every
# container, task and snapshot the checks create is named berth-compat-<pid>-*
# and removed on exit.
# Prints one PASS/FAIL line per check; exits 1 when any check fails.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source-path=SCRIPTDIR source=setup-peers.sh
. "$REPO/scripts/setup-peers.sh"

engines="podman,docker,containerd"
runtime=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --engines) engines="${2:?}"; shift 2 ;;
        -h|--help) sed -n '/^# Compatibility checks/,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) runtime="$1"; shift ;;
    esac
done
runtime="${runtime:-$(default_berth_binary)}"
runtime="$(readlink -f "$runtime" 2>/dev/null || echo "$runtime")"
[[ -x "$runtime" ]] || { echo "compat-test: runtime $runtime not found (run make build)" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "compat-test: must run as root" >&2; exit 1; }
[[ -f "$BERTH_FIXTURES/busybox/docker-archive.tar" ]] || "$REPO/tests/fixtures/build-images.sh" busybox

# Seconds one engine command may take before it counts as hung.
CMD_TIMEOUT="${BERTH_COMPAT_TIMEOUT:-60}"
# Prefix of every container/task name this run creates (cleanup removes exactly these).
PFX="berth-compat-$$"

passed=0
failed=0

# tmo CMD...: run CMD with a timeout (shell functions run as they are; they
# time out their own engine commands).
tmo() {
    if [[ "$(type -t "$1")" == function ]]; then
        "$@"
    else
        timeout -k 5 "$CMD_TIMEOUT" "$@"
    fi
}

report_fail() {
    echo "FAIL $1"
    sed 's/^/    /' "$tmp/stderr" | tail -n 10
    failed=$((failed + 1))
}

# check NAME EXPECTED_OUTPUT CMD...: run CMD; pass when it exits 0 and its stdout
# (trimmed) equals EXPECTED_OUTPUT ("-" means: do not compare output).
check() {
    local name="$1" want="$2" got rc=0
    shift 2
    got="$(tmo "$@" 2>"$tmp/stderr")" || rc=$?
    if [[ $rc -eq 0 && ( "$want" == - || "$got" == "$want" ) ]]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        report_fail "$name (exit $rc, stdout: ${got@Q}, want: ${want@Q})"
    fi
}

# check_re NAME REGEX CMD...: like check, but stdout must match the bash REGEX.
check_re() {
    local name="$1" re="$2" got rc=0
    shift 2
    got="$(tmo "$@" 2>"$tmp/stderr")" || rc=$?
    if [[ $rc -eq 0 && "$got" =~ $re ]]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        report_fail "$name (exit $rc, stdout: ${got@Q}, want match: ${re@Q})"
    fi
}

# check_exit NAME CODE CMD...: pass when CMD exits with CODE.
check_exit() {
    local name="$1" want="$2" rc=0
    shift 2
    tmo "$@" >/dev/null 2>"$tmp/stderr" || rc=$?
    if [[ $rc -eq $want ]]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        report_fail "$name (exit $rc, want $want)"
    fi
}

# in_tty CMD...: run CMD on a fresh pseudo-terminal (script(1)); prints its output
# without CRs/NULs and exits with CMD's status. script's own stdin is a pipe that
# stays open (an EOF or NUL typed into the terminal races with the container).
in_tty() {
    local cmd feeder rc=0
    cmd="timeout --foreground -k 5 $CMD_TIMEOUT $(printf '%q ' "$@")"
    rm -f "$tmp/tty-stdin"
    mkfifo "$tmp/tty-stdin"
    sleep "$CMD_TIMEOUT" >"$tmp/tty-stdin" &
    feeder=$!
    script -qec "$cmd" /dev/null <"$tmp/tty-stdin" | tr -d '\r\0' || rc=$?
    kill "$feeder" 2>/dev/null || true
    wait "$feeder" 2>/dev/null || true
    return "$rc"
}

# pipe_in TEXT CMD...: run CMD with TEXT (plus newline) on stdin.
pipe_in() {
    local text="$1"
    shift
    printf '%s\n' "$text" | timeout -k 5 "$CMD_TIMEOUT" "$@"
}

# wait_until SECONDS CMD...: poll CMD (quietly) every 0.1s until it succeeds.
wait_until() {
    local secs="$1" i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        if tmo "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    echo "timed out after ${secs}s waiting for: $*" >&2
    return 1
}

# logs_ready CMD...: wait until CMD prints "ready", then print CMD's output.
logs_ready() {
    wait_until 10 output_is ready "$@" || return 1
    "$@"
}

# output_is WANT CMD...: true when CMD's stdout equals WANT.
output_is() {
    local want="$1"
    shift
    [[ "$("$@" 2>/dev/null)" == "$want" ]]
}

# freezer_state PID: FROZEN or THAWED, read from the cgroup freezer of PID
# (cgroup v1 freezer controller, else the cgroup v2 cgroup.freeze file).
freezer_state() {
    local pid="$1" path v
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || { echo "bad pid ${pid@Q}" >&2; return 1; }
    path="$(awk -F: '$2 ~ /(^|,)freezer(,|$)/ { print $3 }' "/proc/$pid/cgroup")"
    if [[ -n "$path" && -f "/sys/fs/cgroup/freezer$path/freezer.state" ]]; then
        cat "/sys/fs/cgroup/freezer$path/freezer.state"
        return
    fi
    path="$(awk -F: '$1 == 0 { print $3 }' "/proc/$pid/cgroup")"
    v="$(cat "/sys/fs/cgroup$path/cgroup.freeze")" || return 1
    if [[ "$v" == 1 ]]; then echo FROZEN; else echo THAWED; fi
}

# host_limit memory|pids CMD...: the memory or pids limit of the cgroup that the
# PID printed by CMD is in, read on the host (proves the process is in the
# limited cgroup, not only that the limit was written somewhere).
host_limit() {
    local ctl="$1" pid path v1 v2
    shift
    case "$ctl" in
        memory) v1=memory.limit_in_bytes v2=memory.max ;;
        pids) v1=pids.max v2=pids.max ;;
        *) echo "host_limit: unknown controller $ctl" >&2; return 1 ;;
    esac
    pid="$("$@")" || return 1
    [[ "$pid" =~ ^[1-9][0-9]*$ ]] || { echo "bad pid ${pid@Q}" >&2; return 1; }
    path="$(awk -F: -v c="$ctl" '$2 ~ "(^|,)" c "(,|$)" { print $3 }' "/proc/$pid/cgroup")"
    if [[ -n "$path" && -f "/sys/fs/cgroup/$ctl$path/$v1" ]]; then
        cat "/sys/fs/cgroup/$ctl$path/$v1"
        return
    fi
    path="$(awk -F: '$1 == 0 { print $3 }' "/proc/$pid/cgroup")"
    cat "/sys/fs/cgroup$path/$v2"
}

# The limits as the container sees them (cgroup v1 file, else the v2 one).
CG_MEM='cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max'
CG_PIDS='cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max'
# Prints "rw" or "ro" depending on whether / is writable.
RO_PROBE='touch /berth-probe 2>/dev/null && echo rw || echo ro'
# Effective and bounding capability sets.
CAPS='awk '\''$1 == "CapEff:" || $1 == "CapBnd:" { v = v (v == "" ? "" : " ") $2 } END { print v }'\'' /proc/self/status'
# A PID 1 that exits 7 on SIGTERM and says "ready" (and creates /tmp/ready) once
# the trap is set.
TERM_TRAP='trap "exit 7" TERM; touch /tmp/ready; echo ready; while :; do sleep 0.1; done'
# Prints "tty /dev/pts/N" when stdin is a terminal.
TTY_PROBE='test -t 0 && echo tty $(tty) || echo notty'

# ------------------------------------------------------------------ cleanup

cleanup_podman() {
    local ids
    command -v podman >/dev/null || return 0
    ids="$(podman ps -aq --filter "name=^$PFX-" 2>/dev/null || true)"
    [[ -n "$ids" ]] || return 0
    echo "compat-test: removing podman containers: ${ids//$'\n'/ }" >&2
    # shellcheck disable=SC2086
    timeout -k 5 60 podman rm -f -t 0 $ids >/dev/null 2>&1 ||
        echo "compat-test: WARNING: podman rm -f failed for ${ids//$'\n'/ }" >&2
}

cleanup_docker() {
    local ids
    pid_alive "$DOCKER_PIDFILE" || return 0
    ids="$(timeout 20 docker -H "$DOCKER_HOST_URI" ps -aq --filter "name=^$PFX-" 2>/dev/null || true)"
    [[ -n "$ids" ]] || return 0
    echo "compat-test: removing docker containers: ${ids//$'\n'/ }" >&2
    # shellcheck disable=SC2086
    timeout -k 5 60 docker -H "$DOCKER_HOST_URI" rm -f $ids >/dev/null 2>&1 ||
        echo "compat-test: WARNING: docker rm -f failed for ${ids//$'\n'/ }" >&2
}

cleanup_containerd() {
    local c id
    pid_alive "$CONTAINERD_PIDFILE" || return 0
    c=(timeout -k 5 30 ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE")
    for id in $("${c[@]}" containers ls -q 2>/dev/null | grep "^$PFX-" || true); do
        echo "compat-test: removing containerd container $id" >&2
        if "${c[@]}" tasks ls -q 2>/dev/null | grep -qx "$id"; then
            "${c[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
            wait_until 5 output_is STOPPED ctr_status "$id" 2>/dev/null || true
            "${c[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
        fi
        # Also removes the container's snapshot.
        "${c[@]}" containers delete "$id" >/dev/null 2>&1 ||
            echo "compat-test: WARNING: could not delete containerd container $id" >&2
    done
}

on_exit() {
    set +e
    cleanup_podman
    cleanup_docker
    cleanup_containerd
    peers_down
    rm -rf "$tmp"
}

tmp="$(mktemp -d)"
trap on_exit EXIT
trap 'exit 130' INT TERM

echo "compat-test: runtime $runtime"

# A host directory for bind-mount checks: reset_volume gives it fresh content.
vol="$tmp/vol"
reset_volume() {
    rm -rf "$vol"
    mkdir -p "$vol"
    echo host-data >"$vol/in"
}

# ------------------------------------------------------------------ podman

podman_state() { timeout 20 podman inspect -f '{{.State.Status}}' "$1"; }
podman_pid() { timeout 20 podman inspect -f '{{.State.Pid}}' "$1"; }
podman_exited() { timeout 20 podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1"; }

# podman_pause NAME: pause, print engine state and freezer state.
podman_pause() {
    tmo "${P[@]}" pause "$1" >/dev/null || return 1
    echo "$(podman_state "$1") $(freezer_state "$(podman_pid "$1")")"
}
podman_unpause() {
    tmo "${P[@]}" unpause "$1" >/dev/null || return 1
    echo "$(podman_state "$1") $(freezer_state "$(podman_pid "$1")")"
}
# podman_stop NAME TIMEOUT: stop, print "STATUS EXITCODE".
podman_stop() {
    tmo "${P[@]}" stop -t "$2" "$1" >/dev/null || return 1
    podman_exited "$1"
}
podman_rm() {
    tmo "${P[@]}" rm "$@" >/dev/null || return 1
    local n
    for n in "$@"; do
        if podman container exists "$n"; then echo "$n still exists"; return 1; fi
    done
    echo removed
}

if [[ ",$engines," == *,podman,* ]]; then
    configure_podman
    load_podman_busybox
    img=localhost/busybox
    P=(podman --runtime "$runtime")
    p=("${P[@]}" run --rm --network none)
    check "podman: run true" "" "${p[@]}" "$img" true
    check "podman: stdout" "hello" "${p[@]}" "$img" echo hello
    check "podman: stdin (-i)" "piped" pipe_in piped "${p[@]}" -i "$img" cat
    check_exit "podman: exit code" 3 "${p[@]}" "$img" sh -c 'exit 3'
    check "podman: user" "1000:1000" "${p[@]}" --user 1000:1000 "$img" sh -c 'echo $(id -u):$(id -g)'
    check "podman: env" "bar" "${p[@]}" -e FOO=bar "$img" sh -c 'echo $FOO'
    check "podman: workdir" "/tmp" "${p[@]}" -w /tmp "$img" pwd
    check "podman: no tty without -t" "notty" "${p[@]}" "$img" sh -c "$TTY_PROBE"
    check_re "podman: run -it" '^tty /dev/pts/[0-9]+' in_tty "${p[@]}" -it "$img" sh -c "$TTY_PROBE"
    check "podman: memory limit" 67108864 "${p[@]}" --memory 64m "$img" sh -c "$CG_MEM"
    check "podman: pids limit" 42 "${p[@]}" --pids-limit 42 "$img" sh -c "$CG_PIDS"
    check "podman: writable rootfs" rw "${p[@]}" "$img" sh -c "$RO_PROBE"
    check "podman: --read-only" ro "${p[@]}" --read-only "$img" sh -c "$RO_PROBE"
    check "podman: --cap-drop ALL" "0000000000000000 0000000000000000" \
        "${p[@]}" --cap-drop ALL "$img" sh -c "$CAPS"
    reset_volume
    check "podman: volume read+write" "host-data" \
        "${p[@]}" -v "$vol:/data" "$img" sh -c 'cat /data/in && echo container-data >/data/out'
    check "podman: volume write visible on host" "container-data" cat "$vol/out"
    check "podman: volume :ro" "denied" \
        "${p[@]}" -v "$vol:/data:ro" "$img" sh -c 'echo x 2>/dev/null >/data/in && echo written || echo denied'

    # A long-running container: exec, tty exec, pause/unpause, stop by SIGKILL.
    n="$PFX-p-sleep"
    check "podman: run -d" - "${P[@]}" run -d --name "$n" --network none --memory 64m --pids-limit 42 "$img" sleep 300
    check "podman: state running" running podman_state "$n"
    check "podman: memory limit (host cgroup)" 67108864 host_limit memory podman_pid "$n"
    check "podman: pids limit (host cgroup)" 42 host_limit pids podman_pid "$n"
    check "podman: exec" "sleep" "${P[@]}" exec "$n" cat /proc/1/comm
    check_exit "podman: exec exit code" 5 "${P[@]}" exec "$n" sh -c 'exit 5'
    check "podman: exec --user" "1000:1000" "${P[@]}" exec --user 1000:1000 "$n" sh -c 'echo $(id -u):$(id -g)'
    check "podman: exec env+workdir" "bar /tmp" "${P[@]}" exec -e FOO=bar -w /tmp "$n" sh -c 'echo $FOO $(pwd)'
    check "podman: exec stdin (-i)" "piped" pipe_in piped "${P[@]}" exec -i "$n" cat
    check_re "podman: exec -it" '^tty /dev/pts/[0-9]+' in_tty "${P[@]}" exec -it "$n" sh -c "$TTY_PROBE"
    check "podman: pause" "paused FROZEN" podman_pause "$n"
    check "podman: unpause" "running THAWED" podman_unpause "$n"
    check "podman: exec after unpause" "ok" "${P[@]}" exec "$n" echo ok
    check "podman: stop (SIGKILL after timeout)" "exited 137" podman_stop "$n" 1

    # A container that handles SIGTERM: stop must deliver it.
    t="$PFX-p-term"
    check "podman: run -d (TERM trap)" - "${P[@]}" run -d --name "$t" --network none "$img" sh -c "$TERM_TRAP"
    check "podman: logs" "ready" logs_ready podman logs "$t"
    check "podman: stop (SIGTERM)" "exited 7" podman_stop "$t" 10

    # Exit status, logs (stdout and stderr apart) and wait of a finished container.
    l="$PFX-p-logs"
    check "podman: run -d (logs)" - "${P[@]}" run -d --name "$l" --network none "$img" sh -c 'echo out; echo err >&2; exit 2'
    check "podman: wait" "2" "${P[@]}" wait "$l"
    check "podman: logs stdout" "out" podman logs "$l"
    check "podman: logs stderr" "err" sh -c 'podman logs "$1" 2>&1 >/dev/null' sh "$l"
    check "podman: rm" "removed" podman_rm "$n" "$t" "$l"
    cleanup_podman
fi

# ------------------------------------------------------------------ docker

dk() { timeout -k 5 "$CMD_TIMEOUT" docker -H "$DOCKER_HOST_URI" "$@"; }
docker_state() { dk inspect -f '{{.State.Status}}' "$1"; }
docker_pid() { dk inspect -f '{{.State.Pid}}' "$1"; }
docker_pause() {
    dk pause "$1" >/dev/null || return 1
    echo "$(docker_state "$1") $(freezer_state "$(docker_pid "$1")")"
}
docker_unpause() {
    dk unpause "$1" >/dev/null || return 1
    echo "$(docker_state "$1") $(freezer_state "$(docker_pid "$1")")"
}
docker_stop() {
    dk stop -t "$2" "$1" >/dev/null || return 1
    dk inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$1"
}
# docker_top NAME: how many processes `docker top` (runtime ps) lists with "sleep 300".
docker_top() {
    local out
    out="$(dk top "$1")" || return 1
    awk 'NR > 1 && /sleep 300/' <<<"$out" | wc -l
}
docker_rm() {
    dk rm "$@" >/dev/null || return 1
    local n
    for n in "$@"; do
        if dk container inspect "$n" >/dev/null 2>&1; then echo "$n still exists"; return 1; fi
    done
    echo removed
}

if [[ ",$engines," == *,docker,* ]]; then
    start_dockerd "$runtime"
    docker_cli load -q -i "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null
    img=busybox
    D=(docker -H "$DOCKER_HOST_URI")
    d=("${D[@]}" run --rm --network none --runtime berth)
    check "docker: run true" "" "${d[@]}" "$img" true
    check "docker: stdout" "hello" "${d[@]}" "$img" echo hello
    check "docker: stdin (-i)" "piped" pipe_in piped "${d[@]}" -i "$img" cat
    check_exit "docker: exit code" 3 "${d[@]}" "$img" sh -c 'exit 3'
    check "docker: user" "1000:1000" "${d[@]}" --user 1000:1000 "$img" sh -c 'echo $(id -u):$(id -g)'
    check "docker: env" "bar" "${d[@]}" -e FOO=bar "$img" sh -c 'echo $FOO'
    check "docker: workdir" "/tmp" "${d[@]}" -w /tmp "$img" pwd
    check "docker: no tty without -t" "notty" "${d[@]}" "$img" sh -c "$TTY_PROBE"
    check_re "docker: run -it" '^tty /dev/pts/[0-9]+' in_tty "${d[@]}" -it "$img" sh -c "$TTY_PROBE"
    check "docker: memory limit" 67108864 "${d[@]}" --memory 64m "$img" sh -c "$CG_MEM"
    check "docker: pids limit" 42 "${d[@]}" --pids-limit 42 "$img" sh -c "$CG_PIDS"
    check "docker: writable rootfs" rw "${d[@]}" "$img" sh -c "$RO_PROBE"
    check "docker: --read-only" ro "${d[@]}" --read-only "$img" sh -c "$RO_PROBE"
    check "docker: default caps" "00000000a80425fb 00000000a80425fb" "${d[@]}" "$img" sh -c "$CAPS"
    check "docker: --cap-drop ALL" "0000000000000000 0000000000000000" \
        "${d[@]}" --cap-drop ALL "$img" sh -c "$CAPS"
    reset_volume
    check "docker: volume read+write" "host-data" \
        "${d[@]}" -v "$vol:/data" "$img" sh -c 'cat /data/in && echo container-data >/data/out'
    check "docker: volume write visible on host" "container-data" cat "$vol/out"
    check "docker: volume :ro" "denied" \
        "${d[@]}" -v "$vol:/data:ro" "$img" sh -c 'echo x 2>/dev/null >/data/in && echo written || echo denied'

    n="$PFX-d-sleep"
    check "docker: run -d" - "${D[@]}" run -d --name "$n" --network none --runtime berth --memory 64m --pids-limit 42 "$img" sleep 300
    check "docker: state running" running docker_state "$n"
    check "docker: memory limit (host cgroup)" 67108864 host_limit memory docker_pid "$n"
    check "docker: pids limit (host cgroup)" 42 host_limit pids docker_pid "$n"
    check "docker: top (runtime ps)" 1 docker_top "$n"
    check "docker: exec" "sleep" "${D[@]}" exec "$n" cat /proc/1/comm
    check_exit "docker: exec exit code" 5 "${D[@]}" exec "$n" sh -c 'exit 5'
    check "docker: exec --user" "1000:1000" "${D[@]}" exec --user 1000:1000 "$n" sh -c 'echo $(id -u):$(id -g)'
    check "docker: exec env+workdir" "bar /tmp" "${D[@]}" exec -e FOO=bar -w /tmp "$n" sh -c 'echo $FOO $(pwd)'
    check "docker: exec stdin (-i)" "piped" pipe_in piped "${D[@]}" exec -i "$n" cat
    check_re "docker: exec -it" '^tty /dev/pts/[0-9]+' in_tty "${D[@]}" exec -it "$n" sh -c "$TTY_PROBE"
    check "docker: pause" "paused FROZEN" docker_pause "$n"
    check "docker: unpause" "running THAWED" docker_unpause "$n"
    check "docker: exec after unpause" "ok" "${D[@]}" exec "$n" echo ok
    check "docker: stop (SIGKILL after timeout)" "exited 137" docker_stop "$n" 1

    t="$PFX-d-term"
    check "docker: run -d (TERM trap)" - "${D[@]}" run -d --name "$t" --network none --runtime berth "$img" sh -c "$TERM_TRAP"
    check "docker: logs" "ready" logs_ready dk logs "$t"
    check "docker: stop (SIGTERM)" "exited 7" docker_stop "$t" 10

    l="$PFX-d-logs"
    check "docker: run -d (logs)" - "${D[@]}" run -d --name "$l" --network none --runtime berth "$img" sh -c 'echo out; echo err >&2; exit 2'
    check "docker: wait" "2" "${D[@]}" wait "$l"
    check "docker: logs stdout" "out" dk logs "$l"
    check "docker: logs stderr" "err" sh -c 'docker -H "$1" logs "$2" 2>&1 >/dev/null' sh "$DOCKER_HOST_URI" "$l"
    check "docker: rm" "removed" docker_rm "$n" "$t" "$l"
    cleanup_docker
    stop_dockerd
fi

# ------------------------------------------------------------------ containerd

cc() { timeout -k 5 "$CMD_TIMEOUT" ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE" "$@"; }
ctr_status() { cc tasks ls | awk -v id="$1" '$1 == id { print $3 }'; }
ctr_pid() { cc tasks ls | awk -v id="$1" '$1 == id { print $2 }'; }
ctr_pause() {
    cc tasks pause "$1" || return 1
    echo "$(ctr_status "$1") $(freezer_state "$(ctr_pid "$1")")"
}
ctr_resume() {
    cc tasks resume "$1" || return 1
    echo "$(ctr_status "$1") $(freezer_state "$(ctr_pid "$1")")"
}
# ctr_ps NAME: "<number of pids> <init listed|init missing>" from `ctr task ps` (runtime ps).
ctr_ps() {
    local out pid
    pid="$(ctr_pid "$1")"
    out="$(cc tasks ps "$1")" || return 1
    out="$(awk 'NR > 1 { print $1 }' <<<"$out")"
    printf '%s ' "$(grep -c . <<<"$out")"
    if grep -qx "$pid" <<<"$out"; then echo "init listed"; else echo "init missing"; fi
}
# ctr_kill NAME SIGNAL: signal the task, wait until it stopped, delete it and
# print the status and exit code ctr reports ("STOPPED exit code N").
ctr_kill() {
    local out
    cc tasks kill -s "$2" "$1" || return 1
    wait_until 10 output_is STOPPED ctr_status "$1" || return 1
    echo -n "$(ctr_status "$1") "
    out="$(cc tasks delete "$1" 2>&1)" || { echo "$out" >&2; return 1; }
    grep -o 'exit code [0-9]*' <<<"$out" || echo "exit code 0"
}
ctr_rm() {
    cc containers delete "$@" || return 1
    local n
    for n in "$@"; do
        if cc containers ls -q | grep -qx "$n"; then echo "$n still exists"; return 1; fi
        if cc snapshots ls | awk 'NR > 1 { print $1 }' | grep -qx "$n"; then echo "snapshot $n still exists"; return 1; fi
    done
    echo removed
}

if [[ ",$engines," == *,containerd,* ]]; then
    start_containerd
    c=(ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE")
    "${c[@]}" images import "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null
    img=docker.io/library/busybox:latest
    rt=(--runc-binary "$runtime" --runc-root "$CONTAINERD_RUNC_ROOT")
    r=("${c[@]}" run --rm "${rt[@]}")
    check "containerd: run true" "" "${r[@]}" "$img" "$PFX-c-true" true
    check "containerd: stdout" "hello" "${r[@]}" "$img" "$PFX-c-stdout" echo hello
    check_exit "containerd: exit code" 3 "${r[@]}" "$img" "$PFX-c-exit" sh -c 'exit 3'
    check "containerd: env+cwd" "bar /tmp" "${r[@]}" --env FOO=bar --cwd /tmp "$img" "$PFX-c-env" sh -c 'echo $FOO $(pwd)'
    check_re "containerd: run --tty" '^tty /dev/pts/[0-9]+' in_tty "${r[@]}" --tty "$img" "$PFX-c-tty" sh -c "$TTY_PROBE"
    check "containerd: --read-only" ro "${r[@]}" --read-only "$img" "$PFX-c-ro" sh -c "$RO_PROBE"
    reset_volume
    check "containerd: bind mount read+write" "host-data" \
        "${r[@]}" --mount "type=bind,src=$vol,dst=/data,options=rbind:rw" "$img" "$PFX-c-bind" \
        sh -c 'cat /data/in && echo container-data >/data/out'
    check "containerd: bind mount write visible on host" "container-data" cat "$vol/out"

    n="$PFX-c-sleep"
    check "containerd: run -d" "" "${c[@]}" run -d "${rt[@]}" --memory-limit 67108864 "$img" "$n" sleep 300
    check "containerd: task RUNNING" RUNNING ctr_status "$n"
    # ctr's default spec has no /sys/fs/cgroup mount: read the limit on the host.
    check "containerd: memory limit (host cgroup)" 67108864 host_limit memory ctr_pid "$n"
    check "containerd: task exec" "sleep" "${c[@]}" tasks exec --exec-id e1 "$n" cat /proc/1/comm
    check_exit "containerd: task exec exit code" 4 "${c[@]}" tasks exec --exec-id e2 "$n" sh -c 'exit 4'
    check "containerd: task exec --user --cwd" "1000 /tmp" \
        "${c[@]}" tasks exec --exec-id e3 --user 1000 --cwd /tmp "$n" sh -c 'echo $(id -u) $(pwd)'
    check_re "containerd: task exec --tty" '^tty /dev/pts/[0-9]+' \
        in_tty "${c[@]}" tasks exec --tty --exec-id e4 "$n" sh -c "$TTY_PROBE"
    check "containerd: task ps" "1 init listed" ctr_ps "$n"
    check "containerd: task exec -d" "" "${c[@]}" tasks exec -d --exec-id e5 "$n" sleep 300
    check "containerd: task ps (with exec)" "2 init listed" ctr_ps "$n"
    check "containerd: task pause" "PAUSED FROZEN" ctr_pause "$n"
    check "containerd: task resume" "RUNNING THAWED" ctr_resume "$n"
    check "containerd: exec after resume" "ok" "${c[@]}" tasks exec --exec-id e6 "$n" echo ok
    check "containerd: task kill SIGKILL + delete" "STOPPED exit code 137" ctr_kill "$n" SIGKILL

    t="$PFX-c-term"
    check "containerd: run -d (TERM trap)" - "${c[@]}" run -d "${rt[@]}" "$img" "$t" sh -c "$TERM_TRAP"
    check "containerd: TERM trap ready" "" wait_until 10 "${c[@]}" tasks exec --exec-id w1 "$t" test -f /tmp/ready
    check "containerd: task kill (SIGTERM) + delete" "STOPPED exit code 7" ctr_kill "$t" SIGTERM
    check "containerd: container rm (with snapshot)" "removed" ctr_rm "$n" "$t"
    cleanup_containerd
    stop_containerd
fi

echo "compat-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
