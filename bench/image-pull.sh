#!/usr/bin/env bash
# Benchmark cold image pulls from a loopback registry — Berth (the berth-pull example
# of berth-images) vs `podman pull` vs Debian's dockerd `docker pull` — and layer
# unpack throughput (Berth's decompress + apply vs `tar -x`), side by side.
#
# Usage: bench/image-pull.sh [options]
#
#   --runs N        hyperfine runs per command (default $BERTH_BENCH_RUNS or 5)
#   --warmup N      hyperfine warmup runs (default 1)
#   --out DIR       results directory (default bench/results)
#   --berth PATH    berth-pull binary (default: built with
#                   `cargo build --release --example berth-pull -p berth-images`
#                   into $CARGO_TARGET_DIR or target/)
#   --only LIST     comma-separated subset of pull,unpack (default both)
#   --fs KIND       filesystem of the stores and unpack targets (default ext4):
#                     ext4   a fresh journaled ext4 (mkfs.ext4 defaults) on a loop
#                            device backed by a sparse file in the work directory
#                     host   the work directory's filesystem as it is
#                     tmpfs  a private tmpfs (no disk at all)
#
# Why a fresh ext4 by default: this CI VM's root filesystem is ext4 *without a
# journal*, where ext4 skips inodes deleted in the last 60–300 s when allocating new
# ones (recently_deleted()); after every `rm -rf`/`rmi` of the previous run (and the
# other builds on the machine) creating files costs 0.5–1 ms each and swamps what is
# measured. A journaled ext4 is what a default Debian install has.
#
# Image: bench/make-pull-image.sh (6 gzip layers split from the Debian bookworm
# minbase fixture, ~120 MiB of tar, ~47 MiB compressed), cached under
# $BERTH_FIXTURES/bench-image; pushed with skopeo into Debian's docker-registry
# (distribution 2.8, file storage in a temporary directory, 127.0.0.1, free port).
#
# Pulls (each run starts from an empty store):
#   berth   berth-pull --root <tmp>/berth REF; --prepare removes the store (a pull
#           mounts nothing)
#   podman  podman pull --tls-verify=false with private --root/--runroot, its own
#           containers.conf (file locks, file events, private tmp dirs: nothing is
#           shared with the machine's podman) and storage.conf (driver overlay);
#           --prepare: podman rmi -af
#   docker  a private dockerd 20.10 (own --data-root/--exec-root/unix socket,
#           --bridge none, no iptables, overlay2, cgroupfs under a berth-test- parent);
#           127.0.0.0/8 registries are insecure by default; --prepare: docker rmi -f
# Every store lives under one temporary directory on the same filesystem.
#
# Unpack (the same six gzip blobs, in order, into a fresh directory each run):
#   berth unpack-layout             decompress + apply + blob digest + diff ID checks
#   berth unpack-layout --no-verify the same without the two sha256
#   tar -xzf                        GNU tar (gzip runs as a separate process)
#   berth unpack-tar                the applier alone on the uncompressed tars
#                                   (diff ID computed, nothing else checked)
#   tar -xf                         the uncompressed tars (no decompression at all)
#
# Output (in the results directory): image-pull.json, image-unpack.json (hyperfine
# exports) and image-pull-summary.md (environment, load, medians, ratios, targets).
# Targets (issue 3): berth ≤ 0.5× docker and ≤ 0.7× podman; unpack within 2× of
# tar -x. They are reported, never enforced: the exit status is 0 when everything ran.
#
# Everything started here (registry, dockerd and its containerd, podman's overlay
# mount) is stopped by PID or path, and every temporary directory removed, on exit,
# also on failure or interrupt.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
runs="${BERTH_BENCH_RUNS:-5}"
warmup=1
out="$REPO/bench/results"
berth=""
only="pull,unpack"
fs_kind="ext4"
REPO_NAME="berth-bench/debian"
TAG="layers"

log() { printf '[image-pull %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="${2:?}"; shift 2 ;;
        --warmup) warmup="${2:?}"; shift 2 ;;
        --out) out="${2:?}"; shift 2 ;;
        --berth) berth="${2:?}"; shift 2 ;;
        --only) only="${2:?}"; shift 2 ;;
        --fs) fs_kind="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $1" ;;
    esac
done
want() { [[ ",$only," == *",$1,"* ]]; }

[[ $(id -u) -eq 0 ]] || die "must run as root"
case "$fs_kind" in ext4|host|tmpfs) ;; *) die "--fs must be ext4, host or tmpfs" ;; esac
for tool in hyperfine jq skopeo podman dockerd docker-registry curl tar gzip; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done
DOCKER_CLI="$(command -v docker || true)"
[[ -x /usr/local/bin/docker ]] && DOCKER_CLI=/usr/local/bin/docker
[[ -n "$DOCKER_CLI" ]] || die "missing tool: docker (CLI)"

load_before="$(uptime)"
log "load: $load_before"

# ------------------------------------------------------------------ fixture + binary

"$REPO/bench/make-pull-image.sh"
IMAGE="$FIXTURES/bench-image"
LAYOUT="$IMAGE/oci"

if [[ -z "$berth" ]]; then
    log "building berth-pull (cargo build --release --example berth-pull -p berth-images)"
    (cd "$REPO" && cargo build --quiet --release --example berth-pull -p berth-images)
    berth="${CARGO_TARGET_DIR:-$REPO/target}/release/examples/berth-pull"
fi
[[ -x "$berth" ]] || die "berth-pull binary $berth not found"

# ------------------------------------------------------------------ work dirs + cleanup

# Registry data and scratch on disk, sockets and run state under /run (short
# paths), stores under $stores (see --fs).
work="$(mktemp -d /var/tmp/berth-bench-pull.XXXXXX)"
run="$(mktemp -d /run/berth-bench-pull.XXXXXX)"
stores="$work/stores"
CGROUP_PARENT="berth-test-bench-pull-$$"
registry_pid=""
dockerd_pid=""

# stop_pid NAME PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop_pid() {
    local name="$1" pid="$2" i
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    log "$name (pid $pid) ignored SIGTERM; killing it"
    kill -KILL "$pid" 2>/dev/null || true
}

# mounts_under DIR: mount points below DIR, deepest first.
mounts_under() {
    awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
    local status=$? m d containerd_pid=""
    trap - EXIT INT TERM
    set +e
    if [[ -n "$dockerd_pid" ]]; then
        containerd_pid="$(cat "$run/docker/containerd/containerd.pid" 2>/dev/null)"
        stop_pid dockerd "$dockerd_pid"
        # dockerd stops the containerd it started; make sure, by its PID file.
        [[ -n "$containerd_pid" ]] && stop_pid containerd "$containerd_pid"
    fi
    [[ -n "$registry_pid" ]] && stop_pid docker-registry "$registry_pid"
    for d in "$run" "$work"; do
        while read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
        done < <(mounts_under "$d")
        if [[ -n "$(mounts_under "$d")" ]]; then
            log "mounts remain under $d; leaving it in place"
        else
            rm -rf --one-file-system "$d"
        fi
    done
    for d in /sys/fs/cgroup/*/"$CGROUP_PARENT" /sys/fs/cgroup/"$CGROUP_PARENT"; do
        [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$out" "$stores"
case "$fs_kind" in
    ext4)
        truncate -s 8G "$work/stores.img"
        mkfs.ext4 -q -F "$work/stores.img"
        mount -o loop "$work/stores.img" "$stores"
        ;;
    tmpfs) mount -t tmpfs -o size=8g,mode=0700 berth-bench-pull "$stores" ;;
    host) ;;
esac
stores_fs="$fs_kind: $(findmnt -n -o SOURCE,FSTYPE,OPTIONS --target "$stores" | tr -s ' ')"
log "stores on $stores_fs"
hf_common=(--style basic --warmup "$warmup" --runs "$runs")
summary="$work/summary.md"
: >"$summary"

# median NAME FILE: hyperfine median (seconds) of command NAME in export FILE.
median() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median' "$2"; }
# ratio A B: A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
# verdict VALUE LIMIT: "met" when VALUE <= LIMIT.
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v != "n/a" && v <= l) ? "met" : "missed" }'; }

# ------------------------------------------------------------------ pulls

if want pull; then
    # Registry on a free loopback port (retried: the port may be taken meanwhile).
    mkdir -p "$work/registry"
    for attempt in 1 2 3 4 5; do
        port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
            shuf -i 20000-60000 -n 1)"
        cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/data
http:
  addr: 127.0.0.1:$port
  secret: berth-bench-secret
EOF
        docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 </dev/null &
        registry_pid=$!
        for ((i = 0; i < 100; i++)); do
            curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
            kill -0 "$registry_pid" 2>/dev/null || break
            sleep 0.1
        done
        curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
        log "registry did not start on port $port (attempt $attempt): $(tail -n 3 "$work/registry/log")"
        stop_pid docker-registry "$registry_pid"
        registry_pid=""
    done
    [[ -n "$registry_pid" ]] || die "docker-registry did not start"
    REF="127.0.0.1:$port/$REPO_NAME:$TAG"
    log "registry pid $registry_pid on 127.0.0.1:$port; pushing the image with skopeo"
    skopeo --insecure-policy copy --quiet --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://$REF"

    # Private dockerd.
    mkdir -p "$stores/docker" "$run/docker"
    echo '{}' >"$work/docker-daemon.json"
    DOCKER_HOST_URI="unix://$run/docker.sock"
    dockerd \
        --host "$DOCKER_HOST_URI" \
        --config-file "$work/docker-daemon.json" \
        --data-root "$stores/docker" \
        --exec-root "$run/docker" \
        --pidfile "$run/docker.pid" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --storage-driver overlay2 \
        --exec-opt native.cgroupdriver=cgroupfs \
        --cgroup-parent "/$CGROUP_PARENT" \
        </dev/null >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    dcli() { "$DOCKER_CLI" -H "$DOCKER_HOST_URI" "$@"; }
    for ((i = 0; i < 300; i++)); do
        dcli version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.2
    done
    dockerd_version="$(dcli version --format '{{.Server.Version}}' 2>/dev/null)" ||
        { tail -n 20 "$work/dockerd.log" >&2; die "dockerd did not start"; }
    log "dockerd $dockerd_version pid $dockerd_pid ($DOCKER_HOST_URI)"

    # Private podman configuration: nothing shared with the machine's podman (the
    # default shm lock segment and /run/libpod are global), overlay storage.
    mkdir -p "$stores/podman-tmp" "$work/podman-net" "$run/podman-libpod"
    cat >"$work/containers.conf" <<EOF
[engine]
lock_type = "file"
events_logger = "file"
events_logfile_path = "$run/podman-events.log"
tmp_dir = "$run/podman-libpod"
image_copy_tmp_dir = "$stores/podman-tmp"
cgroup_manager = "cgroupfs"
[network]
network_config_dir = "$work/podman-net"
EOF
    cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$stores/podman"
runroot = "$run/podman"
EOF
    : >"$work/registries.conf"
    export CONTAINERS_CONF="$work/containers.conf"
    export CONTAINERS_STORAGE_CONF="$work/storage.conf"
    export CONTAINERS_REGISTRIES_CONF="$work/registries.conf"
    podman_cmd="podman --root $stores/podman --runroot $run/podman --storage-driver overlay"
    podman_version="$($podman_cmd version --format '{{.Client.Version}}')"

    # Commands (hyperfine runs them with sh -c).
    berth_pull="$berth --root $stores/berth --quiet $REF"
    berth_prep="rm -rf $stores/berth"
    podman_pull="$podman_cmd pull --quiet --tls-verify=false $REF"
    podman_prep="$podman_cmd rmi -af >/dev/null 2>&1 || true"
    docker_pull="$DOCKER_CLI -H $DOCKER_HOST_URI pull --quiet $REF"
    docker_prep="$DOCKER_CLI -H $DOCKER_HOST_URI rmi -f $REF >/dev/null 2>&1 || true"

    # Probe each once (a failure here is a setup problem, not a timing).
    log "probe pulls"
    $berth_prep && $berth --root "$stores/berth" "$REF"
    sh -c "$podman_pull" >/dev/null
    sh -c "$docker_pull" >/dev/null
    [[ "$(dcli image inspect --format '{{len .RootFS.Layers}}' "$REF")" == 6 ]] || die "docker pulled a different image"
    sh -c "$podman_prep"
    sh -c "$docker_prep"

    log "hyperfine: cold pulls (warmup $warmup, runs $runs)"
    hyperfine "${hf_common[@]}" --export-json "$out/image-pull.json" \
        --prepare "$berth_prep" --command-name berth "$berth_pull" \
        --prepare "$podman_prep" --command-name podman "$podman_pull" \
        --prepare "$docker_prep" --command-name docker "$docker_pull"

    b="$(median berth "$out/image-pull.json")"
    p="$(median podman "$out/image-pull.json")"
    d="$(median docker "$out/image-pull.json")"
    r_docker="$(ratio "$b" "$d")"
    r_podman="$(ratio "$b" "$p")"
    {
        echo "## Cold pull of $REF (6 gzip layers, $(du -sb "$work/registry/data" | awk '{ printf "%.1f", $1 / 1048576 }') MiB in the registry)"
        echo
        echo "| puller | median (s) | mean ± σ (s) | min (s) | max (s) | berth ÷ it |"
        echo "|---|---|---|---|---|---|"
        for n in berth podman docker; do
            jq -r --arg n "$n" --arg b "$b" '.results[] | select(.command == $n) |
                "| \($n) | \(.median * 1000 | round / 1000) | \(.mean * 1000 | round / 1000) ± \((.stddev // 0) * 1000 | round / 1000) | \(.min * 1000 | round / 1000) | \(.max * 1000 | round / 1000) | \(($b | tonumber) / .median * 100 | round / 100)× |"' \
                "$out/image-pull.json"
        done
        echo
        echo "- berth / docker = ${r_docker}× (target ≤ 0.5×: $(verdict "$r_docker" 0.5))"
        echo "- berth / podman = ${r_podman}× (target ≤ 0.7×: $(verdict "$r_podman" 0.7))"
        echo "- versions: berth-pull at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?') + working tree, podman $podman_version, dockerd $dockerd_version, $(docker-registry --version 2>/dev/null | head -n1)"
        echo
    } >>"$summary"

    # Free the daemons before the unpack benchmark.
    dcli rmi -f "$REF" >/dev/null 2>&1 || true
    $podman_cmd rmi -af >/dev/null 2>&1 || true
    stop_pid dockerd "$dockerd_pid"
    dockerd_pid=""
    stop_pid docker-registry "$registry_pid"
    registry_pid=""
fi

# ------------------------------------------------------------------ unpack

if want unpack; then
    u="$stores/unpack"
    mkdir -p "$u"
    # Shell loops over the layers in order, as hyperfine commands.
    tar_gz="mkdir $u/tgz && while read -r gz t; do tar --xattrs -xzf \"\$gz\" -C $u/tgz; done <$IMAGE/layers.txt"
    tar_x="mkdir $u/tx && while read -r gz t; do tar --xattrs -xf \"\$t\" -C $u/tx; done <$IMAGE/layers.txt"
    tars="$(awk '{ printf "%s ", $2 }' "$IMAGE/layers.txt")"
    log "hyperfine: unpack (warmup $warmup, runs $runs)"
    hyperfine "${hf_common[@]}" --export-json "$out/image-unpack.json" \
        --prepare "rm -rf $u/berth" --command-name "berth unpack" "$berth unpack-layout $LAYOUT $u/berth" \
        --prepare "rm -rf $u/berthnv" --command-name "berth unpack --no-verify" "$berth unpack-layout --no-verify $LAYOUT $u/berthnv" \
        --prepare "rm -rf $u/tgz" --command-name "tar -xzf" "$tar_gz" \
        --prepare "rm -rf $u/bt" --command-name "berth unpack-tar" "$berth unpack-tar $u/bt $tars" \
        --prepare "rm -rf $u/tx" --command-name "tar -xf" "$tar_x"
    rm -rf "$u"
    bu="$(median "berth unpack" "$out/image-unpack.json")"
    tz="$(median "tar -xzf" "$out/image-unpack.json")"
    tx="$(median "tar -xf" "$out/image-unpack.json")"
    r_tgz="$(ratio "$bu" "$tz")"
    bt="$(median "berth unpack-tar" "$out/image-unpack.json")"
    r_tx="$(ratio "$bu" "$tx")"
    r_bt="$(ratio "$bt" "$tx")"
    tar_mib="$(cat "$IMAGE"/tars/*.tar | wc -c | awk '{ printf "%.1f", $1 / 1048576 }')"
    {
        echo "## Unpack of the same 6 layers ($tar_mib MiB of tar) into an empty directory"
        echo
        echo "| unpacker | median (s) | mean ± σ (s) | MiB/s of tar (median) | berth ÷ it |"
        echo "|---|---|---|---|---|"
        jq -r --arg b "$bu" --argjson mib "$tar_mib" '.results[] |
            "| \(.command) | \(.median * 1000 | round / 1000) | \(.mean * 1000 | round / 1000) ± \((.stddev // 0) * 1000 | round / 1000) | \($mib / .median | round) | \(($b | tonumber) / .median * 100 | round / 100)× |"' \
            "$out/image-unpack.json"
        echo
        echo "- berth / tar -xzf = ${r_tgz}× (target ≤ 2×: $(verdict "$r_tgz" 2))"
        echo "- berth unpack (gzip, verified) / tar -xf (uncompressed) = ${r_tx}×"
        echo "- berth unpack-tar / tar -xf (both uncompressed) = ${r_bt}×"
        echo
    } >>"$summary"
fi

# ------------------------------------------------------------------ summary

load_after="$(uptime)"
{
    echo "# image pull benchmark"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- kernel: $(uname -r), CPUs: $(nproc); stores on $stores_fs"
    echo "- load before: ${load_before#*load average: }; after: ${load_after#*load average: }"
    echo "- hyperfine: warmup $warmup, runs $runs"
    echo
    cat "$summary"
} >"$out/image-pull-summary.md"
cat "$out/image-pull-summary.md"
