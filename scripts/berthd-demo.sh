#!/usr/bin/env bash
# The README's demo: start berthd, load the busybox test image into it and run a
# container through the Docker Engine API (curl on the Unix socket: the same requests
# `docker run --rm` sends), printing its output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${1:-target/release}
sock=${BERTH_SOCKET:-/run/berth/berth.sock}
fixtures=${BERTH_FIXTURES:-/var/cache/berth-fixtures}
scripts/berthd-start.sh "$bin"
api() { curl -fsS --unix-socket "$sock" "$@"; }
echo "+ POST /images/load ($fixtures/busybox/docker-archive.tar)"
api -X POST -H 'Content-Type: application/x-tar' --data-binary @"$fixtures/busybox/docker-archive.tar" http://berth/v1.51/images/load
echo "+ POST /containers/create, /start, /wait, GET /logs, DELETE"
id=$(api -X POST -H 'Content-Type: application/json' \
    -d '{"Image":"busybox","Cmd":["echo","Hello from a Berth container"],"HostConfig":{"NetworkMode":"none"}}' \
    http://berth/v1.51/containers/create | sed -e 's/.*"Id":"\([0-9a-f]*\)".*/\1/')
api -X POST "http://berth/v1.51/containers/$id/start"
api -X POST "http://berth/v1.51/containers/$id/wait"
echo
api "http://berth/v1.51/containers/$id/logs?stdout=1&stderr=1" | tail -c +9
api -X DELETE "http://berth/v1.51/containers/$id"
echo "berthd keeps running: DOCKER_HOST=unix://$sock docker ps"
