# Berth developer and CI entry points. `.ci/run` installs prerequisites and runs `make test`.
#
#   make build         release build of the whole workspace, and the shipped berth-runtime
#   make runtime       target/runtime/berth-runtime only (static PIE, size-optimised)
#   make test          fmt check + clippy -D warnings + unit/integration tests + compat checks
#                      (podman, dockerd, containerd) + conformance suite
#   make demo          build, fixtures, run a first container with berth-runtime
#   make conformance   runtime conformance suite against berth-runtime, runc and crun
#   make compat-berthd berthd driven by real Docker clients: the docker CLI 28
#                      (scripts/berthd-compat.sh) and the Python docker SDK +
#                      Testcontainers (tests/compat/run-python.sh)
#   make daemon        start berthd (release build) on /run/berth/berth.sock in the background
#   make bench-daemon  bench/daemon-run.sh (berthd vs dockerd vs podman)
#   make fixtures      build the offline test images (tests/fixtures/build-images.sh)
#   make bench         bench/runtime-run.sh (berth-runtime vs crun vs runc)
#   make bench-pull    bench/image-pull.sh (image pull: berth-images vs podman vs dockerd)
#   make vm-matrix     the kernel matrix: runtime tests + conformance in qemu guests with
#                      Debian's kernel: cgroup v2 + AppArmor, SELinux, hybrid (tests/vm)
#   make vm-ci         its cgroup v2 + AppArmor and SELinux configurations (part of `make
#                      test`; the hybrid one is this host, where the tests run anyway)
#   make vm-v2         only its cgroup v2 + AppArmor configuration
#   make vm-tmp-checkout  the guest smoke from a checkout under /tmp (part of make vm-ci)
#
# Variables: CARGO, CARGO_FLAGS (CI passes --locked), CARGO_TARGET_DIR, TEST_THREADS,
# BERTH_FIXTURES (fixture cache, default /var/cache/berth-fixtures).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO ?= cargo
CARGO_FLAGS ?=
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BERTH_RUNTIME ?= $(abspath $(TARGET_DIR)/runtime/berth-runtime)
BERTH_FIXTURES ?= /var/cache/berth-fixtures
export BERTH_FIXTURES BERTH_RUNTIME

# Test threads: unset = the runner's default (one per CPU). Tests that cannot run
# concurrently must serialise themselves (nextest test groups in .config/nextest.toml,
# or a lock) rather than rely on TEST_THREADS=1.
TEST_THREADS ?=
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)


.PHONY: compat-berthd daemon bench-daemon fuzz vm-smoke vm-tmp-checkout vm-matrix vm-ci vm-v2 bench-pull all build runtime test fmt-check clippy unit compat conformance demo fixtures fixtures-debian peers bench clean-peers

all: build

build: runtime
	$(CARGO) build $(CARGO_FLAGS) --release --workspace

# The berth-runtime binary as shipped: size-optimised static PIE (see [profile.runtime]).
runtime:
	$(CARGO) rustc $(CARGO_FLAGS) --profile runtime -p berth-runtime-cli --bin berth-runtime -- -C target-feature=+crt-static

# Tests run in the dev/test profile (fast to compile, debug assertions on); the
# release binary is built separately for compat checks, conformance and the demo.
test: fmt-check clippy build unit compat compat-berthd conformance vm-ci

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy $(CARGO_FLAGS) --workspace --all-targets -- -D warnings

unit:
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run $(CARGO_FLAGS) --workspace --no-fail-fast $(if $(TEST_THREADS),--test-threads $(TEST_THREADS))
	$(CARGO) test $(CARGO_FLAGS) --workspace --doc
else
	$(CARGO) test $(CARGO_FLAGS) --workspace --no-fail-fast $(if $(TEST_THREADS),-- --test-threads $(TEST_THREADS))
endif

compat: build fixtures
	scripts/compat-test.sh $(BERTH_RUNTIME)

# berthd under real Docker clients (they fail, not skip, when their client is missing).
compat-berthd: build fixtures
	BERTH_REQUIRE=docker-cli scripts/berthd-compat.sh $(abspath $(TARGET_DIR))/release
	BERTH_REQUIRE=python-sdk tests/compat/run-python.sh $(abspath $(TARGET_DIR))/release
	scripts/berthd-tls.sh $(abspath $(TARGET_DIR))/release
	BERTH_REQUIRE=python-sdk tests/compat/run-stress.sh $(abspath $(TARGET_DIR))/release

# The conformance suite (crates/conformance) against berth-runtime, and against runc and
# crun to prove the checks themselves; prints one TAP-like line per case and a summary.
conformance: build fixtures
	$(CARGO) test $(CARGO_FLAGS) -p berth-conformance --test runtimes -- --nocapture --test-threads 1

# berthd in the background on its default socket (the README's demo).
daemon: build
	scripts/berthd-start.sh $(abspath $(TARGET_DIR))/release

bench-daemon: build fixtures
	bench/daemon-run.sh $(abspath $(TARGET_DIR))/release

demo: build fixtures
	scripts/berthd-demo.sh $(abspath $(TARGET_DIR))/release

fixtures:
	tests/fixtures/build-images.sh

fixtures-debian:
	tests/fixtures/build-images.sh --with-debian

peers:
	scripts/setup-peers.sh configure
	scripts/setup-peers.sh load-podman

clean-peers:
	scripts/setup-peers.sh down

bench: build fixtures
	bench/runtime-run.sh $(BERTH_RUNTIME)

bench-pull: fixtures-debian
	bench/image-pull.sh

# berth-runtime under Debian 12's own kernel (6.1) in a qemu guest, on a pure cgroup v2
# layout and on this host's hybrid layout (tests/vm, the start of issue 4's kernel matrix;
# needs qemu-system-x86; about 15 s per boot under software emulation).
# Fuzz berth-images' parsers and tar applier (cargo-fuzz, nightly), FUZZ_SECONDS per target.
fuzz:
	crates/images/fuzz/run.sh $(FUZZ_SECONDS)
	cd crates/api/fuzz && cargo +nightly fuzz run request_decoders -- -max_total_time=$(or $(FUZZ_SECONDS),60)

vm-matrix: runtime fixtures
	tests/vm/matrix.sh

vm-ci: runtime fixtures vm-tmp-checkout
	tests/vm/matrix.sh v2-apparmor selinux

vm-v2: runtime fixtures
	tests/vm/matrix.sh v2-apparmor

# The guest mounts a fresh tmpfs on /tmp: run.sh shares the checkout and the paths it is
# told back. Runs the guest smoke from a copy of tests/vm under /tmp, with the runtime
# and fixture shared from another /tmp directory, and checks that an unshared one is named.
vm-tmp-checkout: runtime fixtures
	tests/vm/tmp-checkout.sh

vm-smoke: runtime fixtures
	tests/vm/run.sh --cmdline cgroup_no_v1=all -- sh tests/vm/runtime-smoke.sh
	tests/vm/run.sh -- $(BERTH_RUNTIME) --root /run/br run --bundle $(BERTH_FIXTURES)/busybox/bundle vm-hybrid
