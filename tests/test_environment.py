"""The installs: environment.yml (conda) and pyproject.toml (pip) describe the learner's one, and
constraints.txt pins every distribution the course installs to a version pyproject.toml allows."""

import pathlib
import re
import subprocess
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    return {canonicalize_name(name): version for name, version in pins.items()}


def test_conda_installs_what_the_learner_gets_from_pip():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_side = {spec for spec in pip_section if not spec.startswith("-")}
    assert conda_side == set(PROJECT["dependencies"])
    assert "-e ." in pip_section and "-c constraints.txt" in pip_section
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert python.removeprefix("python") == PROJECT["requires-python"]


def test_the_learner_install_has_no_maintainer_or_instructor_tools():
    learner = {canonicalize_name(Requirement(spec).name) for spec in PROJECT["dependencies"]}
    extras = PROJECT["optional-dependencies"]
    for role in ("nbgrader", "sphinx", "pytest", "playwright"):
        assert role not in learner, f"{role} is in the learner's install"
    assert "eanet-course[book,instructor]" in extras["dev"], "make test needs both extras"
    assert {Requirement(s).name for s in extras["instructor"]} == {"nbgrader"}


def test_constraints_pin_every_requirement_to_a_version_pyproject_allows():
    pins = _pins()
    extras = [s for specs in PROJECT["optional-dependencies"].values() for s in specs]
    for spec in [*PROJECT["dependencies"], *extras]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        if name == "eanet-course" or (requirement.marker and not requirement.marker.evaluate()):
            continue
        assert name in pins, f"constraints.txt does not pin {name}: run `make constraints`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {spec!r}")
    assert not {"pip", "setuptools", "wheel"} & set(pins), "installer tools are not pinned"


def test_constraints_match_what_is_installed_here():
    """The environment that runs the tests is the one constraints.txt describes."""
    from importlib.metadata import PackageNotFoundError, version

    different = {}
    for name, pinned in _pins().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # e.g. a marker excludes it on this Python
        if installed != pinned:
            different[name] = (pinned, installed)
    assert not different, f"(pinned, installed): {different}; `make test` installs the pins"


def test_refresh_writes_the_same_pins_from_this_environment(tmp_path):
    out = tmp_path / "constraints.txt"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "refresh-constraints.py"),
                           str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    body = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    names = [line.split("==")[0] for line in body]
    assert names == sorted(names) and all(re.fullmatch(r"[\w.-]+==[\w.+!-]+", b) for b in body)
    assert set(names) == set(_pins())
