#!/bin/sh
# /init of the berth test VM (runs as PID 1 under busybox ash; see run.sh).
#
# Kernel command line parameters read here:
#   berth.cmd=PATH      host path of the command script written by run.sh
#                       (read through the 9p share)
#   berth.cgroup=MODE   v2 | hybrid | hybrid-systemd | none; default v2 when
#                       cgroup_no_v1=all is given, hybrid (the CI host layout)
#                       otherwise
#   berth.shares=PATH   host path of the list of shared paths written by run.sh
#                       (--share, its current directory), lines "DEST<TAB>SRC":
#                       the host's SRC is bound at DEST over the fresh /tmp, /run
#                       and /dev mounted here, which would hide it
#   berth.debug=1       print each setup step on the console
# The exit status of the command is printed as "BERTH-VM-EXIT=<n>"; setup
# failures print "BERTH-VM-ERROR=<step>" and exit 125. Then the VM powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

cmd='' cgmode='' v1off='' debug='' shares=''
# shellcheck disable=SC2013 # words, not lines
for w in $(cat /proc/cmdline); do
	case $w in
	berth.cmd=*) cmd=${w#berth.cmd=} ;;
	berth.shares=*) shares=${w#berth.shares=} ;;
	berth.cgroup=*) cgmode=${w#berth.cgroup=} ;;
	berth.debug=1) debug=1 ;;
	cgroup_no_v1=all) v1off=1 ;;
	esac
done
[ -n "$cgmode" ] || { [ -n "$v1off" ] && cgmode=v2 || cgmode=hybrid; }
[ -n "$debug" ] || echo 1 >/proc/sys/kernel/printk

say() { [ -z "$debug" ] || echo "berth-vm: $*"; }
finish() {
	echo "BERTH-VM-EXIT=$1"
	sync
	poweroff -f
	reboot -f # -no-reboot turns this into a qemu exit too
}
die() {
	echo "berth-vm: setup failed: $*"
	echo "BERTH-VM-ERROR=$*"
	finish 125
}

say "loading modules"
# shellcheck disable=SC2013 # words, not lines
for m in $(cat /etc/berth-boot-modules); do
	[ -d "/sys/module/$m" ] || modprobe "$m" || die "modprobe $m"
done

say "mounting host root over 9p"
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /host ||
	die "mount 9p hostroot"
mount -t tmpfs -o mode=0755 tmpfs /ovl || die "mount tmpfs /ovl"
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/host,upperdir=/ovl/upper,workdir=/ovl/work overlay /newroot ||
	die "mount overlay"

R=/newroot
# Shared host paths (run.sh --share and its current directory, when under /tmp, /run
# or /dev): the mounts below hide them, so bind each one aside now and move it back
# on top afterwards. They are binds of the overlay, so writes go to its tmpfs upper.
tab=$(printf '\t')
if [ -n "$shares" ]; then
	say "stashing shared paths"
	[ -f "/host$shares" ] || die "read share list /host$shares"
	mkdir -p /keep
	n=0
	while IFS=$tab read -r dst src; do
		n=$((n + 1))
		if [ -d "$R$src" ]; then
			mkdir "/keep/$n"
		elif [ -e "$R$src" ]; then
			: >"/keep/$n"
		else
			die "shared host path $src is not visible through the 9p share of the host root"
		fi
		mount --bind "$R$src" "/keep/$n" || die "bind shared host path $src"
	done <"/host$shares"
fi
mount -t proc proc $R/proc || die "mount proc"
mount -t sysfs sysfs $R/sys || die "mount sysfs"
mount -t devtmpfs devtmpfs $R/dev || die "mount devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts || die "mount devpts"
mount -t tmpfs -o mode=1777 shm $R/dev/shm || die "mount /dev/shm"
mount -t mqueue mqueue $R/dev/mqueue || die "mount mqueue"
mount -t tmpfs -o mode=0755 tmpfs $R/run || die "mount /run"
# LSM interfaces: AppArmor's policy files live in securityfs, SELinux has its own fs.
if grep -qw securityfs /proc/filesystems; then
	mount -t securityfs securityfs $R/sys/kernel/security || die "mount securityfs"
fi
if grep -qw selinuxfs /proc/filesystems && [ -d $R/sys/fs/selinux ]; then
	mount -t selinuxfs selinuxfs $R/sys/fs/selinux || die "mount selinuxfs"
fi
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "mount /tmp"

say "cgroup layout: $cgmode"
cg=$R/sys/fs/cgroup
case $cgmode in
v2)
	mount -t cgroup2 -o nsdelegate cgroup2 $cg || die "mount cgroup2"
	;;
hybrid|hybrid-systemd)
	# hybrid: the CI host's layout (each v1 controller on its own hierarchy,
	# name=systemd, cgroup2 at unified). hybrid-systemd: systemd's layout on a
	# hybrid Debian system (cpu,cpuacct and net_cls,net_prio co-mounted with
	# symlinks cpu, cpuacct, net_cls, net_prio pointing at them).
	if [ "$cgmode" = hybrid ]; then
		ctrls="cpu cpuacct cpuset memory devices freezer blkio pids"
	else
		ctrls="cpu,cpuacct cpuset memory devices freezer blkio pids net_cls,net_prio perf_event hugetlb rdma misc"
	fi
	mount -t tmpfs -o mode=0755 cgroup $cg || die "mount cgroup tmpfs"
	for c in $ctrls; do
		grep -qw "^${c%%,*}" /proc/cgroups || continue
		mkdir -p "$cg/$c"
		# e.g. cpuset/memory on kernels built without CONFIG_CPUSETS_V1/MEMCG_V1
		mount -t cgroup -o "$c" cgroup "$cg/$c" 2>/dev/null ||
			{ echo "berth-vm: v1 controller $c unavailable on this kernel"; rmdir "$cg/$c"; continue; }
		case $c in *,*)
			for l in $(echo "$c" | tr , ' '); do ln -s "$c" "$cg/$l"; done ;;
		esac
	done
	mkdir -p $cg/systemd $cg/unified
	mount -t cgroup -o none,name=systemd cgroup $cg/systemd || die "mount name=systemd"
	mount -t cgroup2 cgroup2 $cg/unified || die "mount cgroup2 unified"
	;;
none) ;;
*) die "unknown berth.cgroup=$cgmode" ;;
esac

if [ -n "$shares" ]; then
	n=0
	while IFS=$tab read -r dst src; do
		n=$((n + 1))
		if [ -d "/keep/$n" ]; then
			mkdir -p "$R$dst"
		else
			mkdir -p "$R${dst%/*}" && { [ -e "$R$dst" ] || : >"$R$dst"; }
		fi || die "create mount point for shared host path $dst"
		# Only fresh directories of the guest's tmpfs lie between $R and $dst (run.sh
		# drops nested shares), so no symlink can lead it elsewhere; make sure.
		[ "$(readlink -f "$R$dst")" = "$R$dst" ] || die "shared host path $dst: symlink in the guest's path"
		mount --move "/keep/$n" "$R$dst" || die "mount shared host path $src at $dst"
		say "shared $src at $dst"
	done <"/host$shares"
fi

[ -n "$cmd" ] || die "no berth.cmd= on the kernel command line"
mkdir -p $R/run/berth-vm
cp "/host$cmd" $R/run/berth-vm/cmd.sh || die "read command script /host$cmd"

hostname berth-vm
say "running command"
echo "BERTH-VM-BEGIN"
# Make the new root the mount namespace's root, as switch_root does (paths in
# AppArmor rules and audit records are relative to it; a plain chroot would leave
# "/newroot" in front of every path), but keep this shell on the initramfs so it
# can power off afterwards.
cd $R || die "cd $R"
mount --move . / || die "move the new root onto /"
chroot . /bin/sh /run/berth-vm/cmd.sh </dev/null >/dev/console 2>&1
finish $?
