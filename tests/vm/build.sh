#!/bin/bash
# Build (or reuse) the kernel + initramfs used by tests/vm/run.sh.
#
# Usage: tests/vm/build.sh [--pkg linux-image-6.1.0-NN-amd64] [--force]
#
# Downloads Debian's kernel package with `apt-get download` (never installs it
# into /boot), unpacks it with `dpkg -x`, and builds a small gzip'd cpio
# (newc) initramfs from the static busybox plus the kernel modules listed in
# modules.list (with their dependencies). Everything goes into
#   $BERTH_VM_CACHE (default /var/cache/berth-vm)/<kernel-release>/
#       vmlinuz  config  initramfs.cpio.gz  stamp  <pkg>.deb
# and $BERTH_VM_CACHE/default is a symlink to the release picked without --pkg.
# The script is idempotent: when the stamp (package + inputs hash) matches,
# it does nothing. Prints the kernel release directory on stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${BERTH_VM_CACHE:-/var/cache/berth-vm}
pkg=${BERTH_VM_KERNEL_PKG:-}
force=0
auto=0

while [ $# -gt 0 ]; do
	case $1 in
	--pkg) pkg=$2; shift 2 ;;
	--force) force=1; shift ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	*) echo "build.sh: unknown argument: $1" >&2; exit 2 ;;
	esac
done

log() { echo "build.sh: $*" >&2; }

busybox=/bin/busybox
# The initramfs has no libc: busybox must be the static build (busybox-static).
if [ ! -x "$busybox" ] || LC_ALL=C readelf -l "$busybox" 2>/dev/null | grep -q 'program interpreter'; then
	log "$busybox missing or not static; apt-get install busybox-static"; exit 1
fi

if [ -z "$pkg" ]; then
	auto=1
	# Newest 6.1 kernel the configured bookworm mirror offers: the ABI package
	# the linux-image-amd64 candidate depends on (e.g. linux-image-6.1.0-56-amd64).
	pkg=$(apt-cache show linux-image-amd64 2>/dev/null |
		sed -n 's/^Depends: *\(linux-image-6\.1\.[0-9]*-[0-9]*-amd64\)\b.*/\1/p' | head -n1)
	if [ -z "$pkg" ]; then
		pkg=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' |
			awk '{print $1}' | sort -V | tail -n1)
	fi
	[ -n "$pkg" ] || { log "no linux-image-6.1.*-amd64 package found (apt-get update?)"; exit 1; }
fi
kver=${pkg#linux-image-}
kver=${kver%-unsigned}
dir=$cache/$kver
mkdir -p "$dir"

# Serialize concurrent builds of the same release.
exec 9>"$dir/.lock"
flock 9

inputs_hash=$(cat "$here/build.sh" "$here/init.sh" "$here/modules.list" "$busybox" | sha256sum | cut -c1-16)
stamp="$pkg $inputs_hash"
if [ $force = 0 ] && [ -f "$dir/stamp" ] && [ "$(cat "$dir/stamp")" = "$stamp" ] &&
	[ -f "$dir/vmlinuz" ] && [ -f "$dir/initramfs.cpio.gz" ]; then
	[ $auto = 0 ] || ln -sfn "$kver" "$cache/default"
	echo "$dir"
	exit 0
fi

work=$(mktemp -d "$dir/.build.XXXXXX")
chmod 0755 "$work" # lets apt-get download drop privileges to _apt
trap 'rm -rf "$work"' EXIT

deb=$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
if [ -z "$deb" ]; then
	log "downloading $pkg"
	(cd "$work" && apt-get download "$pkg" >&2)
	deb=$(find "$work" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n1)
	mv "$deb" "$dir/"
	deb=$dir/$(basename "$deb")
fi

log "unpacking $(basename "$deb")"
dpkg -x "$deb" "$work/pkg"
moddir=$work/pkg/lib/modules/$kver
[ -d "$moddir" ] || { log "no /lib/modules/$kver in $deb"; exit 1; }
# The package does not ship modules.dep (postinst runs depmod); build it.
busybox depmod -b "$work/pkg" "$kver"

# Resolve the module selection and its dependency closure.
boot_mods=$(sed -n 's/^boot://p' "$here/modules.list" | xargs)
: >"$work/want"
while read -r pat; do
	case $pat in ''|'#'*|boot:*) continue ;; esac
	found=0
	for f in "$moddir"/$pat; do
		[ -e "$f" ] || continue
		echo "${f#"$moddir"/}" >>"$work/want"
		found=1
	done
	[ $found = 1 ] || grep -q "^${pat%.ko\*}\.ko" "$moddir/modules.builtin" ||
		log "warning: no module matches $pat"
done <"$here/modules.list"
closure() {
	awk -v wantf="$work/want" '
		BEGIN { while ((getline l < wantf) > 0) want[l] = 1 }
		{ m = $1; sub(/:$/, "", m); deps[m] = ""; for (i = 2; i <= NF; i++) deps[m] = deps[m] " " $i }
		END {
			n = 0; for (w in want) stack[n++] = w
			while (n > 0) {
				m = stack[--n]; if (m in seen) continue; seen[m] = 1; print m
				k = split(deps[m], d, " "); for (i = 1; i <= k; i++) if (!(d[i] in seen)) stack[n++] = d[i]
			}
		}' "$moddir/modules.dep" | sort >"$work/closure"
}
# modname (or alias) -> module paths, for soft dependencies ("softdep=pre: crc32c"),
# which depmod does not put in modules.dep but modules need at init time.
by_name() {
	awk -v name="$1" '
		FILENAME ~ /modules.alias$/ { if ($2 == name) a[$3] = 1; next }
		{ p = $1; sub(/:$/, "", p); b = p; sub(/.*\//, "", b); sub(/\.ko.*$/, "", b); gsub(/-/, "_", b)
		  n = name; gsub(/-/, "_", n); if (b == n) print p; idx[b] = p }
		END { for (x in a) { gsub(/-/, "_", x); if (x in idx) print idx[x] } }' \
		"$moddir/modules.alias" "$moddir/modules.dep"
}
modcat() {
	case $1 in
	*.xz) xz -dc "$1" ;;
	*.zst) zstd -qdc "$1" ;;
	*.gz) gzip -dc "$1" ;;
	*) cat "$1" ;;
	esac
}
closure
for _ in 1 2 3; do
	before=$(wc -l <"$work/closure")
	while read -r m; do
		modcat "$moddir/$m" | grep -ao 'softdep=[^[:cntrl:]]*' | sed 's/^softdep=//; s/\(pre\|post\)://g' | tr ' ' '\n' || true
	done <"$work/closure" | sort -u | while read -r name; do
		[ -z "$name" ] || by_name "$name"
	done >>"$work/want"
	closure
	[ "$(wc -l <"$work/closure")" != "$before" ] || break
done

root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,run,tmp,etc,host,ovl,newroot,lib/modules/"$kver"}
cp "$busybox" "$root/bin/busybox"
for a in $("$busybox" --list-full); do
	[ -e "$root/$a" ] || ln -s /bin/busybox "$root/$a"
done
# Newer Debian kernels ship compressed modules; busybox insmod wants plain .ko.
while read -r m; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$m")"
	modcat "$moddir/$m" >"$root/lib/modules/$kver/${m%.ko*}.ko"
done <"$work/closure"
cp "$moddir"/modules.builtin "$moddir"/modules.order "$root/lib/modules/$kver/"
busybox depmod -b "$root" "$kver"
for m in $boot_mods; do
	grep -q "/$m\.ko:" "$root/lib/modules/$kver/modules.dep" ||
		grep -qx "kernel/.*/$m\.ko" "$moddir/modules.builtin" ||
		{ log "boot module $m missing from the initramfs"; exit 1; }
done
echo "$boot_mods" >"$root/etc/berth-boot-modules"
install -m 0755 "$here/init.sh" "$root/init"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | busybox cpio -0 -o -H newc -R 0:0 --ignore-devno --renumber-inodes 2>/dev/null) | gzip -6 >"$work/initramfs.cpio.gz"
cp "$work/pkg/boot/vmlinuz-$kver" "$work/vmlinuz"
cp "$work/pkg/boot/config-$kver" "$work/config"
cp "$work/closure" "$work/modules.txt"
mv -f "$work/vmlinuz" "$work/config" "$work/modules.txt" "$work/initramfs.cpio.gz" "$dir/"
echo "$stamp" >"$dir/stamp"
[ $auto = 0 ] || ln -sfn "$kver" "$cache/default"
log "built $dir ($(wc -l <"$dir/modules.txt") modules, initramfs $(du -h "$dir/initramfs.cpio.gz" | cut -f1))"
echo "$dir"
