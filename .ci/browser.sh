#!/usr/bin/env bash
# The browser the UI tests drive: Debian's chromium (and chromium-driver, for anyone who
# prefers WebDriver). Playwright's Python package talks to it over the DevTools protocol;
# `playwright install` is never run, so no browser build is downloaded.
#
#   .ci/browser.sh start   install chromium if missing, print `export DOMARKX_CHROMIUM=…`
#   .ci/browser.sh stop    nothing to stop (each test run starts and ends its own browser)
#
# tests/ui/conftest.py finds the browser through DOMARKX_CHROMIUM, else `chromium` on PATH.
# With CI set, a missing browser fails the UI tests instead of skipping them. Use it as
#   eval "$(.ci/browser.sh start)"
set -euo pipefail

install() {
    command -v chromium >/dev/null 2>&1 && return 0
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } \
        || { echo "error: could not install chromium with apt-get" >&2; return 1; }
}

case "${1:-start}" in
    start)
        install
        echo "export DOMARKX_CHROMIUM=$(command -v chromium)"
        ;;
    stop) ;;
    *)
        echo "usage: $0 start|stop" >&2
        exit 2
        ;;
esac
