#!/usr/bin/env bash
# Make sure bubblewrap (`bwrap`) is there: `python -m eanet_course grade` runs each submission's
# code inside it, and tests/test_hostile_class.py grades a hostile class with it.
# Usage: scripts/ensure-bubblewrap.sh
#
# 1. A bwrap on the PATH is used as it is.
# 2. As root with apt-get (Debian, Ubuntu, CI), Debian's `bubblewrap` package is installed.
# 3. Otherwise it says how to install it and exits 0: grading then falls back to resource limits
#    without namespaces (weaker, and it says so), and the sandbox's tests skip.
# Tests never download anything: they use what this script made sure of.
set -euo pipefail

if command -v bwrap >/dev/null 2>&1; then
    exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-bubblewrap: installing Debian's bubblewrap package (the grading sandbox)..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
    command -v bwrap >/dev/null 2>&1 || { echo "ensure-bubblewrap: apt-get did not provide bwrap." >&2; exit 1; }
    echo "ensure-bubblewrap: $(bwrap --version) installed."
    exit 0
fi

echo "ensure-bubblewrap: bwrap is not installed and this user cannot install it." >&2
echo "  Install it with your system's package manager: Debian/Ubuntu 'sudo apt-get install -y bubblewrap'," >&2
echo "  Fedora 'sudo dnf install bubblewrap', Arch 'sudo pacman -S bubblewrap'." >&2
echo "  Without it, grading runs submissions under resource limits only (see the README, For instructors)." >&2
