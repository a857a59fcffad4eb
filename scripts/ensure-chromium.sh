#!/usr/bin/env bash
# Make sure a headless-capable Chromium is there for the browser test (tests/test_browser.py).
# Usage: scripts/ensure-chromium.sh [PYTHON]   (make test passes the virtualenv's python)
#
# 1. A system Chromium on the PATH (Debian's `chromium`) is used as it is.
# 2. As root with apt-get (Debian, Ubuntu, CI), Debian's `chromium` package is installed.
# 3. Otherwise (macOS, a user without root), Playwright's own Chromium is installed once with
#    PYTHON -m playwright install chromium, a set-up step that needs the network.
# Tests never download anything: they use what this script made sure of.
set -euo pipefail
PYTHON="${1:-python3}"

for name in chromium chromium-browser; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: installing Debian's chromium package (needed by tests/test_browser.py)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "ensure-chromium: apt-get did not provide chromium." >&2; exit 1; }
    echo "ensure-chromium: $(chromium --version 2>/dev/null || echo chromium) installed."
    exit 0
fi

echo "ensure-chromium: no system chromium; installing Playwright's Chromium (once, needs the network)..."
if ! "$PYTHON" -m playwright install chromium; then
    echo "ensure-chromium: could not install a browser for tests/test_browser.py." >&2
    echo "  Install one of: Debian/Ubuntu 'sudo apt-get install -y chromium'," >&2
    echo "  or '$PYTHON -m playwright install chromium' once you are online." >&2
    exit 1
fi
