#!/usr/bin/env bash
# Refresh the UI screenshots in docs/img/ (ui-*.png): the browser tests take them as they go.
set -euo pipefail
cd "$(dirname "$0")/.."
DOMARKX_UI_SHOTS=docs/img python -m pytest -q -p no:cacheprovider tests/ui/test_browser.py "$@"
