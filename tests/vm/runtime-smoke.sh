#!/bin/sh
# Guest-side smoke test of berth-runtime (run through run.sh, see README.md):
#   tests/vm/run.sh --cmdline cgroup_no_v1=all -- sh tests/vm/runtime-smoke.sh
# Copies the busybox fixture bundle into the guest's /tmp (the 9p share is
# read-only), sets memory and pids limits, runs it, and checks the container saw
# its own cgroup with those limits. Everything lives in the throw-away guest.
set -eu
rt=${BERTH_RUNTIME:-/work/main/target/runtime/berth-runtime}
src=${BERTH_FIXTURE:-/var/cache/berth-fixtures/busybox/bundle}
b=/tmp/berth-test-vm-bundle
cp -a "$src" "$b"
python3 - "$b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c['process']['args'] = ['sh', '-c', 'cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max 2>/dev/null || true']
r = c.setdefault('linux', {}).setdefault('resources', {})
r['memory'] = {'limit': 67108864}
r['pids'] = {'limit': 42}
c['linux']['cgroupsPath'] = '/berth-test-vm'
json.dump(c, open(p, 'w'))
PY
rc=0
out=$("$rt" --root /run/berth-test-vm run --bundle "$b" berth-test-vm 2>&1) || rc=$?
[ $rc = 0 ] || { echo "$out"; echo "FAIL: runtime exited $rc"; exit 1; }
echo "$out"
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
	echo "$out" | grep -qx '0::/berth-test-vm' || { echo "FAIL: not in /berth-test-vm"; exit 1; }
	echo "$out" | grep -qx 67108864 || { echo "FAIL: memory.max not applied"; exit 1; }
	echo "$out" | grep -qx 42 || { echo "FAIL: pids.max not applied"; exit 1; }
	[ ! -e /sys/fs/cgroup/berth-test-vm ] || { echo "FAIL: cgroup left behind"; exit 1; }
fi
echo PASS
