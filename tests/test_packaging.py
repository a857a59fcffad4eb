"""The package as a user meets it: its version, its program name in help, its licence."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

import eanet_course

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "eanet-course"


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_version_is_one_number_everywhere():
    assert _run(sys.executable, "-m", "eanet_course", "--version").split() == [
        "python", "-m", "eanet_course", eanet_course.__version__]
    assert importlib.metadata.version("eanet-course") == eanet_course.__version__


@pytest.mark.skipif(not SCRIPT.exists(), reason="the console script is not installed here")
def test_the_console_script_calls_itself_by_its_name():
    assert _run(str(SCRIPT), "--version").split() == ["eanet-course", eanet_course.__version__]
    assert _run(str(SCRIPT), "doctor", "--help").startswith("usage: eanet-course doctor")
    assert _run(sys.executable, "-m", "eanet_course", "--help").startswith(
        "usage: python -m eanet_course")


def test_the_licence_is_the_apache_2_text_pyproject_names():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
