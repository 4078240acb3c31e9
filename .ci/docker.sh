#!/usr/bin/env bash
# A private Docker engine for the docker_sandbox tests, and the images they use.
#
#   eval "$(.ci/docker.sh start)"   # install if needed, start, build the test images; prints exports
#   .ci/docker.sh env               # print the exports again for an engine already started
#   .ci/docker.sh stop              # stop the engine and delete its folder
#
# The exports (the tests find the engine and the images through them):
#   DOCKER_HOST                  unix:// socket of this engine (never /var/run/docker.sock)
#   DOMARKX_TEST_IMAGE           a busybox image built offline (root user, no /workspace)
#   DOMARKX_TEST_IMAGE_NONROOT   the same with USER app (uid 1000), so the work dir must be made writable
#
# Everything lives in one folder, $DOMARKX_DOCKER_DIR (default: /tmp/domarkx-docker-<hash of this
# checkout>), so several checkouts on one machine each get their own engine. No network is needed:
# the images come from Debian's busybox-static, imported with `docker import` and `docker build`.
# Logs go to stderr and to $DOMARKX_DOCKER_DIR/dockerd.log; only the exports go to stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="${DOMARKX_DOCKER_DIR:-/tmp/domarkx-docker-$(printf %s "$ROOT" | md5sum | cut -c1-8)}"
SOCKET="$DIR/docker.sock"
PIDFILE="$DIR/dockerd.pid"
IMAGE="domarkx-test/busybox:1"
IMAGE_NONROOT="domarkx-test/busybox-nonroot:1"
export DOCKER_HOST="unix://$SOCKET"
export DOCKER_BUILDKIT=0 # the classic builder needs no buildx and pulls nothing

say() { echo "docker.sh: $*" >&2; }

exports() {
    printf 'export DOCKER_HOST=%q\n' "$DOCKER_HOST"
    printf 'export DOMARKX_TEST_IMAGE=%q\n' "$IMAGE"
    printf 'export DOMARKX_TEST_IMAGE_NONROOT=%q\n' "$IMAGE_NONROOT"
}

install_packages() {
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    [ -x /bin/busybox ] || missing+=(busybox-static)
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null; }
}

running() {
    [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null && docker version >/dev/null 2>&1
}

start_engine() {
    mkdir -p "$DIR"
    say "starting dockerd on $SOCKET"
    # --bridge=none and no iptables: containers get no network unless a test makes one.
    setsid dockerd \
        --host="$DOCKER_HOST" --data-root="$DIR/data" --exec-root="$DIR/exec" --pidfile="$PIDFILE" \
        --storage-driver=overlay2 --iptables=false --ip6tables=false --bridge=none \
        --exec-opt native.cgroupdriver=cgroupfs \
        </dev/null >"$DIR/dockerd.log" 2>&1 &
    local started=$EPOCHREALTIME waited=0
    until docker version >/dev/null 2>&1; do
        if ! kill -0 $! 2>/dev/null || [ $waited -ge 600 ]; then
            say "dockerd did not start; the end of $DIR/dockerd.log:"
            tail -n 20 "$DIR/dockerd.log" >&2
            return 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    say "engine ready after $(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
}

build_images() {
    if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
        say "building $IMAGE from /bin/busybox"
        local rootfs="$DIR/rootfs"
        rm -rf "$rootfs"
        mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app}
        cp /bin/busybox "$rootfs/bin/busybox"
        local applet
        for applet in $("$rootfs/bin/busybox" --list-full); do
            [ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n' >"$rootfs/etc/passwd"
        printf 'root:x:0:\napp:x:1000:\n' >"$rootfs/etc/group"
        chmod 1777 "$rootfs/tmp"
        chown 1000:1000 "$rootfs/home/app"
        tar -C "$rootfs" --numeric-owner -c . | docker import -c 'CMD ["sh"]' - "$IMAGE" >/dev/null
        rm -rf "$rootfs"
    fi
    if ! docker image inspect "$IMAGE_NONROOT" >/dev/null 2>&1; then
        say "building $IMAGE_NONROOT"
        local context="$DIR/context"
        mkdir -p "$context"
        printf 'FROM %s\nUSER app\n' "$IMAGE" >"$context/Dockerfile"
        # the classic builder warns that it is deprecated on stderr: keep it for a failure
        docker build -q -t "$IMAGE_NONROOT" "$context" >/dev/null 2>"$DIR/build.log" \
            || { cat "$DIR/build.log" >&2; return 1; }
        rm -rf "$context"
    fi
}

stop_engine() {
    if [ -f "$PIDFILE" ]; then
        local pid
        pid="$(cat "$PIDFILE")"
        if kill "$pid" 2>/dev/null; then
            local waited=0
            while kill -0 "$pid" 2>/dev/null && [ $waited -lt 300 ]; do
                sleep 0.1
                waited=$((waited + 1))
            done
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    # dockerd leaves its network namespace and overlay mounts behind; unmount before deleting.
    if [ -d "$DIR" ]; then
        local mountpoint
        for mountpoint in $(awk -v dir="$DIR" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r); do
            umount "$mountpoint" 2>/dev/null || umount -l "$mountpoint" || true
        done
        rm -rf "$DIR"
    fi
    say "stopped; removed $DIR"
}

case "${1:-}" in
start)
    install_packages
    running || start_engine
    build_images
    exports
    ;;
env)
    exports
    ;;
stop)
    stop_engine
    ;;
*)
    echo "usage: $0 start|env|stop" >&2
    exit 2
    ;;
esac
