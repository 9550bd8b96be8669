#!/usr/bin/env bash
# Build the multi-layer image of the image-pull benchmark (bench/image-pull.sh) from
# the Debian fixture root filesystem, offline, into a cache directory.
#
# Usage: bench/make-pull-image.sh [--force]
#
# Environment:
#   BERTH_FIXTURES  fixture cache (default /var/cache/berth-fixtures); the Debian
#                   fixture is built there first when missing
#                   (tests/fixtures/build-images.sh debian).
#
# Output: $BERTH_FIXTURES/bench-image/ (replaced atomically, rebuilt when its stamp
# differs from BENCH_IMAGE_VERSION below or the Debian fixture was rebuilt):
#   oci/          OCI image layout, tag "latest": 6 gzip layers (gzip -6), ~115 MiB of
#                 tar in all, OCI manifest and config, platform linux/amd64
#   tars/N.tar    the same layers uncompressed (their sha256 are the diff IDs)
#   layers.txt    one line per layer, base first: "<gzip blob path> <tar path>"
#
# The layers split the Debian bookworm minbase tree the way real images are split
# (each layer carries its parent directories, as docker's do):
#   1 base      everything but usr/bin, usr/lib and usr/share
#   2 libs      usr/lib/x86_64-linux-gnu
#   3 bin       usr/bin
#   4 lib+share usr/lib and usr/share without the two big subtrees
#   5 locale    usr/share/locale
#   6 app       a few files in opt/berth-bench, a whiteout and an opaque directory
# Timestamps are fixed and owners numeric, so the digests are reproducible.
set -euo pipefail

readonly BENCH_IMAGE_VERSION=1
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"
readonly EPOCH=1700000000
CREATED="$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)"
readonly CREATED

log() { printf '[bench-image %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

force=0
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument $arg" ;;
    esac
done

[[ $(id -u) -eq 0 ]] || die "must run as root (the tree has files of many owners)"
for tool in jq gzip tar sha256sum flock find sort; do
    command -v "$tool" >/dev/null || die "missing tool: $tool"
done

if [[ ! -f "$FIXTURES/debian/.stamp" ]]; then
    log "Debian fixture missing; building it (tests/fixtures/build-images.sh debian)"
    "$REPO/tests/fixtures/build-images.sh" debian
fi
rootfs="$FIXTURES/debian/rootfs"
[[ -d "$rootfs/usr/lib/x86_64-linux-gnu" ]] || die "$rootfs does not look like the Debian fixture"

final="$FIXTURES/bench-image"
# The stamp also records the Debian fixture it was made from.
stamp="$BENCH_IMAGE_VERSION $(stat -c %Y "$FIXTURES/debian/.stamp")"

mkdir -p "$FIXTURES"
exec 8>"$FIXTURES/.bench-image.lock"
flock 8

if [[ $force -eq 0 && -f "$final/.stamp" && "$(cat "$final/.stamp")" == "$stamp" ]]; then
    log "up to date at $final"
    exit 0
fi

new="$(mktemp -d "$FIXTURES/.bench-image.build.XXXXXX")"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() { [[ -z "${new:-}" || ! -e "$new" ]] || rm -rf --one-file-system "$new"; }
trap cleanup EXIT
chmod 0755 "$new"
layout="$new/oci"
mkdir -p "$layout/blobs/sha256" "$new/tars" "$new/lists"
printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"

# list_layer OUT ROOT... -- EXCLUDE...: NUL-separated, sorted list of the entries under
# the ROOTs (relative to the rootfs, ROOTs included) without the EXCLUDE subtrees,
# plus every ancestor directory of each ROOT.
list_layer() {
    local out="$1" r a
    shift
    local -a roots=() excl=()
    while [[ $# -gt 0 && "$1" != -- ]]; do roots+=("$1"); shift; done
    [[ $# -gt 0 ]] && shift
    excl=("$@")
    local -a prune=()
    for r in "${excl[@]}"; do
        [[ ${#prune[@]} -gt 0 ]] && prune+=(-o)
        prune+=(-path "$r")
    done
    {
        for r in "${roots[@]}"; do
            a="$(dirname "$r")"
            while [[ "$a" != . ]]; do
                printf '%s\0' "$a"
                a="$(dirname "$a")"
            done
        done
        if [[ ${#prune[@]} -gt 0 ]]; then
            (cd "$rootfs" && find "${roots[@]}" \( "${prune[@]}" \) -prune -o -print0)
        else
            (cd "$rootfs" && find "${roots[@]}" -print0)
        fi
    } | LC_ALL=C sort -z -u >"$out"
}

# make_layer N SRC LIST: tar (posix, fixed mtime, numeric owners, xattrs) of the
# entries in LIST relative to SRC into tars/N.tar, gzip it into the layout.
# Prints "<diff_id> <digest> <size>".
make_layer() {
    local n="$1" src="$2" list="$3" tarf diff digest size
    tarf="$new/tars/$n.tar"
    tar -C "$src" --create --file "$tarf" --no-recursion --null -T "$list" \
        --numeric-owner --mtime="@$EPOCH" --format=posix \
        --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' --xattrs
    diff="$(sha256sum "$tarf" | cut -d' ' -f1)"
    gzip -n -6 <"$tarf" >"$new/layer.gz"
    digest="$(sha256sum "$new/layer.gz" | cut -d' ' -f1)"
    size="$(stat -c %s "$new/layer.gz")"
    mv "$new/layer.gz" "$layout/blobs/sha256/$digest"
    echo "$diff $digest $size"
}

mapfile -t top < <(cd "$rootfs" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
list_layer "$new/lists/1" "${top[@]}" -- usr/bin usr/lib usr/share
list_layer "$new/lists/2" usr/lib/x86_64-linux-gnu
list_layer "$new/lists/3" usr/bin
list_layer "$new/lists/4" usr/lib usr/share -- usr/lib/x86_64-linux-gnu usr/share/locale
list_layer "$new/lists/5" usr/share/locale

# Layer 6: an "application" layer with the three kinds of change.
app="$new/app"
mkdir -p "$app/opt/berth-bench" "$app/usr/share/doc" "$app/var/cache/apt"
cp -a "$rootfs/usr/share/common-licenses" "$app/opt/berth-bench/licenses"
head -c $((4 << 20)) /dev/zero | tr '\0' 'b' >"$app/opt/berth-bench/data.bin"
printf '#!/bin/sh\necho berth bench\n' >"$app/opt/berth-bench/run.sh"
chmod 0755 "$app/opt/berth-bench/run.sh"
: >"$app/usr/share/doc/.wh.bash"                # whiteout: removes usr/share/doc/bash
: >"$app/var/cache/apt/.wh..wh..opq"            # opaque: hides var/cache/apt below
chmod 0755 "$app" "$app/opt" "$app/usr" "$app/usr/share" "$app/usr/share/doc" "$app/var" "$app/var/cache" "$app/var/cache/apt"
(cd "$app" && find . -mindepth 1 -printf '%P\0' | LC_ALL=C sort -z) >"$new/lists/6"

names=(base libs bin lib+share locale app)
diffs=() digests=() sizes=()
for n in 1 2 3 4 5 6; do
    src="$rootfs"
    [[ $n -eq 6 ]] && src="$app"
    out="$(make_layer "$n" "$src" "$new/lists/$n")"
    read -r d g s <<<"$out"
    diffs+=("sha256:$d") digests+=("sha256:$g") sizes+=("$s")
    log "layer $n (${names[n - 1]}): $(($(stat -c %s "$new/tars/$n.tar") >> 20)) MiB tar, $((s >> 20)) MiB gzip"
    echo "$layout/blobs/sha256/$g $new/tars/$n.tar" >>"$new/layers.txt"
done
rm -rf "$app" "$new/lists"

# Config, manifest, index.
jq -cn --arg created "$CREATED" \
    --argjson diffs "$(printf '%s\n' "${diffs[@]}" | jq -R . | jq -s .)" \
    --argjson names "$(printf '%s\n' "${names[@]}" | jq -R . | jq -s .)" '{
    created: $created, architecture: "amd64", os: "linux",
    config: { Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
              Cmd: ["bash"], WorkingDir: "/" },
    rootfs: { type: "layers", diff_ids: $diffs },
    history: [ $names[] | { created: $created, created_by: ("berth bench/make-pull-image.sh: " + .) } ]
}' >"$new/config.json"
cfg_digest="$(sha256sum "$new/config.json" | cut -d' ' -f1)"
cfg_size="$(stat -c %s "$new/config.json")"
mv "$new/config.json" "$layout/blobs/sha256/$cfg_digest"

jq -cn --arg cd "sha256:$cfg_digest" --argjson cs "$cfg_size" \
    --argjson digests "$(printf '%s\n' "${digests[@]}" | jq -R . | jq -s .)" \
    --argjson sizes "$(printf '%s\n' "${sizes[@]}" | jq -s .)" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: { mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs },
    layers: [ range(0; $digests | length) as $i |
        { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
          digest: $digests[$i], size: $sizes[$i] } ]
}' >"$new/manifest.json"
man_digest="$(sha256sum "$new/manifest.json" | cut -d' ' -f1)"
man_size="$(stat -c %s "$new/manifest.json")"
mv "$new/manifest.json" "$layout/blobs/sha256/$man_digest"

jq -cn --arg md "sha256:$man_digest" --argjson ms "$man_size" '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [ { mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: $md, size: $ms, platform: { architecture: "amd64", os: "linux" },
        annotations: { "org.opencontainers.image.ref.name": "latest" } } ]
}' >"$layout/index.json"

# Paths in layers.txt point into $new; rewrite them for the final place.
sed -i "s#$new/#$final/#g" "$new/layers.txt"
echo "$stamp" >"$new/.stamp"
if [[ -e "$final" ]]; then
    mv "$final" "$final.old.$$"
    mv "$new" "$final"
    rm -rf --one-file-system "$final.old.$$"
else
    mv "$new" "$final"
fi
new=""
log "image ready: $final/oci:latest (manifest sha256:$man_digest)"
