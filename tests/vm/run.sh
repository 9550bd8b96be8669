#!/bin/bash
# Run one command inside a throw-away qemu guest booted with Debian's kernel.
#
# Usage: tests/vm/run.sh [options] -- COMMAND [ARG...]
#   --cmdline EXTRA   extra kernel command line (e.g. "cgroup_no_v1=all")
#   --cgroup MODE     v2 | hybrid | hybrid-systemd | none (default: v2 with
#                     cgroup_no_v1=all, else hybrid = the CI host's layout;
#                     hybrid-systemd co-mounts cpu,cpuacct + net_cls,net_prio)
#   --kernel KVER     Debian kernel release, e.g. 6.12.117+deb12-amd64 (package
#                     linux-image-KVER; default: newest 6.1 bookworm kernel)
#   --timeout SECS    whole-run limit, default 300; qemu is killed after it
#   --mem MB          guest memory, default 2048
#   --smp N           guest CPUs, default 2
#   --disk MB         attach an empty virtio disk of MB megabytes (/dev/vda)
#   --share PATH      make the host's PATH (file or directory) visible in the guest
#                     at the same path although it lies under /tmp, /run or /dev,
#                     which the guest mounts fresh file systems on (repeatable; the
#                     current directory is always shared). Writes to it go to the
#                     overlay like all others.
#   --verbose         show the whole console (kernel log, setup steps)
#
# The guest sees the host root read-only over 9p with a tmpfs overlay on top
# (writes are discarded at exit), fresh /proc /sys /dev /run /tmp (except the
# shared paths), and the chosen cgroup layout. COMMAND runs as root in the
# host's current directory with stdin from /dev/null; its stdout+stderr come
# back (merged) on stdout. Before it starts, the guest checks that it sees the
# current directory and the host paths COMMAND names (arguments, and the values
# of NAME=/path arguments, that exist on the host, except under /dev /proc /sys)
# and says which it cannot see and why.
# Exit status: COMMAND's status; 124 on timeout; 125 if the VM failed or a
# named path is not visible in the guest.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
extra='' cgroup='' kver='' timeout=300 mem=2048 smp=2 verbose=0 disk=''
shares=()

usage() { sed -n '2,31p' "$0" >&2; exit 2; }
while [ $# -gt 0 ]; do
	case $1 in
	--cmdline) extra="$extra $2"; shift 2 ;;
	--cgroup) cgroup=$2; shift 2 ;;
	--kernel) kver=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--disk) disk=$2; shift 2 ;;
	--share) shares+=("$2"); shift 2 ;;
	--verbose) verbose=1; shift ;;
	--) shift; break ;;
	-h|--help) usage ;;
	*) echo "run.sh: unknown argument: $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || usage
case $timeout in ''|*[!0-9]*) echo "run.sh: bad --timeout" >&2; exit 2 ;; esac
case $disk in *[!0-9]*) echo "run.sh: bad --disk" >&2; exit 2 ;; esac

# The guest (init.sh) mounts fresh file systems on these, hiding what the host has
# below them. Prints the one PATH lies under (or is).
hider() {
	local m
	for m in /tmp /run /dev /proc /sys; do
		case $1 in "$m" | "$m"/*) echo "$m"; return 0 ;; esac
	done
	return 1
}
fstype() { case $1 in /dev) echo devtmpfs ;; /proc) echo proc ;; /sys) echo sysfs ;; *) echo tmpfs ;; esac; }

# Shared paths: lines "DEST<TAB>SRC" for init.sh, which binds the host's SRC (a
# canonical path, seen through the overlay) at DEST after its own mounts. Only paths
# under /tmp, /run or /dev need it; the rest of the host is visible anyway. A path
# reached through a symlink is shared at its canonical path and, if the logical one
# is hidden too, at that one as well.
share_lines=()
add_share() { # PATH EXPLICIT(0|1)
	local p=$1 c x m
	case $p in /*) ;; *) p=$PWD/$p ;; esac
	p=$(realpath -s -m -- "$p")
	if ! c=$(realpath -e -- "$p" 2>/dev/null); then
		[ "$2" = 1 ] || return 0
		echo "run.sh: --share $1: $p does not exist on the host" >&2
		exit 2
	fi
	case $p$c in *$'\t'* | *$'\n'*)
		[ "$2" = 1 ] || return 0
		echo "run.sh: --share $1: tabs and newlines in shared paths are not supported" >&2
		exit 2
		;;
	esac
	for x in "$c" "$p"; do
		m=$(hider "$x") || continue
		if [ "$x" = "$m" ] || [ "$m" = /proc ] || [ "$m" = /sys ]; then
			[ "$2" = 1 ] || return 0
			echo "run.sh: --share $1: cannot share $x (the guest has its own $m)" >&2
			exit 2
		fi
	done
	if hider "$c" >/dev/null; then share_lines+=("$c"$'\t'"$c"); fi
	if [ "$p" != "$c" ] && hider "$p" >/dev/null; then share_lines+=("$p"$'\t'"$c"); fi
	return 0
}
add_share "$PWD" 0
for s in "${shares[@]}"; do add_share "$s" 1; done
# Drop paths below another shared one (they are visible through it; a nested bind
# mount would also make rename(2) between them fail with EXDEV). Sorted, a parent
# comes before its children.
kept=()
while IFS= read -r l; do
	[ -n "$l" ] || continue
	for k in "${kept[@]}"; do
		case ${l%%$'\t'*} in "${k%%$'\t'*}"/*) continue 2 ;; esac
	done
	kept+=("$l")
done < <(printf '%s\n' "${share_lines[@]}" | LC_ALL=C sort -u)

# Why the guest might not see PATH (absolute, exists on the host): printed by the
# guest if it does not, next to the path.
why() {
	local c m k
	for k in "${kept[@]}"; do
		case $1 in "${k%%$'\t'*}" | "${k%%$'\t'*}"/*) m=shared ;; esac
	done
	if [ "${m:-}" != shared ] && m=$(hider "$1"); then
		echo "under $m, which the guest mounts a fresh $(fstype "$m") on; pass --share to run.sh"
	elif c=$(realpath -e -- "$1" 2>/dev/null) && [ "$c" != "$1" ] && m=$(hider "$c"); then
		echo "it resolves to $c, under $m, which the guest mounts a fresh $(fstype "$m") on; pass --share $c to run.sh"
	else
		echo "not readable through the 9p share of the host root"
	fi
}

# build.sh is cached: it only rebuilds when its inputs (init.sh, modules.list...) change.
if [ -n "$kver" ]; then
	dir=$("$here/build.sh" --pkg "linux-image-$kver")
else
	dir=$("$here/build.sh")
fi
for f in vmlinuz initramfs.cpio.gz; do
	[ -f "$dir/$f" ] || { echo "run.sh: $dir/$f missing (run tests/vm/build.sh)" >&2; exit 125; }
done
command -v qemu-system-x86_64 >/dev/null ||
	{ echo "run.sh: qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 125; }

tmp=$(mktemp -d /tmp/berth-vm.XXXXXX)
qpid='' tpid=''
# shellcheck disable=SC2317 # invoked by trap
cleanup() {
	if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
		kill "$qpid" 2>/dev/null || true
		sleep 1
		kill -9 "$qpid" 2>/dev/null || true
	fi
	if [ -n "$tpid" ]; then kill "$tpid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# POSIX single-quoting, so the guest's /bin/sh (dash) runs exactly "$@".
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
# The command script: check the current directory and the host paths the command
# names are visible (else say which and why, exit 125), cd, exec the command.
vis() { echo "vis $(q "$1") $(q "$(why "$1")")"; }
{
	# shellcheck disable=SC2016 # $1 and $2 are the guest shell's
	echo 'vis() { [ -e "$1" ] || [ -L "$1" ] || { echo "guest: host path $1 is not visible in the guest ($2)"; exit 125; }; }'
	vis "$PWD"
	for a in "$@"; do
		case $a in
		/*) p=$a ;;
		*=/*) p=${a#*=} ;;
		*/*) p=$PWD/$a ;;
		*) continue ;;
		esac
		# The guest's own kernel interfaces, not host files.
		case $p in /dev | /dev/* | /proc | /proc/* | /sys | /sys/*) continue ;; esac
		if [ -e "$p" ] || [ -L "$p" ]; then vis "$p"; fi
	done
	echo "cd $(q "$PWD") || exit 125"
	echo "export HOME=/root TERM=dumb PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(q "$a")"; done
	echo
} >"$tmp/cmd.sh"

append="console=ttyS0 panic=-1 berth.cmd=$tmp/cmd.sh"
if [ ${#kept[@]} -gt 0 ]; then
	printf '%s\n' "${kept[@]}" >"$tmp/shares"
	append="$append berth.shares=$tmp/shares"
	[ $verbose = 0 ] || printf 'run.sh: sharing %s\n' "${kept[@]%%$'\t'*}" >&2
fi
[ -n "$cgroup" ] && append="$append berth.cgroup=$cgroup"
if [ $verbose = 1 ]; then append="$append berth.debug=1"; else append="$append quiet loglevel=1"; fi
append="$append$extra"

drive=()
if [ -n "$disk" ]; then
	truncate -s "${disk}M" "$tmp/disk.img"
	drive=(-drive "file=$tmp/disk.img,if=virtio,format=raw,cache=unsafe")
fi

start=$EPOCHREALTIME
qemu-system-x86_64 "${drive[@]}" \
	-accel tcg -cpu max -m "$mem" -smp "$smp" \
	-nographic -monitor none -serial stdio -no-reboot -nic none \
	-kernel "$dir/vmlinuz" -initrd "$dir/initramfs.cpio.gz" -append "$append" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
	</dev/null >"$tmp/console" 2>"$tmp/qemu.err" &
qpid=$!

# Stream the command's output (or everything with --verbose) while it runs.
tail -n +1 -F --pid="$qpid" "$tmp/console" 2>/dev/null | tr -d '\r' | awk -v all="$verbose" '
	all == 1 { print; fflush(); next }
	!on { if ($0 ~ /BERTH-VM-BEGIN$/) on = 1; next }
	match($0, /BERTH-VM-EXIT=[0-9]+$/) { printf "%s", substr($0, 1, RSTART - 1); fflush(); on = 0; next }
	{ print; fflush() }' &
tpid=$!

timed_out=0
deadline=$((SECONDS + timeout))
while kill -0 "$qpid" 2>/dev/null; do
	if [ $SECONDS -ge $deadline ]; then
		timed_out=1
		kill "$qpid" 2>/dev/null || true
		sleep 1
		kill -9 "$qpid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
qrc=0
wait "$qpid" || qrc=$?
qpid=
wait "$tpid" 2>/dev/null || true
tpid=
elapsed=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
[ $verbose = 0 ] || echo "run.sh: VM ran ${elapsed}s (qemu status $qrc)" >&2

console=$(tr -d '\r' <"$tmp/console")
if [ $timed_out = 1 ]; then
	echo "run.sh: timeout after ${timeout}s; last console lines:" >&2
	tail -n 30 <<<"$console" >&2
	exit 124
fi
if rc=$(grep -o 'BERTH-VM-EXIT=[0-9]*$' <<<"$console" | tail -n1) && [ -n "$rc" ]; then
	rc=${rc#BERTH-VM-EXIT=}
	if grep -q '^BERTH-VM-ERROR=' <<<"$console"; then
		echo "run.sh: guest setup failed: $(grep '^BERTH-VM-ERROR=' <<<"$console" | head -n1 | cut -d= -f2-)" >&2
		[ $verbose = 1 ] || tail -n 30 <<<"$console" >&2
	fi
	exit "$rc"
fi
echo "run.sh: VM ended without an exit marker (qemu status $qrc); last console lines:" >&2
tail -n 30 <<<"$console" >&2
if [ -s "$tmp/qemu.err" ]; then
	echo "run.sh: qemu stderr:" >&2
	cat "$tmp/qemu.err" >&2
fi
exit 125
