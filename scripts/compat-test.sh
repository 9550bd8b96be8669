#!/usr/bin/env bash
# Container commands are single-quoted on purpose (they expand in the container).
# shellcheck disable=SC2016
#
# Compatibility checks: drive a runc-compatible runtime through the peer engines
# (podman, dockerd, containerd) with the busybox fixture.
#
# Usage: scripts/compat-test.sh [--engines podman,docker,containerd] [RUNTIME]
#
#   RUNTIME   runtime binary (default $BERTH_RUNTIME or target/release/berth-runtime).
#             `scripts/compat-test.sh /usr/sbin/runc` validates the harness itself.
#
# Starts the private dockerd/containerd from scripts/setup-peers.sh and stops them
# (and removes what podman leaves behind) on exit, also on failure.
# Prints one PASS/FAIL line per check; exits 1 when any check fails.
#
# TODO(lead): extend the case lists below (exec, kill, pause/resume, ps, events,
# hooks, rlimits, users, cgroup limits ...) as berth-runtime gains features.
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

passed=0
failed=0

# check NAME EXPECTED_OUTPUT CMD...: run CMD; pass when it exits 0 and its stdout
# (trimmed) equals EXPECTED_OUTPUT ("-" means: do not compare output).
check() {
    local name="$1" want="$2" got rc=0
    shift 2
    got="$("$@" 2>"$tmp/stderr")" || rc=$?
    if [[ $rc -eq 0 && ( "$want" == - || "$got" == "$want" ) ]]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name (exit $rc, stdout: ${got@Q}, want: ${want@Q})"
        sed 's/^/    /' "$tmp/stderr" | tail -n 10
        failed=$((failed + 1))
    fi
}

# check_exit NAME CODE CMD...: pass when CMD exits with CODE.
check_exit() {
    local name="$1" want="$2" rc=0
    shift 2
    "$@" >/dev/null 2>"$tmp/stderr" || rc=$?
    if [[ $rc -eq $want ]]; then
        echo "PASS $name"
        passed=$((passed + 1))
    else
        echo "FAIL $name (exit $rc, want $want)"
        sed 's/^/    /' "$tmp/stderr" | tail -n 10
        failed=$((failed + 1))
    fi
}

tmp="$(mktemp -d)"
trap 'peers_down; rm -rf "$tmp"' EXIT

echo "compat-test: runtime $runtime"

if [[ ",$engines," == *,podman,* ]]; then
    configure_podman
    load_podman_busybox
    p=(podman --runtime "$runtime" run --rm --network none)
    check "podman: run true" "" "${p[@]}" localhost/busybox true
    check "podman: stdout" "hello" "${p[@]}" localhost/busybox echo hello
    check_exit "podman: exit code" 3 "${p[@]}" localhost/busybox sh -c 'exit 3'
    check "podman: user" "1000:1000" "${p[@]}" --user 1000:1000 localhost/busybox sh -c 'echo $(id -u):$(id -g)'
    check "podman: env" "bar" "${p[@]}" -e FOO=bar localhost/busybox sh -c 'echo $FOO'
fi

if [[ ",$engines," == *,docker,* ]]; then
    start_dockerd "$runtime"
    docker_cli load -q -i "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null
    d=(docker -H "$DOCKER_HOST_URI" run --rm --network none --runtime berth)
    check "docker: run true" "" "${d[@]}" busybox true
    check "docker: stdout" "hello" "${d[@]}" busybox echo hello
    check_exit "docker: exit code" 3 "${d[@]}" busybox sh -c 'exit 3'
    check "docker: user" "1000:1000" "${d[@]}" --user 1000:1000 busybox sh -c 'echo $(id -u):$(id -g)'
    check "docker: workdir" "/tmp" "${d[@]}" -w /tmp busybox pwd
    stop_dockerd
fi

if [[ ",$engines," == *,containerd,* ]]; then
    start_containerd
    c=(ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE")
    "${c[@]}" images import "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null
    r=("${c[@]}" run --rm --runc-binary "$runtime" --runc-root "$CONTAINERD_RUNC_ROOT"
        docker.io/library/busybox:latest)
    check "containerd: run true" "" "${r[@]}" "berth-compat-$$-1" true
    check "containerd: stdout" "hello" "${r[@]}" "berth-compat-$$-2" echo hello
    check_exit "containerd: exit code" 3 "${r[@]}" "berth-compat-$$-3" sh -c 'exit 3'
    stop_containerd
fi

echo "compat-test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
