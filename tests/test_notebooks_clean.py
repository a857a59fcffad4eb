"""Notebooks are committed without outputs, in order, and each links to the next step."""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(
    p for folder in ("notebooks", "solutions", "exercises") for p in (ROOT / folder).glob("*.ipynb")
)


def test_the_course_has_its_eleven_notebooks_in_order():
    names = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert [n[:2] for n in names] == [f"{i:02d}" for i in range(11)], names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    dirty = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"


def _notebook_links(path):
    """The relative ``.ipynb`` targets of the markdown links in ``path``."""
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return [target for target in re.findall(r"\]\(([^)\s#]+\.ipynb)", text)
            if "://" not in target]


def test_each_notebook_links_to_the_next_one():
    names = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    for name, following in zip(names, names[1:]):
        links = [pathlib.PurePosixPath(t).name for t in _notebook_links(ROOT / "notebooks" / name)]
        assert following in links, f"notebooks/{name} does not link to {following}: {links}"


def test_each_notebook_links_to_its_exercise():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"../exercises/{path.name}" in _notebook_links(path), (
            f"notebooks/{path.name} does not link to its exercise ../exercises/{path.name}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_links_point_to_existing_notebooks(path):
    broken = [t for t in _notebook_links(path) if not (path.parent / t).is_file()]
    assert not broken, f"{path.parent.name}/{path.name} links to missing notebooks: {broken}"
