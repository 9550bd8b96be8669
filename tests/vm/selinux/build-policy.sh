#!/bin/bash
# Builds the SELinux policy of the kernel matrix's selinux guest: Debian's reference
# policy (selinux-policy-default) plus berth_test.cil, compiled in a private copy of
# the policy store so the host's own store is never changed. Prints the path of the
# binary policy, which the guest writes to /sys/fs/selinux/load. Cached by the
# checksums of its inputs under $BERTH_VM_CACHE/selinux (default /var/cache/berth-vm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}/selinux
for f in /etc/selinux/default/policy /var/lib/selinux/default; do
	[ -e "$f" ] || { echo "build-policy.sh: $f missing (apt-get install selinux-policy-default)" >&2; exit 1; }
done
command -v semodule >/dev/null || { echo "build-policy.sh: semodule missing (apt-get install policycoreutils)" >&2; exit 1; }
key=$( { cat "$here/berth_test.cil" "$0"; dpkg-query -W selinux-policy-default 2>/dev/null; } | sha256sum | cut -c1-16)
out=$cache/$key
if [ ! -f "$out/policy" ]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d "$cache/tmp.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	root=$tmp/root
	mkdir -p "$root/etc" "$root/var/lib"
	cp -a /etc/selinux "$root/etc/"
	cp -a /var/lib/selinux "$root/var/lib/"
	# (libsemanage warns about policy users missing from /etc/passwd: harmless here)
	semodule -p "$root" -n -i "$here/berth_test.cil" >"$tmp/log" 2>&1 ||
		{ cat "$tmp/log" >&2; echo "build-policy.sh: semodule failed" >&2; exit 1; }
	mkdir -p "$out"
	cp "$root"/etc/selinux/default/policy/policy.* "$out/policy"
fi
echo "$out/policy"
