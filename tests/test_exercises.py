"""solutions/ generates exercises/ and instructor/source/ with nbgrader: deterministic, checked
for staleness, stubs only, and graded the way the cell conventions say."""

import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from eanet_course import exercises
from eanet_course.checks import CheckResult
from eanet_course.exercises import BEGIN, END, POINTS

pytest.importorskip("nbgrader", reason="exercises build uses nbgrader: the [instructor] extra "
                                       "(nbgrader 0.9.6+, Python 3.11+)")

ROOT = Path(__file__).resolve().parents[1]
SECRET = "y = 2 * x  # the secret recipe"
SOLUTION = f'''def f(x):
    """Doc."""
    {BEGIN}
    # HINT: return twice x.
    {SECRET}
    return y
    {END}'''


@pytest.fixture
def course(tmp_path):
    """A copy of the course's solutions/, exercises/ and instructor/source/ in a temp folder."""
    for folder in ("solutions", "exercises", "instructor/source"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


def write_solution(root: Path, name: str, *cells) -> Path:
    """A solution notebook: each cell a code source, or ("markdown", source)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    for i, cell in enumerate(cells):
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source))
        nb.cells[-1]["id"] = f"c{i}"
    path = root / "solutions" / name
    path.parent.mkdir(exist_ok=True)
    nbformat.write(nb, path)
    return path


def cells_of(path: Path):
    return nbformat.read(path, as_version=4).cells


def grading(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


TASKS = [
    ("markdown", "# Exercise 01 · Twice"),
    "from eanet_course import checks",
    ("markdown", "## ★ Build: twice"),
    SOLUTION,
    "checks.check_twice(f)",
    ("markdown", "## ★★ Predict: f(3)\nWhat does `f(3)` return?"),
    ("markdown", "**Your prediction:** it returns 6."),
    "f(3)",
    ("markdown", "<details><summary>Answer</summary>6</details>"),
    ("markdown", "## ★★★ Explore: larger x\n### A sub-heading keeps the section open"),
    "for x in range(3):\n    print(f(x))",
    ("markdown", "**Your findings:**"),
    ("markdown", "## Summary"),
    "print('done')",
]


def test_the_committed_generated_files_are_up_to_date():
    """What `python -m eanet_course exercises check` runs in CI."""
    done = subprocess.run([sys.executable, "-m", "eanet_course", "exercises", "check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "up to date" in done.stdout


def test_every_solution_has_its_exercise_and_nbgrader_source():
    solutions = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    assert solutions and all(name[:2].isdigit() for name in solutions), solutions
    assert solutions == sorted(p.stem for p in (ROOT / "exercises").glob("*.ipynb"))
    assert solutions == sorted(p.name for p in (ROOT / "instructor" / "source").iterdir())
    for name in solutions:
        text = (ROOT / "exercises" / f"{name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text and "END SOLUTION" not in text, name
        assert "NotImplementedError" in text and "checks.check_" in text, name
        source = ROOT / "instructor" / "source" / name / f"{name}.ipynb"
        graded = [grading(c) for c in cells_of(source)
                  if grading(c).get("grade") and not grading(c).get("solution")]
        assert graded and all(g["grade_id"].startswith(f"{name[:2]}_check_") for g in graded), name


def test_the_metadata_follows_the_cell_conventions(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", *TASKS)
    exercises.build(tmp_path)
    meta = [grading(c) for c in cells_of(tmp_path / "solutions" / "01_twice.ipynb")]
    assert meta[3] == {"grade": False, "grade_id": "01_f", "locked": False, "schema_version": 3,
                       "solution": True, "task": False}
    assert meta[4] == {"grade": True, "grade_id": "01_check_twice", "locked": True,
                       "points": POINTS["checker"], "schema_version": 3, "solution": False,
                       "task": False}
    assert meta[6] | {"grade_id": None} == {
        "grade": True, "grade_id": None, "locked": False, "points": POINTS["prediction"],
        "schema_version": 3, "solution": True, "task": False}
    assert meta[6]["grade_id"] == "01_prediction_1" and meta[11]["grade_id"] == "01_findings_1"
    assert meta[11]["points"] == POINTS["findings"] and meta[11]["solution"]
    assert meta[10] == {}, "the Explore scaffold stays editable"
    locked = [i for i, m in enumerate(meta) if m.get("locked") and not m.get("grade")]
    assert locked == [0, 1, 2, 5, 7, 8, 9, 12, 13]  # the Summary heading closed the section
    assert meta[0]["grade_id"] == "01_c0"


def test_each_region_becomes_nbgraders_stub_and_nothing_inside_it_leaks(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", *TASKS)
    exercises.build(tmp_path)
    exercise = tmp_path / "exercises" / "01_twice.ipynb"
    cells = cells_of(exercise)
    # Where it comes from is metadata; the learner reads one line, at the end, on the solution.
    assert nbformat.read(exercise, as_version=4).metadata[exercises.GENERATED] == {
        "from": "solutions/01_twice.ipynb", "by": "python -m eanet_course exercises build"}
    assert cells.pop().source == ("*The worked solution, for after you have tried: "
                                  "`solutions/01_twice.ipynb`.*")
    assert cells[0].source == nbformat.read(tmp_path / "solutions" / "01_twice.ipynb",
                                            as_version=4).cells[0].source
    assert cells[3].source == ('def f(x):\n    """Doc."""\n'
                               "    # YOUR CODE HERE\n    raise NotImplementedError()")
    assert cells[6].source == "**Your prediction:**\nYOUR ANSWER HERE"
    assert cells[11].source == "**Your findings:**\nYOUR ANSWER HERE"
    assert all("nbgrader" not in c.metadata for c in cells), "the learner's copy stays plain"
    text = exercise.read_text()
    for leak in ("HINT", "return twice x", SECRET, "return y", "it returns 6."):
        assert leak not in text
    namespace: dict = {}
    exec(cells[3].source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["f"](1)


class FakeChecks:
    """``checks`` with a check_twice that returns a fixed verdict."""

    def __init__(self, result: CheckResult):
        self.result = result

    def check_twice(self, fn):
        return self.result


def test_the_graded_cell_shows_the_feedback_then_raises_when_the_check_fails(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", *TASKS)
    exercises.build(tmp_path)
    source = cells_of(tmp_path / "instructor" / "source" / "01_twice" / "01_twice.ipynb")
    cell = source[4]
    assert cell.source.splitlines() == [
        "feedback = checks.check_twice(f)", "display(feedback)",
        'assert feedback, "check_twice has not passed: see its feedback above."']
    wrong, right = CheckResult(False, "✗ check_twice: not right yet."), CheckResult(True, "✓")
    for result in (wrong, right):
        shown = []
        namespace = {"checks": FakeChecks(result), "f": None, "display": shown.append}
        if result:
            exec(cell.source, namespace)
        else:
            with pytest.raises(AssertionError, match="check_twice has not passed"):
                exec(cell.source, namespace)
        assert shown == [result], "the feedback is shown, pass or fail"
    # The learner's own copy keeps the plain call, which never raises.
    assert cells_of(tmp_path / "exercises" / "01_twice.ipynb")[4].source == "checks.check_twice(f)"
    # Answers sit in solution regions in the source.
    assert source[6].source == f"**Your prediction:**\n{BEGIN}\nit returns 6.\n{END}"


def test_a_checker_result_kept_in_a_variable_is_asserted_by_that_name(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", "from eanet_course import checks", SOLUTION,
                   "result = checks.check_twice(f)\nresult")
    exercises.build(tmp_path)
    cell = cells_of(tmp_path / "instructor" / "source" / "01_twice" / "01_twice.ipynb")[2]
    assert cell.source.splitlines() == [
        "result = checks.check_twice(f)", "display(result)",
        'assert result, "check_twice has not passed: see its feedback above."']


def test_build_clears_outputs_and_is_byte_for_byte_deterministic(tmp_path):
    path = write_solution(tmp_path, "01_twice.ipynb", SOLUTION, "f(2)")
    nb = nbformat.read(path, as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("execute_result", {"text/plain": "4"})]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, path)
    written = exercises.build(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "exercises/01_twice.ipynb", "instructor/source/01_twice/01_twice.ipynb",
        "solutions/01_twice.ipynb"]
    first = {p: p.read_bytes() for p in written}
    for generated in ("exercises/01_twice.ipynb", "instructor/source/01_twice/01_twice.ipynb"):
        cell = next(c for c in cells_of(tmp_path / generated) if c.source == "f(2)")
        assert cell.outputs == [] and cell.execution_count is None, generated
    assert cells_of(path)[1].outputs, "the solution keeps its outputs: build adds metadata only"
    assert exercises.build(tmp_path) == []
    assert {p: p.read_bytes() for p in written} == first


def test_stale_names_edited_missing_orphan_and_unannotated_files(course):
    assert exercises.stale(course) == []
    solution = course / "solutions" / "04_double_normalization.ipynb"
    nb = nbformat.read(solution, as_version=4)
    nb.cells[0].source += "\nOne more sentence."
    nbformat.write(nb, solution)
    (course / "exercises" / "01_patches.ipynb").unlink()
    (course / "instructor" / "source" / "02_self_attention" / "02_self_attention.ipynb").unlink()
    shutil.copy(course / "exercises" / "02_self_attention.ipynb",
                course / "exercises" / "99_old.ipynb")
    shutil.copytree(course / "instructor" / "source" / "03_external_attention",
                    course / "instructor" / "source" / "98_gone")
    (course / "instructor" / "source" / "98_gone" / "03_external_attention.ipynb").rename(
        course / "instructor" / "source" / "98_gone" / "98_gone.ipynb")
    bare = nbformat.read(course / "solutions" / "03_external_attention.ipynb", as_version=4)
    for cell in bare.cells:
        cell.metadata.pop("nbgrader", None)
    nbformat.write(bare, course / "solutions" / "03_external_attention.ipynb")
    assert exercises.stale(course) == [
        "exercises/01_patches.ipynb",
        "instructor/source/02_self_attention/02_self_attention.ipynb",
        "solutions/03_external_attention.ipynb",  # its metadata is gone
        "exercises/04_double_normalization.ipynb",
        "instructor/source/04_double_normalization/04_double_normalization.ipynb",
        "exercises/99_old.ipynb",
        "instructor/source/98_gone/98_gone.ipynb",
    ]
    exercises.build(course)
    assert exercises.stale(course) == []
    assert not (course / "exercises" / "99_old.ipynb").exists()
    assert not (course / "instructor" / "source" / "98_gone").exists()


def test_the_check_command_fails_on_a_stale_file(course, monkeypatch, capsys):
    from eanet_course.cli import main

    (course / "instructor" / "source" / "03_external_attention" /
     "03_external_attention.ipynb").write_text("{}")
    # The command works on the package's own checkout; point it at the copy.
    monkeypatch.setattr(exercises, "_root", lambda root, default=exercises._root: default(course))
    assert main(["exercises", "check"]) == 1
    assert "instructor/source/03_external_attention" in capsys.readouterr().out
    assert main(["exercises", "build"]) == 0
    assert main(["exercises", "check"]) == 0


def test_without_nbgrader_build_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    from eanet_course.cli import main

    write_solution(tmp_path, "01_twice.ipynb", SOLUTION)
    monkeypatch.setitem(sys.modules, "nbgrader.preprocessors", None)  # import fails
    with pytest.raises(exercises.MissingNbgrader, match=r"pip install -e '\.\[instructor\]'"):
        exercises.build(tmp_path)
    monkeypatch.setattr(exercises, "_root", lambda root, default=exercises._root: default(tmp_path))
    assert main(["exercises", "check"]) == 2
    assert "Python 3.11 or newer" in capsys.readouterr().err


@pytest.mark.parametrize(("cells", "problem"), [
    ((f"{BEGIN}\nx = 1\n{END}",), "inside a function body"),
    ((f"def f():\n    {BEGIN}\n    return 1",), "never closed"),
    ((f"def f():\n    return 1\n    {END}",), "without"),
    ((f"def f():\n    {BEGIN}\n    {BEGIN}\n    {END}",), "inside another region"),
    ((f"def f():\n    {BEGIN} here\n    return 1\n    {END}",), "holds only"),
    (("def f():\n    return 1",), "no ### BEGIN SOLUTION"),
    ((SOLUTION, "r = checks.check_twice(f)\nprint(r)"), "alone in its cell"),
    ((SOLUTION, ("markdown", f"An answer:\n{BEGIN}\nsix\n{END}")), "starts with one of"),
])
def test_malformed_solutions_are_refused_with_the_fix(tmp_path, cells, problem):
    write_solution(tmp_path, "01_bad.ipynb", *cells)
    with pytest.raises(ValueError, match="01_bad.ipynb") as error:
        exercises.build(tmp_path)
    assert problem in str(error.value)
    assert not (tmp_path / "exercises").exists(), "a bad solution writes nothing"


def test_the_same_checker_twice_gets_two_grade_ids(tmp_path):
    write_solution(tmp_path, "01_twice.ipynb", SOLUTION, "checks.check_twice(f)",
                   "checks.check_twice(f)")
    exercises.build(tmp_path)
    ids = [grading(c)["grade_id"] for c in cells_of(tmp_path / "solutions" / "01_twice.ipynb")]
    assert ids == ["01_f", "01_check_twice", "01_check_twice_2"]


def test_a_folder_without_solutions_is_refused(tmp_path):
    with pytest.raises(ValueError, match="No solutions/ folder"):
        exercises.stale(tmp_path)
