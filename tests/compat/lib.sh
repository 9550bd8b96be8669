# Shared by tests/compat/run-python.sh and run-stress.sh (sourced; bash).
# Needs: VENV, BIN_DIR, FIXTURES, REPO set, and a log() function.

# ensure_venv: the venv with the docker SDK, Testcontainers and pytest (created once).
ensure_venv() {
    if [[ -x "$VENV/bin/python" ]] &&
        "$VENV/bin/python" -c 'import docker, testcontainers, pytest' 2>/dev/null; then
        return 0
    fi
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")" || return 1
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || return 1
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        docker testcontainers pytest || return 1
    "$VENV/bin/python" -c 'import docker, testcontainers, pytest'
}

# ensure_binaries: berthd and berth-monitor in BIN_DIR, or exit 1.
ensure_binaries() {
    [[ -x "$BIN_DIR/berthd" ]] || { log "error: no berthd in $BIN_DIR (cargo build -p berthd -p berth-monitor)"; exit 1; }
    [[ -x "$BIN_DIR/berth-monitor" ]] || { log "error: no berth-monitor in $BIN_DIR"; exit 1; }
}

# ensure_fixture: ARCHIVE = the busybox docker-archive (built when missing).
ensure_fixture() {
    ARCHIVE="$FIXTURES/busybox/docker-archive.tar"
    if [[ ! -f "$ARCHIVE" ]]; then
        log "building busybox fixture"
        BERTH_FIXTURES="$FIXTURES" "$REPO/tests/fixtures/build-images.sh" busybox || { log "error: fixture build failed"; exit 1; }
    fi
}
