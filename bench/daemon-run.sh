#!/usr/bin/env bash
# Benchmark of the daemon (issue 8): the time to run a container end to end through each
# engine's API, side by side in the same run, and berthd's memory.
#
# Usage: bench/daemon-run.sh [BIN_DIR] (default target/release: berthd, berth-monitor,
#        and the api-run example, built here with `cargo build --release --example
#        api-run -p berthd` if missing)
#   BERTH_BENCH_RUNS  hyperfine runs per command (default 30)
#   BERTH_BENCH_OUT   results directory (default bench/results)
#
# Commands (each `run --rm --network none busybox true`, busybox from the fixtures):
#   berthd (api-run)      the request sequence docker run sends (create, wait, start,
#                         delete) from a small client on one connection: the engine's
#                         own cost, as the `berth` CLI will see it
#   docker CLI -> berthd  the docker CLI 28 against berthd
#   docker CLI -> dockerd Debian's dockerd 20.10 + containerd + runc (private instance
#                         from scripts/setup-peers.sh; --bridge none)
#   podman                podman 4.3 (crun/runc, its own storage, conmon)
# Memory: berthd's RSS when idle after the runs (VmRSS), and the monitors' unique memory
# (Private_Clean + Private_Dirty of smaps_rollup) of five `sleep` containers.
#
# Everything started here (berthd, its containers, dockerd) is stopped by PID on exit,
# also on failure; temporary directories are removed. Targets are reported, never
# enforced.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(cd "${1:-target/release}" && pwd)
runs=${BERTH_BENCH_RUNS:-30}
out=${BERTH_BENCH_OUT:-bench/results}
fixtures=${BERTH_FIXTURES:-/var/cache/berth-fixtures}
mkdir -p "$out"
command -v hyperfine >/dev/null || { echo "daemon-run: hyperfine missing (apt-get install hyperfine)" >&2; exit 1; }
if [[ ! -x "$bin/examples/api-run" ]]; then
    cargo build --release --example api-run -p berthd >/dev/null
fi
apirun="$bin/examples/api-run"

T=$(mktemp -d /tmp/berth-bench.XXXXXX)
sock=$T/berth.sock
berthd_pid='' started_dockerd=0
# shellcheck source=scripts/setup-peers.sh
source scripts/setup-peers.sh
cleanup() {
    set +e
    if [[ -n "$berthd_pid" ]]; then
        DOCKER_HOST=unix://$sock docker rm -f $(DOCKER_HOST=unix://$sock docker ps -aq) >/dev/null 2>&1
        kill "$berthd_pid" 2>/dev/null; sleep 0.5; kill -9 "$berthd_pid" 2>/dev/null
    fi
    for p in $(pgrep -f "berth-monitor $T/" || true); do kill -9 "$p" 2>/dev/null; done
    grep " $T/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
    [[ $started_dockerd == 1 ]] && stop_dockerd >/dev/null 2>&1
    rm -rf "$T"
}
trap cleanup EXIT

echo "== berthd ($bin)"
"$bin/berthd" --root "$T/root" --exec-root "$T/run" -H "unix://$sock" >"$T/daemon.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 1 100); do curl -fsS --unix-socket "$sock" http://b/_ping >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS --unix-socket "$sock" -X POST --data-binary @"$fixtures/busybox/docker-archive.tar" http://b/images/load >/dev/null
"$apirun" "$sock" busybox true

cmds=(-n "berthd (api-run)" "$apirun $sock busybox true"
      -n "docker CLI -> berthd" "docker -H unix://$sock run --rm --network none busybox true")
if start_dockerd >/dev/null 2>&1; then
    started_dockerd=1
    docker_cli load -q -i "$fixtures/busybox/docker-archive.tar" >/dev/null
    docker_cli run --rm --network none busybox true
    cmds+=(-n "docker CLI -> dockerd 20.10" "docker -H $DOCKER_HOST_URI run --rm --network none busybox true")
else
    echo "daemon-run: dockerd did not start; left out" >&2
fi
if command -v podman >/dev/null; then
    load_podman_busybox >/dev/null 2>&1 || true
    podman run --rm --network none localhost/busybox true && cmds+=(-n "podman 4.3" "podman run --rm --network none localhost/busybox true")
fi
hyperfine -N --warmup 3 --runs "$runs" --export-json "$out/daemon-run.json" --export-markdown "$out/daemon-run.md" "${cmds[@]}"

rss=$(awk '/^VmRSS/ {print $2}' "/proc/$berthd_pid/status")
# Five sleeping containers: the first monitor also owns the pages of the binary only it
# has touched; the others show what each further container costs.
cids=()
for _ in 1 2 3 4 5; do cids+=("$(docker -H "unix://$sock" run -d --network none busybox sleep 60)"); done
sleep 0.5
uniqs=()
for c in "${cids[@]}"; do
    mon=$(pgrep -f "berth-monitor $T/run/${c:0:32}" | head -n1)
    uniqs+=("$(awk '/^Private_(Clean|Dirty)/ {s += $2} END {print s}' "/proc/$mon/smaps_rollup")")
done
monrss=$(awk '/^VmRSS/ {print $2}' "/proc/$mon/status")
docker -H "unix://$sock" rm -f "${cids[@]}" >/dev/null
{
    echo "# daemon-run $(date -u +%FT%TZ) on $(nproc) CPUs, kernel $(uname -r)"
    echo
    cat "$out/daemon-run.md"
    echo
    echo "- berthd idle RSS after the runs: ${rss} KiB"
    echo "- berth-monitor unique memory (Private_Clean + Private_Dirty) of 5 containers: ${uniqs[*]} KiB (the first also holds the binary's pages only it touched; RSS of the last ${monrss} KiB)"
} | tee "$out/daemon-run-summary.md"
