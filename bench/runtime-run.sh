#!/usr/bin/env bash
# Benchmark `<runtime> run` (create + start + wait + delete) of the busybox fixture
# running /bin/true, for berth-runtime, crun and runc side by side.
#
# Usage: bench/runtime-run.sh [options] [BERTH_BINARY]
#
#   BERTH_BINARY      default target/runtime/berth-runtime; benched only if it exists
#   --runs N          hyperfine runs per runtime (default 50)
#   --warmup N        hyperfine warmup runs (default 5)
#   --rss-runs N      runs per runtime for peak RSS (default 20; the median is reported)
#   --host-cgroups    run on the host's cgroup layout as is (see below)
#   --out DIR         results directory (default bench/results)
#
# Output (in the results directory):
#   runtime-run.json / runtime-run.md   hyperfine exports
#   runtime-run-rss.txt                 raw peak RSS samples (KiB), one line per runtime
#   runtime-run-summary.md              environment, timings and median peak RSS
#
# Cgroups: this host mounts cgroup v1 controllers plus a cgroup2 tree at
# /sys/fs/cgroup/unified that owns the hugetlb controller ("hybrid"). crun 1.8
# refuses to run there. By default the benchmark therefore runs in a private mount
# namespace in which /sys/fs/cgroup/unified is unmounted, so every runtime sees the
# same pure cgroup v1 layout (the host's mounts are not changed). With
# --host-cgroups the layout is left as is and runtimes that fail a probe run are
# skipped.
#
# Every invocation uses a unique container ID (berth-test-bench-<runtime>-<shell pid>)
# and a per-runtime state directory under a temporary /run/berth-bench.* directory.
# Peak RSS is GNU time's %M: the largest maximum resident set size among the runtime
# process and the descendants it waited for.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
runs=50
warmup=5
rss_runs=20
host_cgroups=0
out="$REPO/bench/results"
berth="$REPO/target/runtime/berth-runtime"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

args=("$@")
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) runs="${2:?}"; shift 2 ;;
        --warmup) warmup="${2:?}"; shift 2 ;;
        --rss-runs) rss_runs="${2:?}"; shift 2 ;;
        --host-cgroups) host_cgroups=1; shift ;;
        --out) out="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1" ;;
        *) berth="$1"; shift ;;
    esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root"
for tool in hyperfine jq /usr/bin/time unshare; do
    command -v "$tool" >/dev/null || die "missing tool: $tool (apt-get install hyperfine jq time util-linux)"
done

# Re-enter in a private mount namespace without the cgroup2 tree (see header).
if [[ $host_cgroups -eq 0 && -z "${BERTH_BENCH_IN_NS:-}" ]]; then
    export BERTH_BENCH_IN_NS=1
    exec unshare --mount --propagation private -- "$0" "${args[@]}"
fi
cgroup_layout="host (unchanged)"
if [[ -n "${BERTH_BENCH_IN_NS:-}" ]]; then
    if [[ "$(stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null || true)" == cgroup2fs ]]; then
        umount /sys/fs/cgroup/unified
    fi
    cgroup_layout="cgroup v1 only (private mount namespace without /sys/fs/cgroup/unified)"
fi

if [[ ! -f "$FIXTURES/busybox/.stamp" ]]; then
    log "busybox fixture missing; building it"
    "$REPO/tests/fixtures/build-images.sh" busybox
fi

work="$(mktemp -d /run/berth-bench.XXXXXX)"
cleanup() {
    local rt c
    for rt in "$work"/state/*; do
        [[ -d "$rt" ]] || continue
        # Remove any container a failed run left behind (only ours: own state dir).
        for c in "$rt"/*; do
            [[ -d "$c" ]] || continue
            "$(cat "$work/bin.$(basename "$rt")")" --root "$rt" delete --force "$(basename "$c")" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

bundle="$work/bundle"
mkdir -p "$bundle" "$work/state"
jq --arg root "$FIXTURES/busybox/rootfs" \
    '.process.args = ["/bin/true"] | .process.terminal = false | .root.path = $root | .root.readonly = true' \
    "$FIXTURES/busybox/bundle/config.json" >"$bundle/config.json"
# Probe bundle: proves a runtime really runs the container (its output must appear).
probe="$work/probe"
mkdir -p "$probe"
jq '.process.args = ["sh", "-c", "echo berth-bench-probe"]' "$bundle/config.json" >"$probe/config.json"

# Candidate runtimes: name -> binary.
names=()
declare -A bin=()
if [[ -x "$berth" ]]; then names+=(berth); bin[berth]="$berth"; else log "berth binary $berth not found; benching runc and crun only"; fi
if command -v crun >/dev/null; then names+=(crun); bin[crun]="$(command -v crun)"; fi
if command -v runc >/dev/null; then names+=(runc); bin[runc]="$(command -v runc)"; fi

# run_cmd NAME: the shell command hyperfine runs; $$ makes each container ID unique.
run_cmd() {
    printf '%q --root %q run --bundle %q berth-test-bench-%s-$$' \
        "${bin[$1]}" "$work/state/$1" "$bundle" "$1"
}

selected=()
for n in "${names[@]}"; do
    mkdir -p "$work/state/$n"
    echo "${bin[$n]}" >"$work/bin.$n"
    if out_probe="$("${bin[$n]}" --root "$work/state/$n" run --bundle "$probe" "berth-test-bench-probe-$n-$$" 2>&1)" &&
        [[ "$out_probe" == *berth-bench-probe* ]]; then
        selected+=("$n")
    else
        log "skipping $n: probe run did not print its marker: $(echo "$out_probe" | tr '\n' ' ')"
    fi
done
[[ ${#selected[@]} -gt 0 ]] || die "no runtime could run the bundle"

mkdir -p "$out"
hf_args=(--warmup "$warmup" --runs "$runs" --style basic
    --export-json "$out/runtime-run.json" --export-markdown "$out/runtime-run.md")
for n in "${selected[@]}"; do
    hf_args+=(--command-name "$n run" "$(run_cmd "$n")")
done
log "hyperfine: ${selected[*]} (warmup $warmup, runs $runs)"
hyperfine "${hf_args[@]}"

# Peak RSS: median of rss_runs samples of GNU time's %M (KiB).
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: >"$out/runtime-run-rss.txt"
declare -A rss=()
for n in "${selected[@]}"; do
    samples=()
    for ((i = 0; i < rss_runs; i++)); do
        /usr/bin/time -f %M -o "$work/rss" \
            "${bin[$n]}" --root "$work/state/$n" run --bundle "$bundle" "berth-test-bench-rss-$n-$$-$i"
        samples+=("$(tail -n1 "$work/rss")")
    done
    rss[$n]="$(printf '%s\n' "${samples[@]}" | median)"
    echo "$n ${samples[*]}" >>"$out/runtime-run-rss.txt"
    log "$n peak RSS median ${rss[$n]} KiB over $rss_runs runs"
done

# Summary.
{
    echo "# runtime run benchmark"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- kernel: $(uname -r), CPUs: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- cgroups: $cgroup_layout"
    echo "- bundle: busybox fixture, args [\"/bin/true\"], readonly rootfs"
    echo "- hyperfine: warmup $warmup, runs $runs; peak RSS: median of $rss_runs runs (GNU time %M)"
    for n in "${selected[@]}"; do
        echo "- $n: ${bin[$n]} ($("${bin[$n]}" --version 2>/dev/null | head -n1))"
    done
    echo
    echo "| runtime | mean ± σ (ms) | median (ms) | min (ms) | max (ms) | peak RSS median (KiB) |"
    echo "|---|---|---|---|---|---|"
    for n in "${selected[@]}"; do
        jq -r --arg name "$n run" --arg rss "${rss[$n]}" '.results[] | select(.command == $name) |
            "| \($name) | \(.mean * 1000 * 100 | round / 100) ± \(.stddev * 1000 * 100 | round / 100) | \(.median * 1000 * 100 | round / 100) | \(.min * 1000 * 100 | round / 100) | \(.max * 1000 * 100 | round / 100) | \($rss) |"' \
            "$out/runtime-run.json"
    done
} >"$out/runtime-run-summary.md"
cat "$out/runtime-run-summary.md"
