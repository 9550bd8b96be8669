#!/usr/bin/env bash
# berthd on TCP: served only with mutual TLS. Checks, with a throw-away CA made here:
#   1. plain tcp:// is refused at start-up (and names the flags to use);
#   2. with --tlsverify, the docker CLI with a client certificate gets the API;
#   3. a client without a certificate, or with one from another CA, is refused.
# Usage: scripts/berthd-tls.sh [BIN_DIR] (default target/debug). Loopback only; the
# berthd started here is stopped by PID and its directory removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=$(cd "${1:-target/debug}" && pwd)
T=$(mktemp -d /tmp/berth-tls.XXXXXX)
pid=''
cleanup() {
    [[ -n "$pid" ]] && { kill "$pid" 2>/dev/null; sleep 0.3; kill -9 "$pid" 2>/dev/null; } || true
    rm -rf "$T"
}
trap cleanup EXIT
fail=0
check() { if "$@"; then echo "PASS $desc"; else echo "FAIL $desc"; fail=1; fi; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cd "$T"
mkcert() { # name cn ext ca cakey
    openssl req -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$4" -CAkey "$5" -CAcreateserial -out "$1-cert.pem" -days 2 -extfile "$1.ext" 2>/dev/null
}
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 2 -subj /CN=berth-test-ca 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca-key.pem -out other-ca.pem -days 2 -subj /CN=other-ca 2>/dev/null
mkcert server 127.0.0.1 $'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth' ca.pem ca-key.pem
mkcert client client 'extendedKeyUsage=clientAuth' ca.pem ca-key.pem
mkcert rogue rogue 'extendedKeyUsage=clientAuth' other-ca.pem other-ca-key.pem
mkdir -p good rogue
cp ca.pem good/ca.pem; cp client-cert.pem good/cert.pem; cp client-key.pem good/key.pem
cp ca.pem rogue/ca.pem; cp rogue-cert.pem rogue/cert.pem; cp rogue-key.pem rogue/key.pem

desc="plain tcp:// is refused"
out=$("$bin/berthd" --root "$T/root" --exec-root "$T/run" -H "tcp://127.0.0.1:$port" 2>&1) && rc=0 || rc=$?
check [ "$rc" != 0 ] && [[ "$out" == *"--tlsverify"* ]]

"$bin/berthd" --root "$T/root" --exec-root "$T/run" -H "tcp://127.0.0.1:$port" \
    --tlsverify --tlscacert ca.pem --tlscert server-cert.pem --tlskey server-key.pem >"$T/daemon.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -s --cacert ca.pem --cert client-cert.pem --key client-key.pem "https://127.0.0.1:$port/_ping" >/dev/null 2>&1 && break; sleep 0.1; done
desc="docker --tlsverify with a client certificate"
if command -v docker >/dev/null; then
    v=$(DOCKER_CERT_PATH=$T/good docker --tlsverify -H "tcp://127.0.0.1:$port" version --format '{{.Server.APIVersion}}' 2>&1 || true)
    check [ "$v" = 1.51 ]
else
    v=$(curl -s --cacert ca.pem --cert client-cert.pem --key client-key.pem "https://127.0.0.1:$port/_ping")
    check [ "$v" = OK ]
fi
desc="a client without a certificate is refused"
refused() { ! curl -s --max-time 5 "$@" "https://127.0.0.1:$port/_ping" >/dev/null 2>&1; }
check refused --cacert ca.pem
desc="a certificate from another CA is refused"
check refused --cacert ca.pem --cert rogue-cert.pem --key rogue-key.pem
[ $fail = 0 ] && echo "berthd-tls: all passed" || { echo "berthd-tls: FAILED"; tail -n 20 "$T/daemon.log"; exit 1; }
