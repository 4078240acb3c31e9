#!/usr/bin/env bash
# The OCI registry the transfer tests (tests/transfer) push to and pull from.
#
#   .ci/registry.sh start   install Debian's docker-registry (the CNCF distribution registry),
#                           apache2-utils (htpasswd -B) and openssl if missing, then print the
#                           variables the tests read, for `eval "$(.ci/registry.sh start)"`:
#                             DOMARKX_REGISTRY_BIN  the registry binary
#   .ci/registry.sh stop    nothing to stop: each test starts and stops its own registry
#                           processes on 127.0.0.1 (plain HTTP, TLS with a self-signed
#                           certificate and htpasswd auth, token auth with its token service).
#
# Under CI=1 a missing registry fails the tests instead of skipping them.
set -euo pipefail

install() {
    local missing=()
    command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
    command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
    command -v openssl >/dev/null 2>&1 || missing+=(openssl)
    [ ${#missing[@]} -eq 0 ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } \
        || { echo "error: could not install ${missing[*]}" >&2; return 1; }
}

case "${1:-}" in
    start)
        install
        echo "export DOMARKX_REGISTRY_BIN=$(command -v docker-registry)"
        ;;
    stop)
        ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
