#!/bin/bash
# The guest smoke from a checkout under /tmp (make vm-tmp-checkout, part of make vm-ci).
#
# The guest mounts a fresh tmpfs on /tmp and /run; run.sh shares its current
# directory and each --share PATH back at the same path. This copies tests/vm into a
# fresh /tmp/berth-vm-checkout.XXXXXX and berth-runtime and the busybox fixture
# bundle into another fresh /tmp directory, then, from the copy of the checkout:
#   1. runs tests/vm/runtime-smoke.sh in a cgroup v2 guest with that runtime and
#      bundle (shared with --share), after checking the guest can write to a shared
#      path and that the write never reaches the host;
#   2. names a file under /tmp without sharing it: the guest must say which host path
#      it cannot see and why, and exit 125.
# Both directories are removed on exit. Needs root, qemu-system-x86, busybox-static,
# berth-runtime (make runtime) and the busybox fixture (make fixtures).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
case $target in /*) ;; *) target=$repo/$target ;; esac
runtime=${BERTH_RUNTIME:-$target/runtime/berth-runtime}
bundle=${BERTH_FIXTURES:-/var/cache/berth-fixtures}/busybox/bundle
for f in "$runtime" "$bundle/config.json"; do
	[ -e "$f" ] || { echo "tmp-checkout.sh: $f missing (make runtime fixtures)" >&2; exit 1; }
done

co='' aux=''
# shellcheck disable=SC2317 # invoked by trap
cleanup() { rm -rf "$co" "$aux"; }
trap cleanup EXIT
co=$(mktemp -d /tmp/berth-vm-checkout.XXXXXX)
aux=$(mktemp -d /tmp/berth-vm-shared.XXXXXX)
mkdir -p "$co/tests"
cp -a "$here" "$co/tests/vm"
cp "$runtime" "$aux/berth-runtime"
cp -a "$bundle" "$aux/bundle"
log=$co/.run.log
cd "$co"

echo "== guest smoke from $co (runtime and bundle in $aux)"
rc=0
# shellcheck disable=SC2016 # $1 is the guest shell's
tests/vm/run.sh --cmdline cgroup_no_v1=all --share "$aux" -- \
	env BERTH_RUNTIME="$aux/berth-runtime" BERTH_FIXTURE="$aux/bundle" \
	sh -c 'echo guest >"$1/written" && [ "$(cat "$1/written")" = guest ] && echo "shared path writable" &&
		exec sh tests/vm/runtime-smoke.sh' sh "$aux" 2>&1 | tee "$log" || rc=$?
if [ $rc != 0 ] || [ "$(tail -n1 "$log")" != PASS ]; then
	echo "tmp-checkout.sh: FAIL: the guest smoke from $co exited $rc" >&2
	exit 1
fi
[ ! -e "$aux/written" ] || { echo "tmp-checkout.sh: FAIL: the guest's write reached the host" >&2; exit 1; }

echo "== a path under /tmp that is not shared"
rc=0
tests/vm/run.sh --timeout 120 -- cat "$aux/bundle/config.json" >"$log" 2>&1 || rc=$?
cat "$log"
want="guest: host path $aux/bundle/config.json is not visible in the guest (under /tmp, which the guest mounts a fresh tmpfs on; pass --share to run.sh)"
if [ $rc != 125 ] || ! grep -qxF "$want" "$log"; then
	echo "tmp-checkout.sh: FAIL: expected exit 125 and \"$want\", got exit $rc" >&2
	exit 1
fi
echo "== tmp-checkout: PASS"
