#!/bin/bash
# The kernel matrix (issue 4): the runtime's integration tests and conformance suite
# inside qemu guests booted with Debian's own kernel, one guest per configuration.
#
# Usage: tests/vm/matrix.sh [--kernel KVER] [CONFIG...]
#   CONFIG (default: all three, in this order):
#     v2-apparmor  cgroup_no_v1=all apparmor=1 security=apparmor (cgroup v2 only,
#                  AppArmor enforcing with Berth's profile, a virtio disk for io.max)
#     selinux      security=selinux, Debian's reference policy plus the test module
#                  tests/vm/selinux/berth_test.cil, enforcing
#     hybrid       the CI host's layout: v1 controllers + a cgroup2 tree with hugetlb
#
# On the host it builds the test binaries (cargo test --no-run), the shipped runtime
# (make runtime) and the conformance checker once; each guest then runs them from the
# host's file system (read-only 9p + tmpfs overlay) through tests/vm/guest-suite.sh:
# the checkout, CARGO_TARGET_DIR, BERTH_FIXTURES and the SELinux policy are shared
# (run.sh --share), so they may live anywhere, /tmp included.
# Tests that need a feature of the configuration run with BERTH_REQUIRE naming it, so
# they fail rather than skip if the guest lacks it. Exit status: 0 when every
# configuration passed. Needs root, qemu-system-x86, busybox-static, apparmor,
# selinux-policy-default/policycoreutils/semodule-utils (scripts/setup.sh deps).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
case $CARGO_TARGET_DIR in /*) ;; *) CARGO_TARGET_DIR=$repo/$CARGO_TARGET_DIR ;; esac
export BERTH_FIXTURES=${BERTH_FIXTURES:-/var/cache/berth-fixtures}
case $BERTH_FIXTURES in /*) ;; *) BERTH_FIXTURES=$repo/$BERTH_FIXTURES ;; esac
cargo=${CARGO:-cargo}
kernel=()
configs=()
while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=(--kernel "$2"); shift 2 ;;
	-h|--help) sed -n '2,21p' "$0"; exit 0 ;;
	v2-apparmor|selinux|hybrid) configs+=("$1"); shift ;;
	*) echo "matrix.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ ${#configs[@]} -gt 0 ] || configs=(v2-apparmor selinux hybrid)

out=$CARGO_TARGET_DIR/vm-matrix
mkdir -p "$out"
list=$out/tests.list

echo "== building test binaries"
# shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
"$cargo" test ${CARGO_FLAGS:-} --no-run --message-format=json \
	-p berth-runtime-cli --test security --test features --test lsm --test cgroup_v2 \
	-p berth-conformance --test runtimes 2>"$out/build.log" |
	python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])
' >"$list" || { cat "$out/build.log" >&2; exit 1; }
[ "$(wc -l <"$list")" -eq 5 ] || { echo "matrix.sh: expected 5 test binaries, got:" >&2; cat "$list" >&2; cat "$out/build.log" >&2; exit 1; }
make --no-print-directory runtime >/dev/null
runtime=$CARGO_TARGET_DIR/runtime/berth-runtime
checker=$CARGO_TARGET_DIR/conformance-checker/x86_64-unknown-linux-gnu/debug/berth-checker
# shellcheck disable=SC2086 # CARGO_FLAGS is a list of flags
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$CARGO_TARGET_DIR/conformance-checker \
	"$cargo" build ${CARGO_FLAGS:-} -q -p berth-conformance --bin berth-checker --target x86_64-unknown-linux-gnu
bash tests/fixtures/build-images.sh busybox >/dev/null
if printf '%s\n' "${configs[@]}" | grep -qx selinux; then
	policy=$(bash "$here/selinux/build-policy.sh")
else
	policy=''
fi
# What the guest reads from the host, visible there at the same paths wherever it is.
shares=(--share "$repo" --share "$CARGO_TARGET_DIR" --share "$BERTH_FIXTURES")
[ -z "$policy" ] || shares+=(--share "$policy")

failed=()
for config in "${configs[@]}"; do
	args=("${kernel[@]}" --timeout 2400 --mem 3072)
	case $config in
	v2-apparmor) args+=(--cmdline "cgroup_no_v1=all apparmor=1 security=apparmor" --disk 64) ;;
	selinux) args+=(--cmdline "security=selinux") ;;
	hybrid) ;;
	esac
	echo "== $config: booting (${args[*]})"
	start=$SECONDS
	rc=0
	"$here/run.sh" "${args[@]}" "${shares[@]}" -- \
		env BERTH_FIXTURES="$BERTH_FIXTURES" BERTH_MATRIX_POLICY="$policy" \
		sh "$here/guest-suite.sh" "$config" "$list" "$runtime" "$checker" || rc=$?
	echo "== $config: exit $rc after $((SECONDS - start))s"
	[ $rc = 0 ] || failed+=("$config")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "== kernel matrix FAILED: ${failed[*]}"
	exit 1
fi
echo "== kernel matrix passed: ${configs[*]}"
