#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed for the browser test.
# The course never downloads browsers through Playwright: it drives the system's /usr/bin/chromium.
# As root this installs the `chromium` package with apt-get; otherwise it names the command to run.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    echo "ensure-chromium: installing Debian's chromium package (needed by tests/test_browser.py)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "ensure-chromium: apt-get did not provide chromium." >&2; exit 1; }
    echo "ensure-chromium: $(chromium --version 2>/dev/null || echo chromium) installed."
else
    echo "ensure-chromium: chromium is missing and this user cannot install it." >&2
    echo "  Run:  sudo apt-get update && sudo apt-get install -y chromium" >&2
    echo "  (tests/test_browser.py is skipped until /usr/bin/chromium exists)" >&2
    exit 1
fi
