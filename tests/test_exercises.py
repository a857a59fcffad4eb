"""exercises/ is generated from solutions/: deterministic, checked for staleness, stubs only."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from eanet_course import exercises
from eanet_course.exercises import BEGIN, END

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = f'''def f(x):
    """Doc."""
    {BEGIN}
    # HINT: return twice x.
    y = 2 * x
    return y
    {END}'''


@pytest.fixture
def course(tmp_path):
    """A copy of the course's solutions/ and exercises/ in a temporary folder."""
    for folder in ("solutions", "exercises"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def write_solution(root: Path, name: str, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i}"
    path = root / "solutions" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_the_committed_exercises_are_up_to_date():
    """What `python -m eanet_course exercises check` runs in CI."""
    done = subprocess.run([sys.executable, "-m", "eanet_course", "exercises", "check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_every_solution_has_its_exercise_and_checker_calls():
    solutions = sorted(p.name for p in (ROOT / "solutions").glob("*.ipynb"))
    assert [n[:2] for n in solutions] == [f"{i:02d}" for i in range(1, 8)], solutions
    assert solutions == sorted(p.name for p in (ROOT / "exercises").glob("*.ipynb"))
    for name in solutions:
        source = (ROOT / "exercises" / name).read_text()
        assert BEGIN not in source and END not in source, name
        assert "NotImplementedError" in source and "checks.check_" in source, name


def test_build_replaces_each_region_with_a_raise_that_carries_the_hint(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", "import math", SOLUTION)
    [path] = exercises.build(tmp_path)
    cells = nbformat.read(path, as_version=4).cells
    assert "Generated from `solutions/01_twice.ipynb`" in cells[0].source
    assert cells[2].source == ('def f(x):\n    """Doc."""\n'
                               "    raise NotImplementedError('return twice x.')")
    namespace: dict = {}
    exec(cells[2].source, namespace)
    with pytest.raises(NotImplementedError, match="return twice x"):
        namespace["f"](1)


def test_build_clears_outputs_and_is_byte_for_byte_deterministic(tmp_path):
    path = write_solution(tmp_path, "01_twice.ipynb", SOLUTION, "f(2)")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "4"})]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, path)
    [target] = exercises.build(tmp_path)
    first = target.read_bytes()
    cell = nbformat.read(target, as_version=4).cells[2]
    assert cell.outputs == [] and cell.execution_count is None
    exercises.build(tmp_path)
    assert target.read_bytes() == first


def test_stale_names_edited_missing_and_orphan_exercises(course):
    assert exercises.stale(course) == []
    solution = course / "solutions" / "04_double_normalization.ipynb"
    nb = nbformat.read(solution, as_version=4)
    nb.cells[0].source += "\nOne more sentence."
    nbformat.write(nb, solution)
    (course / "exercises" / "01_patches.ipynb").unlink()
    shutil.copy(course / "exercises" / "02_self_attention.ipynb",
                course / "exercises" / "99_old.ipynb")
    assert exercises.stale(course) == ["exercises/01_patches.ipynb",
                                       "exercises/04_double_normalization.ipynb",
                                       "exercises/99_old.ipynb"]
    exercises.build(course)
    assert exercises.stale(course) == []
    assert not (course / "exercises" / "99_old.ipynb").exists()


def test_the_check_command_fails_on_a_stale_exercise(course, monkeypatch):
    from eanet_course.cli import main

    (course / "exercises" / "03_external_attention.ipynb").write_text("{}")
    # The command works on the package's own checkout; point it at the copy.
    monkeypatch.setattr(exercises, "_root", lambda root, default=exercises._root: default(course))
    assert main(["exercises", "check"]) == 1
    assert main(["exercises", "build"]) == 0
    assert main(["exercises", "check"]) == 0


@pytest.mark.parametrize(("sources", "problem"), [
    ((f"{BEGIN}\nx = 1\n{END}",), "inside a function body"),
    ((f"def f():\n    {BEGIN}\n    return 1",), "never closed"),
    ((f"def f():\n    return 1\n    {END}",), "without"),
    ((f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}",), "inside another region"),
    (("def f():\n    return 1",), "no ### BEGIN SOLUTION"),
])
def test_malformed_solutions_are_refused_with_the_fix(tmp_path, sources, problem):
    write_solution(tmp_path, "01_bad.ipynb", *sources)
    with pytest.raises(ValueError, match="01_bad.ipynb") as error:
        exercises.build(tmp_path)
    assert problem in str(error.value)


def test_a_folder_without_solutions_is_refused(tmp_path):
    with pytest.raises(ValueError, match="No solutions/ folder"):
        exercises.stale(tmp_path)
