#!/usr/bin/env bash
# Set up a Debian 12 machine for Berth and build, demo or test it.
#
# Usage (as root): scripts/setup.sh demo|test|deps
#
#   demo   install what building needs, build everything, build the busybox test
#          image, start berthd and run a first container through its API
#   test   install everything the whole test suite needs (peer engines included), then
#          run it: `make test` (fmt, clippy, unit and integration tests, real-client
#          checks with podman/dockerd/containerd, conformance suite)
#   deps   only install the packages and the Rust toolchain
#
# Idempotent: packages already present are not reinstalled. Package scripts are not
# allowed to start daemons (docker, containerd); the tests start their own.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
export BERTH_FIXTURES="${BERTH_FIXTURES:-/var/cache/berth-fixtures}"

mode="${1:-}"
case "$mode" in demo | test | deps) ;; *)
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
    exit 2
    ;;
esac
[[ $(id -u) -eq 0 ]] || { echo "setup.sh: run as root (containers need namespaces and cgroups)" >&2; exit 1; }

# What building berth-runtime and the busybox fixture needs.
BUILD_PACKAGES=(
    build-essential pkg-config libseccomp-dev ca-certificates curl
    busybox-static skopeo umoci jq util-linux time
)
# What the whole test suite needs on top: the peer engines and runtimes it compares
# against and drives, the registry and image tools, and the benchmark tools.
TEST_PACKAGES=(
    runc crun podman conmon catatonit slirp4netns fuse-overlayfs uidmap
    containerd docker.io docker-registry containernetworking-plugins
    debootstrap hyperfine iproute2 nftables
    # berthd's client suites: a venv for the Python docker SDK and Testcontainers
    python3-venv
    golang-go golang-github-opencontainers-runtime-tools-dev
    # the kernel matrix (tests/vm): qemu guests with Debian's kernel, AppArmor's
    # parser for Berth's profile, the reference SELinux policy and its tools
    qemu-system-x86 apparmor selinux-policy-default policycoreutils selinux-utils
)

install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        echo "setup: all $# packages present"
        return
    fi
    echo "setup: installing ${missing[*]}"
    local policy_added=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        policy_added=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    [[ $policy_added -eq 1 ]] && rm -f /usr/sbin/policy-rc.d
    return 0
}

install_rust() {
    if ! command -v cargo >/dev/null && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null; then
        # Debian 12's rustc is older than the workspace's rust-version; use rustup.
        echo "setup: cargo not found; installing rustup (stable, minimal profile)"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
            sh -s -- -y --profile minimal --component rustfmt,clippy
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if command -v rustup >/dev/null; then
        rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
        rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
    fi
    cargo --version
}

install_packages "${BUILD_PACKAGES[@]}"
[[ "$mode" == demo ]] || install_packages "${TEST_PACKAGES[@]}"
install_rust

case "$mode" in
    deps) ;;
    demo) make demo ;;
    test) make test ${CARGO_FLAGS:+CARGO_FLAGS="$CARGO_FLAGS"} ;;
esac
