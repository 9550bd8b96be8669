#!/bin/sh
# Measure a runtime with the official OCI runtime-tools validation suite.
#
# Measurement tooling, not shipped code: it builds runtime-tools' `runtimetest`
# and `validation/*/*.t` offline with Debian's Go packages (GOPATH mode,
# GO111MODULE=off, GOPROXY=off) and runs them against each runtime given,
# printing a TAP pass/fail/skip summary per runtime.
#
# Usage (as root):
#   crates/conformance/runtime-tools.sh --src DIR [options] RUNTIME...
#
#   --src DIR        runtime-tools source tree, or a git directory (then the
#                    tree of --commit is exported from it). Debian's
#                    golang-github-opencontainers-runtime-tools-dev ships only
#                    the library packages (no cmd/ nor validation/), so a
#                    checkout of opencontainers/runtime-tools is needed; use
#                    the commit Debian packages (0105384, 2022-04-23) so it
#                    matches the Debian library and its dependencies.
#                    Default: $RUNTIME_TOOLS_SRC.
#   --commit REV     commit to export from a git --src (default 0105384).
#   --work DIR       build/output directory (default: a new mktemp -d; kept).
#   --mask-hybrid-cgroup2
#                    run each runtime through a wrapper that hides the cgroup2
#                    mount of a hybrid layout in a private mount namespace
#                    (crun refuses hybrid layouts with controllers in cgroup2;
#                    the host is not changed).
#   --with-relative-cgroups
#                    also run linux_cgroups_relative_*: a relative cgroupsPath
#                    lands below the caller's own cgroup, so they are skipped
#                    by default.
#   --filter REGEX   only run validation tests whose name matches.
#
# Debian packages needed (apt-get install):
#   golang-go golang-github-opencontainers-specs-dev
#   golang-github-opencontainers-selinux-dev golang-github-hashicorp-go-multierror-dev
#   golang-github-mrunalp-fileutils-dev golang-github-google-uuid-dev
#   golang-github-sirupsen-logrus-dev golang-github-urfave-cli-dev
#   golang-github-xeipuuv-gojsonschema-dev golang-gocapability-dev
#   golang-golang-x-sys-dev golang-github-blang-semver-dev
#   golang-github-stretchr-testify-dev
# (golang-github-opencontainers-runtime-tools-dev pulls in most of them.)
# github.com/mndrix/tap-go is not packaged in Debian; it is taken from the
# runtime-tools tree's vendor/ directory.
#
# Changes made to the exported copy (never to the source):
#   - the cgroup paths the tests use are renamed to berth-test-rt-* (the only
#     cgroup names we may create here), and containers without a cgroupsPath
#     get /berth-test-rt-<uuid> instead of the runtime's default /<id>;
#   - vendor/ is removed so Debian's packages are used.
set -eu

SRC=${RUNTIME_TOOLS_SRC:-}
COMMIT=0105384
WORK=
MASK=0
RELATIVE=0
FILTER=.
while [ $# -gt 0 ]; do
	case $1 in
	--src) SRC=$2; shift 2 ;;
	--commit) COMMIT=$2; shift 2 ;;
	--work) WORK=$2; shift 2 ;;
	--mask-hybrid-cgroup2) MASK=1; shift ;;
	--with-relative-cgroups) RELATIVE=1; shift ;;
	--filter) FILTER=$2; shift 2 ;;
	-h|--help) sed -n '2,50p' "$0"; exit 0 ;;
	--) shift; break ;;
	-*) echo "unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -ge 1 ] || { echo "usage: $0 --src DIR [options] RUNTIME..." >&2; exit 2; }
[ -n "$SRC" ] || { echo "no runtime-tools source: pass --src or set RUNTIME_TOOLS_SRC" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
command -v go >/dev/null || { echo "go not found: apt-get install golang-go" >&2; exit 2; }

[ -n "$WORK" ] || WORK=$(mktemp -d /tmp/berth-runtime-tools-XXXXXX)
mkdir -p "$WORK"
GOPATH_DIR=$WORK/gopath
TREE=$GOPATH_DIR/src/github.com/opencontainers/runtime-tools
rm -rf "$TREE"
mkdir -p "$TREE"

# 1. Export the source tree.
if git --git-dir="$SRC" rev-parse --git-dir >/dev/null 2>&1; then
	git --git-dir="$SRC" archive "$COMMIT" | tar -x -C "$TREE"
elif [ -d "$SRC/.git" ]; then
	git -C "$SRC" archive "$COMMIT" | tar -x -C "$TREE"
else
	cp -a "$SRC/." "$TREE/"
fi
[ -d "$TREE/validation" ] && [ -d "$TREE/cmd/runtimetest" ] || { echo "$SRC has no validation/ or cmd/runtimetest" >&2; exit 2; }

# 2. tap-go from vendor/ (not in Debian), then drop vendor/ for Debian's packages.
mkdir -p "$GOPATH_DIR/src/github.com/mndrix"
rm -rf "$GOPATH_DIR/src/github.com/mndrix/tap-go"
cp -a "$TREE/vendor/github.com/mndrix/tap-go" "$GOPATH_DIR/src/github.com/mndrix/tap-go"
rm -rf "$TREE/vendor" "$TREE/go.mod" "$TREE/go.sum"

# 3. Keep every cgroup the tests create under berth-test-* names.
sed -i 's|AbsCgroupPath = "/cgrouptest"|AbsCgroupPath = "/berth-test-rt-cgrouptest"|; s|RelCgroupPath = "testdir/cgrouptest/container"|RelCgroupPath = "berth-test-rt-rel/cgrouptest/container"|' "$TREE/cgroups/cgroups.go"
grep -q berth-test-rt-cgrouptest "$TREE/cgroups/cgroups.go" || { echo "could not patch cgroups.go" >&2; exit 1; }
awk '
	/^func \(r \*Runtime\) SetConfig/ { insetconfig = 1 }
	insetconfig && /return g.SaveToFile/ {
		print "\tif g.Config != nil && g.Config.Linux != nil && g.Config.Linux.CgroupsPath == \"\" {"
		print "\t\tg.SetLinuxCgroupsPath(\"/berth-test-rt-\" + uuid.NewString())"
		print "\t}"
		insetconfig = 0
	}
	{ print }
' "$TREE/validation/util/container.go" > "$TREE/validation/util/container.go.new"
mv "$TREE/validation/util/container.go.new" "$TREE/validation/util/container.go"
grep -q berth-test-rt- "$TREE/validation/util/container.go" || { echo "could not patch container.go" >&2; exit 1; }

# 4. Build offline in GOPATH mode against /usr/share/gocode.
export GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$GOPATH_DIR:/usr/share/gocode" GOCACHE="$WORK/gocache"
cd "$TREE"
echo "# building runtimetest" >&2
CGO_ENABLED=0 go build -tags "netgo osusergo" -o runtimetest ./cmd/runtimetest
TESTS=$(find validation -mindepth 2 -maxdepth 2 -name '*.go' ! -path 'validation/util/*' | sort | grep -E "$FILTER" || true)
if [ "$RELATIVE" = 0 ]; then
	TESTS=$(printf '%s\n' $TESTS | grep -v linux_cgroups_relative_ || true)
fi
for t in $TESTS; do
	echo "# building ${t%.go}.t" >&2
	go build -o "${t%.go}.t" "./$t"
done

# 5. Run each runtime.
hybrid_cgroup2() {
	# The cgroup2 mount of a hybrid layout (cgroup v1 mounts exist too), when
	# its tree has controllers. mountinfo: field 5 is the mount point, the
	# first field after " - " the filesystem type.
	awk '{ split($0, lr, " - "); split(lr[2], r, " "); print r[1], $5 }' /proc/self/mountinfo > "$WORK/mounts.txt"
	grep -q '^cgroup ' "$WORK/mounts.txt" || return 0
	awk '$1 == "cgroup2" { print $2 }' "$WORK/mounts.txt" | while read -r m; do
		if [ -n "$(cat "$m/cgroup.controllers" 2>/dev/null)" ]; then echo "$m"; break; fi
	done
}

detach_mounts_under() {
	# Some tests run containers without a mount namespace; the runtime then
	# leaves proc/sys/dev mounts in the bundle on the host. Detach them (deepest
	# first) so nothing ever deletes through them.
	awk -v p="$1/" 'index($5, p) == 1 { print length($5), $5 }' /proc/self/mountinfo |
		sort -rn | while read -r _ m; do umount -l "$m" && echo "# detached leaked mount $m" >&2; done
}

SUMMARY=$WORK/summary.txt
: > "$SUMMARY"
for rt in "$@"; do
	name=$(basename "$rt")
	bin=$(command -v "$rt")
	if [ "$MASK" = 1 ] && cg2=$(hybrid_cgroup2) && [ -n "$cg2" ]; then
		wrapper=$WORK/$name-wrapper.sh
		cat > "$wrapper" <<EOF
#!/bin/sh
exec unshare --mount --propagation private -- /bin/sh -c 'mount -t tmpfs -o size=64k berth-hide-cgroup2 "\$1" && shift && exec "\$@"' sh '$cg2' '$bin' "\$@"
EOF
		chmod 755 "$wrapper"
		bin=$wrapper
	fi
	out=$WORK/$name
	mkdir -p "$out/tmp"
	pass=0 fail=0 skip=0
	fpass=0 ffail=0 fskip=0
	failed_tests=""
	table=$out/results.txt
	: > "$table"
	for t in $TESTS; do
		exe=${t%.go}.t
		test_name=$(basename "${t%.go}")
		log=$out/$test_name.tap
		rc=0
		# TMPDIR keeps the tests' bundles (ioutil.TempDir) inside $WORK.
		TMPDIR=$out/tmp RUNTIME=$bin timeout 300 "./$exe" > "$log" 2> "$out/$test_name.err" || rc=$?
		detach_mounts_under "$out/tmp" 2>> "$out/$test_name.err"
		p=$(grep -cE '^ok [0-9]+' "$log" || true)
		s=$(grep -cE '^ok [0-9]+.*# *(SKIP|skip)' "$log" || true)
		f=$(grep -cE '^not ok [0-9]+' "$log" || true)
		plan=$(grep -oE '^1\.\.[0-9]+' "$log" | tail -n 1 | cut -c4-)
		status=PASS
		if [ "$rc" != 0 ] || [ -z "$plan" ] || [ "$f" != 0 ]; then
			status=FAIL
		elif [ "$plan" = 0 ] && grep -q '"error"' "$log"; then
			status=FAIL # tap-go prints an error diagnostic and an empty plan
		elif [ "$p" = "$s" ]; then
			status=SKIP
		fi
		# A failed program that printed no "not ok" counts as one failed assertion.
		if [ "$status" = FAIL ] && [ "$f" = 0 ]; then f=1; fi
		pass=$((pass + p - s)); skip=$((skip + s)); fail=$((fail + f))
		case $status in
		PASS) fpass=$((fpass + 1)) ;;
		SKIP) fskip=$((fskip + 1)) ;;
		FAIL) ffail=$((ffail + 1)); failed_tests="$failed_tests $test_name($f)" ;;
		esac
		printf '%s %s rc=%s plan=%s ok=%s skip=%s notok=%s\n' "$status" "$test_name" "$rc" "${plan:-none}" "$((p - s))" "$s" "$f" >> "$table"
	done
	{
		echo "== $name ($rt)"
		echo "runtime-tools $name assertions: $pass passed, $fail failed, $skip skipped"
		echo "runtime-tools $name test programs: $fpass passed, $ffail failed, $fskip skipped"
		echo "failed:$failed_tests"
	} | tee -a "$SUMMARY"
done
# Remove leftover berth-test-rt cgroups (deepest first).
for h in /sys/fs/cgroup/*/; do
	find "$h" -depth -type d -name 'berth-test-rt*' -exec rmdir {} \; 2>/dev/null || true
	find "$h" -depth -type d -path '*berth-test-rt*' -exec rmdir {} \; 2>/dev/null || true
done
echo "# logs and summary in $WORK" >&2
