#!/usr/bin/env bash
# Configure, start and stop the peer container engines (podman, containerd,
# dockerd) used by Berth's compatibility tests and benchmarks.
#
# Usage: scripts/setup-peers.sh <command> [options]
#
#   configure [--berth PATH]   write podman and containerd configuration (idempotent)
#   load-podman                load the busybox fixture into podman's storage
#   start containerd           start the CI containerd (socket /run/berth-ci/containerd.sock)
#   start dockerd [--berth PATH]
#                              start the CI dockerd (socket /run/berth-ci/docker.sock);
#                              PATH is registered as runtime "berth" (default
#                              $BERTH_RUNTIME or target/runtime/berth-runtime)
#   stop containerd|dockerd|all
#   status                     show what is configured and running
#   verify [--runtime PATH]    configure, start every peer, run the busybox fixture
#                              through it with runc (or PATH), stop everything
#   down                       stop all daemons and remove transient podman mounts
#                              and empty podman cgroups (state and images are kept)
#   purge                      down + delete /var/lib/berth-ci
#
# The script can also be sourced (`. scripts/setup-peers.sh`) to get the
# functions start_containerd, stop_containerd, start_dockerd, stop_dockerd,
# configure_podman, load_podman_busybox, peers_down and the variables below.
#
# Nothing here touches the machine's default engines: containerd and dockerd get
# their own config, sockets, state and data directories; podman only gets a
# drop-in under /etc/containers/containers.conf.d/ (and /etc/containers/storage.conf
# when the machine has none).

BERTH_REPO="${BERTH_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
BERTH_FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
BERTH_CI_RUN=/run/berth-ci
BERTH_CI_LIB=/var/lib/berth-ci
BERTH_CI_LOG="$BERTH_CI_LIB/log"

PODMAN_DROPIN=/etc/containers/containers.conf.d/berth-ci.conf
PODMAN_STORAGE_CONF=/etc/containers/storage.conf
BERTH_CI_MARKER="# Managed by berth scripts/setup-peers.sh"

CONTAINERD_CONFIG=/etc/containerd/berth-ci.toml
CONTAINERD_SOCK="$BERTH_CI_RUN/containerd.sock"
CONTAINERD_PIDFILE="$BERTH_CI_RUN/containerd.pid"
CONTAINERD_ROOT="$BERTH_CI_LIB/containerd"
CONTAINERD_STATE="$BERTH_CI_RUN/containerd"
# containerd namespace used by our tests (keeps objects apart from anything else).
CONTAINERD_NAMESPACE="berth-ci"
# State root the runc v2 shim passes to the runtime (`ctr run --runc-root`); the
# shim's default is /run/containerd/runc/<namespace>.
CONTAINERD_RUNC_ROOT="$BERTH_CI_RUN/containerd-runc"

DOCKER_SOCK="$BERTH_CI_RUN/docker.sock"
DOCKER_HOST_URI="unix://$DOCKER_SOCK"
DOCKER_PIDFILE="$BERTH_CI_RUN/docker.pid"
DOCKER_DATA_ROOT="$BERTH_CI_LIB/docker"
DOCKER_EXEC_ROOT="$BERTH_CI_RUN/docker"
DOCKER_CONFIG_FILE="$BERTH_CI_LIB/docker-daemon.json"

peers_log() { printf '[peers %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# ------------------------------------------------------------------ helpers

# min_limit WANTED HARD: the smaller of two rlimit values ("unlimited" allowed).
min_limit() {
    if [[ "$2" == unlimited ]] || (($1 <= $2)); then echo "$1"; else echo "$2"; fi
}

# pid_alive PIDFILE: true when PIDFILE names a running process.
pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for DESCRIPTION SECONDS CMD...: poll CMD every 0.2s until it succeeds.
wait_for() {
    local what="$1" secs="$2" i
    shift 2
    for ((i = 0; i < secs * 5; i++)); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    peers_log "timed out after ${secs}s waiting for $what"
    return 1
}

# stop_pidfile NAME PIDFILE: SIGTERM the process, wait up to 30s, then SIGKILL.
stop_pidfile() {
    local name="$1" pidfile="$2" pid i
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        return 0
    fi
    pid="$(cat "$pidfile")"
    peers_log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        peers_log "$name did not exit after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
}

# overlay_works DIR: can this kernel mount overlayfs with upper/work dirs on DIR's filesystem?
overlay_works() {
    local base="$1" t ok=1
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || true
    grep -qw overlay /proc/filesystems || return 1
    mkdir -p "$base"
    t="$(mktemp -d "$base/.overlay-probe.XXXXXX")"
    mkdir "$t/lower" "$t/upper" "$t/work" "$t/merged"
    echo probe >"$t/lower/f"
    if mount -t overlay overlay -o "lowerdir=$t/lower,upperdir=$t/upper,workdir=$t/work" "$t/merged" 2>/dev/null; then
        echo x >"$t/merged/f" 2>/dev/null && ok=0
        umount "$t/merged"
    fi
    rm -rf --one-file-system "$t"
    return "$ok"
}

# crun_works: can crun run the busybox fixture with the host's cgroup layout?
# (crun 1.8 refuses hybrid cgroup v1/v2 hosts whose cgroup2 tree has controllers.)
crun_works() {
    local bundle="$BERTH_FIXTURES/busybox/bundle" tmp ok=1
    command -v crun >/dev/null || return 1
    [[ -f "$bundle/config.json" ]] || return 1
    tmp="$(mktemp -d /run/berth-ci-crun-probe.XXXXXX)"
    jq '.process.args = ["true"]' "$bundle/config.json" >"$tmp/config.json"
    ln -s "$bundle/rootfs" "$tmp/rootfs"
    if (cd "$tmp" && crun --root "$tmp/state" run "berth-test-crun-probe-$$") >"$tmp/out" 2>&1; then
        ok=0
    else
        peers_log "crun probe failed: $(tr '\n' ' ' <"$tmp/out")"
    fi
    rm -rf "$tmp"
    return "$ok"
}

# remove_empty_cgroups NAME: rmdir /sys/fs/cgroup/*/NAME (and /sys/fs/cgroup/NAME
# on cgroup v2) depth-first. rmdir only succeeds on cgroups without processes or
# children, so cgroups that are in use stay untouched.
remove_empty_cgroups() {
    local name="$1" d
    [[ -n "$name" && "$name" != */* ]] || return 0
    for d in /sys/fs/cgroup/"$name" /sys/fs/cgroup/*/"$name"; do
        [[ -d "$d" ]] || continue
        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

# write_if_changed FILE: replace FILE with stdin when the content differs.
write_if_changed() {
    local file="$1" tmp
    tmp="$(mktemp "$file.XXXXXX")"
    cat >"$tmp"
    if [[ -f "$file" ]] && cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
        return 0
    fi
    chmod 0644 "$tmp"
    mv "$tmp" "$file"
    peers_log "wrote $file"
}

default_berth_binary() {
    echo "${BERTH_RUNTIME:-$BERTH_REPO/target/runtime/berth-runtime}"
}

# ------------------------------------------------------------------ podman

# configure_podman [BERTH_PATH]: drop-in with ulimits within our hard limits,
# cgroupfs, file events, runc (or crun when it works), optional "berth" runtime.
configure_podman() {
    local berth="${1:-$(default_berth_binary)}" nofile nproc runtime driver
    nofile="$(min_limit 20000 "$(ulimit -Hn)")"
    nproc="$(min_limit 32768 "$(ulimit -Hu)")"
    runtime=runc
    if [[ "${BERTH_CI_PODMAN_RUNTIME:-}" != "" ]]; then
        runtime="$BERTH_CI_PODMAN_RUNTIME"
    elif crun_works; then
        runtime=crun
    fi
    mkdir -p "$(dirname "$PODMAN_DROPIN")"
    write_if_changed "$PODMAN_DROPIN" <<EOF
$BERTH_CI_MARKER
# Peer configuration for Berth compatibility tests. Containers in tests use
# --network none, so no CNI/netavark network has to exist.
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "$runtime"

# \`podman --runtime berth\` (the path need not exist until used).
[engine.runtimes]
berth = ["$berth"]
EOF
    peers_log "podman: runtime $runtime, ulimits nofile=$nofile nproc=$nproc, cgroupfs, file events"

    # Storage: only write storage.conf when the machine has none (or it is ours).
    if [[ -f "$PODMAN_STORAGE_CONF" ]] && ! grep -qF "$BERTH_CI_MARKER" "$PODMAN_STORAGE_CONF"; then
        peers_log "podman: keeping existing $PODMAN_STORAGE_CONF (not managed by berth)"
        return 0
    fi
    driver="${BERTH_CI_PODMAN_STORAGE:-}"
    if [[ -z "$driver" && -f "$PODMAN_STORAGE_CONF" ]]; then
        # Keep the driver chosen before: podman refuses to switch drivers on existing storage.
        driver="$(sed -n 's/^driver = "\(.*\)"$/\1/p' "$PODMAN_STORAGE_CONF")"
    fi
    if [[ -z "$driver" ]]; then
        if overlay_works /var/lib/containers/storage; then driver=overlay; else driver=vfs; fi
    fi
    write_if_changed "$PODMAN_STORAGE_CONF" <<EOF
$BERTH_CI_MARKER
[storage]
driver = "$driver"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
EOF
    peers_log "podman: storage driver $driver"
}

# load_podman_busybox: copy the busybox fixture into podman as localhost/busybox:latest.
load_podman_busybox() {
    skopeo --insecure-policy copy --quiet "oci:$BERTH_FIXTURES/busybox/oci:latest" \
        containers-storage:localhost/busybox:latest
    peers_log "podman: loaded localhost/busybox:latest"
}

# podman_cleanup: remove what podman leaves behind between runs (only when it has
# no containers): the private bind mount of its overlay home, empty libpod_parent cgroups.
podman_cleanup() {
    local home=/var/lib/containers/storage/overlay d
    command -v podman >/dev/null || return 0
    if [[ -n "$(podman ps -aq 2>/dev/null)" ]]; then
        peers_log "podman: containers exist; leaving its mounts alone"
        return 0
    fi
    if mountpoint -q "$home"; then
        umount "$home" && peers_log "podman: unmounted $home"
    fi
    remove_empty_cgroups libpod_parent
}

# ------------------------------------------------------------------ containerd

configure_containerd() {
    mkdir -p "$(dirname "$CONTAINERD_CONFIG")"
    write_if_changed "$CONTAINERD_CONFIG" <<EOF
$BERTH_CI_MARKER
# Private containerd for Berth CI; started by start_containerd, never by init.
version = 2
root = "$CONTAINERD_ROOT"
state = "$CONTAINERD_STATE"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CONTAINERD_ROOT/opt"
EOF
}

containerd_ready() { ctr -a "$CONTAINERD_SOCK" version; }

# start_containerd: start the private containerd in the background (idempotent).
start_containerd() {
    local pid
    configure_containerd
    if pid_alive "$CONTAINERD_PIDFILE" && containerd_ready >/dev/null 2>&1; then
        peers_log "containerd already running (pid $(cat "$CONTAINERD_PIDFILE"))"
        return 0
    fi
    stop_pidfile containerd "$CONTAINERD_PIDFILE"
    mkdir -p "$BERTH_CI_RUN" "$BERTH_CI_LOG" "$CONTAINERD_ROOT"
    rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc"
    setsid containerd --config "$CONTAINERD_CONFIG" </dev/null >>"$BERTH_CI_LOG/containerd.log" 2>&1 &
    pid=$!
    echo "$pid" >"$CONTAINERD_PIDFILE"
    if ! wait_for "containerd on $CONTAINERD_SOCK" 30 containerd_ready; then
        tail -n 20 "$BERTH_CI_LOG/containerd.log" >&2 || true
        stop_pidfile containerd "$CONTAINERD_PIDFILE"
        return 1
    fi
    peers_log "containerd started (pid $pid, socket $CONTAINERD_SOCK, log $BERTH_CI_LOG/containerd.log)"
}

# stop_containerd: kill our namespace's tasks, then stop the daemon.
stop_containerd() {
    local ns task
    if pid_alive "$CONTAINERD_PIDFILE" && containerd_ready >/dev/null 2>&1; then
        for ns in $(ctr -a "$CONTAINERD_SOCK" namespaces ls -q 2>/dev/null); do
            for task in $(ctr -a "$CONTAINERD_SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
                peers_log "containerd: killing leftover task $ns/$task"
                ctr -a "$CONTAINERD_SOCK" -n "$ns" tasks kill -s SIGKILL "$task" >/dev/null 2>&1 || true
                sleep 0.5
                ctr -a "$CONTAINERD_SOCK" -n "$ns" tasks rm -f "$task" >/dev/null 2>&1 || true
            done
        done
    fi
    stop_pidfile containerd "$CONTAINERD_PIDFILE"
    rm -f "$CONTAINERD_SOCK" "$CONTAINERD_SOCK.ttrpc"
    # ctr puts containers in /<namespace>/<id> cgroups.
    remove_empty_cgroups "$CONTAINERD_NAMESPACE"
    # containerd 1.6 keeps shim sockets (s/) and ctr's stdio fifos (fifo/) under
    # /run/containerd whatever its state dir; remove them when empty and no other
    # containerd uses that directory.
    if [[ ! -S /run/containerd/containerd.sock ]]; then
        rmdir /run/containerd/runc/"$CONTAINERD_NAMESPACE" /run/containerd/runc \
            /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null || true
    fi
}

# ------------------------------------------------------------------ dockerd

docker_cli() { docker -H "$DOCKER_HOST_URI" "$@"; }
dockerd_ready() { docker_cli version --format '{{.Server.Version}}'; }

# start_dockerd [BERTH_PATH]: start the private dockerd with runtime "berth" (idempotent).
start_dockerd() {
    local berth="${1:-$(default_berth_binary)}" driver pid
    if pid_alive "$DOCKER_PIDFILE" && dockerd_ready >/dev/null 2>&1; then
        peers_log "dockerd already running (pid $(cat "$DOCKER_PIDFILE"))"
        return 0
    fi
    stop_pidfile dockerd "$DOCKER_PIDFILE"
    mkdir -p "$BERTH_CI_RUN" "$BERTH_CI_LOG" "$DOCKER_DATA_ROOT" "$DOCKER_EXEC_ROOT"
    [[ -x "$berth" ]] || peers_log "dockerd: note: runtime berth=$berth does not exist (yet)"
    driver="${BERTH_CI_DOCKER_STORAGE:-}"
    if [[ -z "$driver" ]]; then
        if overlay_works "$DOCKER_DATA_ROOT"; then driver=overlay2; else driver=vfs; fi
    fi
    # Our own (empty) config file, so /etc/docker/daemon.json cannot interfere.
    [[ -f "$DOCKER_CONFIG_FILE" ]] || echo '{}' >"$DOCKER_CONFIG_FILE"
    rm -f "$DOCKER_SOCK"
    setsid dockerd \
        --host "$DOCKER_HOST_URI" \
        --config-file "$DOCKER_CONFIG_FILE" \
        --data-root "$DOCKER_DATA_ROOT" \
        --exec-root "$DOCKER_EXEC_ROOT" \
        --pidfile "$DOCKER_PIDFILE" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --storage-driver "$driver" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --add-runtime "berth=$berth" \
        </dev/null >>"$BERTH_CI_LOG/dockerd.log" 2>&1 &
    pid=$!
    if ! wait_for "dockerd on $DOCKER_SOCK" 60 dockerd_ready; then
        tail -n 30 "$BERTH_CI_LOG/dockerd.log" >&2 || true
        echo "$pid" >"$DOCKER_PIDFILE"
        stop_pidfile dockerd "$DOCKER_PIDFILE"
        return 1
    fi
    peers_log "dockerd started (pid $pid, socket $DOCKER_SOCK, storage $driver, runtime berth=$berth, log $BERTH_CI_LOG/dockerd.log)"
}

# stop_dockerd: remove running containers, then stop dockerd (and its managed containerd).
stop_dockerd() {
    local ids
    if pid_alive "$DOCKER_PIDFILE" && dockerd_ready >/dev/null 2>&1; then
        ids="$(docker_cli ps -q 2>/dev/null || true)"
        if [[ -n "$ids" ]]; then
            peers_log "dockerd: removing running containers: ${ids//$'\n'/ }"
            # shellcheck disable=SC2086
            docker_cli rm -f $ids >/dev/null 2>&1 || true
        fi
    fi
    stop_pidfile dockerd "$DOCKER_PIDFILE"
    rm -f "$DOCKER_SOCK"
    # dockerd with cgroupfs puts containers in /docker/<id>; remove it once empty.
    remove_empty_cgroups docker
}

# ------------------------------------------------------------------ whole set

configure_peers() {
    local berth="${1:-}"
    configure_podman "$berth"
    configure_containerd
}

peers_down() {
    stop_dockerd
    stop_containerd
    podman_cleanup
    local m
    # Anything still mounted under our private directories (should be nothing).
    while read -r m; do
        peers_log "unmounting leftover $m"
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v a="$BERTH_CI_RUN/" -v b="$BERTH_CI_LIB/" \
        'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/self/mounts | sort -r)
    # Runtime state of the stopped daemons (tmpfs); persistent data stays in $BERTH_CI_LIB.
    if ! awk -v a="$BERTH_CI_RUN/" 'index($2, a) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
        rm -rf --one-file-system "$BERTH_CI_RUN"
    fi
}

peers_status() {
    echo "podman drop-in: $([[ -f $PODMAN_DROPIN ]] && echo "$PODMAN_DROPIN" || echo missing)"
    if command -v podman >/dev/null; then
        podman info --format 'podman: runtime={{.Host.OCIRuntime.Name}} cgroups={{.Host.CgroupsVersion}} cgroup_manager={{.Host.CgroupManager}} events={{.Host.EventLogger}} storage={{.Store.GraphDriverName}} network={{.Host.NetworkBackend}}' 2>/dev/null || echo "podman: info failed"
    fi
    if pid_alive "$CONTAINERD_PIDFILE"; then
        echo "containerd: running pid $(cat "$CONTAINERD_PIDFILE") socket $CONTAINERD_SOCK"
    else
        echo "containerd: stopped (config $CONTAINERD_CONFIG)"
    fi
    if pid_alive "$DOCKER_PIDFILE"; then
        echo "dockerd: running pid $(cat "$DOCKER_PIDFILE") socket $DOCKER_SOCK"
    else
        echo "dockerd: stopped"
    fi
}

# verify_peers [RUNTIME]: run the busybox fixture through every peer using RUNTIME
# (a runc-compatible binary; default runc). Prints one PASS/FAIL line per peer.
verify_peers() {
    local rt="${1:-$(command -v runc)}" failures=0 id
    [[ -f "$BERTH_FIXTURES/busybox/docker-archive.tar" ]] ||
        { peers_log "busybox fixture missing; run tests/fixtures/build-images.sh"; return 1; }
    configure_peers
    # podman
    load_podman_busybox
    if podman --runtime "$rt" run --rm --network none localhost/busybox true; then
        echo "PASS podman ($rt)"
    else
        echo "FAIL podman ($rt)"; failures=$((failures + 1))
    fi
    # dockerd
    if start_dockerd "$rt" &&
        docker_cli load -q -i "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null &&
        docker_cli run --rm --network none --runtime berth busybox true; then
        echo "PASS dockerd (runtime berth=$rt)"
    else
        echo "FAIL dockerd (runtime berth=$rt)"; failures=$((failures + 1))
    fi
    stop_dockerd
    # containerd
    id="berth-ci-verify-$$"
    if start_containerd &&
        ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE" images import \
            "$BERTH_FIXTURES/busybox/docker-archive.tar" >/dev/null &&
        ctr -a "$CONTAINERD_SOCK" -n "$CONTAINERD_NAMESPACE" run --rm \
            --runc-binary "$rt" --runc-root "$CONTAINERD_RUNC_ROOT" \
            docker.io/library/busybox:latest "$id" true; then
        echo "PASS containerd (io.containerd.runc.v2 --runc-binary $rt)"
    else
        echo "FAIL containerd (io.containerd.runc.v2 --runc-binary $rt)"; failures=$((failures + 1))
    fi
    peers_down
    return "$((failures > 0))"
}

peers_main() {
    local cmd="${1:-}" berth="" rt=""
    [[ $# -gt 0 ]] && shift
    [[ $(id -u) -eq 0 ]] || { peers_log "must run as root"; return 1; }
    case "$cmd" in
        configure)
            [[ "${1:-}" == --berth ]] && berth="${2:?--berth needs a path}"
            configure_peers "$berth" ;;
        load-podman) load_podman_busybox ;;
        start)
            case "${1:-}" in
                containerd) start_containerd ;;
                dockerd)
                    [[ "${2:-}" == --berth ]] && berth="${3:?--berth needs a path}"
                    start_dockerd "${berth:-$(default_berth_binary)}" ;;
                *) peers_log "start containerd|dockerd"; return 2 ;;
            esac ;;
        stop)
            case "${1:-}" in
                containerd) stop_containerd ;;
                dockerd) stop_dockerd ;;
                all) stop_dockerd; stop_containerd ;;
                *) peers_log "stop containerd|dockerd|all"; return 2 ;;
            esac ;;
        status) peers_status ;;
        verify)
            [[ "${1:-}" == --runtime ]] && rt="${2:?--runtime needs a path}"
            verify_peers "$rt" ;;
        down) peers_down ;;
        purge)
            peers_down
            rm -rf --one-file-system "$BERTH_CI_LIB" "$BERTH_CI_RUN" ;;
        -h|--help|help) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
        *) sed -n '2,/^$/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; return 2 ;;
    esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    peers_main "$@"
fi
