#!/bin/sh
# Guest side of the kernel matrix (see matrix.sh): runs inside the qemu guest as root.
# Usage: guest-suite.sh CONFIG TESTS_LIST RUNTIME CHECKER
#   TESTS_LIST: lines "name path" of test binaries built on the host.
# Prints one "MATRIX <config> <suite> PASS|FAIL" line per suite; exits 1 if any failed.
set -u
config=$1 list=$2 runtime=$3 checker=$4
failures=0

echo "guest: $(uname -r), cgroup fs $(stat -f -c %T /sys/fs/cgroup), LSM $(cat /sys/kernel/security/lsm 2>/dev/null)"
case $config in
v2-apparmor)
	export BERTH_REQUIRE=cgroup2,apparmor,blockdev,io-controller
	[ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] || { echo "guest: AppArmor is not enabled"; exit 1; }
	;;
selinux)
	export BERTH_REQUIRE=selinux
	[ -n "${BERTH_MATRIX_POLICY:-}" ] || { echo "guest: no policy given"; exit 1; }
	# Debian's reference policy with Berth's test module, built on the host.
	# selinuxfs takes the policy in one write(2) (cat would split it).
	python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); f = open("/sys/fs/selinux/load", "wb", buffering=0); sys.exit(f.write(d) != len(d))' \
		"$BERTH_MATRIX_POLICY" || { echo "guest: loading the SELinux policy failed"; exit 1; }
	echo 1 >/sys/fs/selinux/enforce || { echo "guest: cannot enforce"; exit 1; }
	echo "guest: SELinux enforcing, this shell runs as $(cat /proc/self/attr/current)"
	;;
hybrid) export BERTH_REQUIRE= ;;
*) echo "guest: unknown configuration $config"; exit 1 ;;
esac

suite() {
	name=$1
	shift
	echo "---- $config: $name"
	if "$@"; then
		echo "MATRIX $config $name PASS"
	else
		echo "MATRIX $config $name FAIL"
		failures=$((failures + 1))
	fi
}

while read -r name path; do
	case $name in
	runtimes)
		# The conformance suite against berth-runtime, runc and crun (each checked
		# against its own list of expected failures, see crates/conformance/tests).
		suite conformance env BERTH_RUNTIME="$runtime" BERTH_CHECKER="$checker" \
			"$path" --nocapture --test-threads 1
		;;
	*) suite "$name" "$path" --test-threads 2 ;;
	esac
done <"$list"

if [ $failures != 0 ] && [ "$config" = selinux ]; then
	echo "guest: last SELinux denials:"
	dmesg | grep 'avc: *denied' | tail -n 20
fi
echo "guest: $failures suite(s) failed in $config"
[ $failures = 0 ]
