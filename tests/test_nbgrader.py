"""instructor/ is an nbgrader course: a synthetic class goes from release to exported grades.

Every assignment is generated; two of them are autograded for three students: one with the
solutions' answers (full marks on the autograded cells), one who hands the stubs back (0), and
one whose answers crash, call ``sys.exit`` or loop forever and who adds a bare ``sys.exit()``
cell (0 on those cells, full marks on the answers that are right). The gradebook and the
exported CSV must hold exactly the scores the answers deserve. Grading is bounded: nbgrader
stops a cell after ``CELL_TIMEOUT`` seconds (here; 120 s in ``sandbox.toml``), and the
autograde process is given at most twice that per submission.

The course's config grades in the sandbox, each checker cell scored by a re-check in fresh
processes (eanet_course.grading): 01 has a NumPy answer (checker and answer in two processes),
05 also a Keras layer (checker and answer in one). Each re-check that imports TensorFlow costs
seconds, so two assignments are graded here, not three; tests/test_hostile_class.py grades a
hostile class on a NumPy-only assignment.
"""

import ast
import csv
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("nbgrader", reason="the [instructor] extra: nbgrader, Python 3.11+")

from nbgrader.api import Gradebook  # noqa: E402 -- after the skip

ROOT = Path(__file__).resolve().parents[1]
GRADED = ["01_patches", "05_multi_head_external_attention"]
STUDENTS = ("ada", "bob", "eve")  # right answers, the stubs, answers that crash, exit or loop
#: Seconds per cell while grading here: the looping answer costs this much, once.
CELL_TIMEOUT = 60
#: Seconds per call of an answer when it is re-checked out of the kernel.
CALL_LIMIT = 5
#: What eve writes in place of the stub, by mode, and the cell she adds after the imports.
BROKEN = {
    "exit": "import sys\nsys.exit(3)",
    "crash": 'raise RuntimeError("this answer crashes")',
    "loop": "while True:\n    pass",
}
BARE_EXIT = 'import sys\n\nsys.exit("a bare exit in a cell of its own")'
ANSWER = "The weights over the memory units sum to one for each patch."


def nbgrader(course: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``nbgrader *args`` in ``course`` as an instructor would: the environment's bin/ on
    the PATH (nbgrader runs ``alembic`` from there), this checkout's package importable."""
    path = [str(Path(sys.executable).parent), os.environ.get("PATH")]
    importable = [str(ROOT), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PATH": os.pathsep.join(filter(None, path)),
           "PYTHONPATH": os.pathsep.join(filter(None, importable))}
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"nbgrader {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def without_markers(source: str) -> str:
    return "\n".join(line for line in source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def plan(source_nb, modes):
    """Eve's answer mode for each solution cell of one notebook: all but the last broken.

    ``modes`` yields the next broken mode; the last answer of a notebook with several is right,
    so that a right answer follows broken ones in the same kernel.
    """
    ids = [meta(c)["grade_id"] for c in source_nb.cells
           if c.cell_type == "code" and meta(c).get("solution")]
    return {gid: "right" if (len(ids) > 1 and i == len(ids) - 1) else next(modes)
            for i, gid in enumerate(ids)}


def submission(release_nb, source_nb, mode_of) -> nbformat.NotebookNode:
    """The release notebook with each answer cell written according to ``mode_of(grade_id)``.

    The students leave out the ★★★ Explore scaffold (the only cells nbgrader lets them delete):
    its training runs would cost this test minutes and grade nothing.
    """
    answers = {meta(c)["grade_id"]: c.source for c in source_nb.cells if meta(c).get("solution")}
    nb = nbformat.from_dict(release_nb)
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or meta(c)]
    for cell in nb.cells:
        gid, mode = meta(cell).get("grade_id"), mode_of(meta(cell).get("grade_id"))
        if not meta(cell).get("solution") or mode == "stub":
            continue
        if cell.cell_type == "markdown":
            cell.source = cell.source.replace("YOUR ANSWER HERE", ANSWER)
        elif mode == "right":
            cell.source = without_markers(answers[gid])
        else:
            stub = next(line for line in cell.source.splitlines() if "NotImplementedError" in line)
            indent = stub[: len(stub) - len(stub.lstrip())]
            cell.source = cell.source.replace(
                stub, "\n".join(indent + line for line in BROKEN[mode].splitlines()))
    return nb


def dependencies(source_nb) -> dict[str, set[str]]:
    """For each autograded cell, the answer cells its checker call runs (the closure of names)."""
    solutions = {meta(c)["grade_id"]: c.source for c in source_nb.cells
                 if c.cell_type == "code" and meta(c).get("solution")}
    defined = {node.name: gid for gid, source in solutions.items()
               for node in ast.parse(source).body if hasattr(node, "name")}

    def used(source: str) -> set[str]:
        return {defined[n.id] for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.Name) and n.id in defined}

    graph = {gid: used(source) - {gid} for gid, source in solutions.items()}
    result = {}
    for cell in source_nb.cells:
        if cell.cell_type == "code" and meta(cell).get("grade"):
            todo, seen = list(used(cell.source)), set()
            while todo:
                gid = todo.pop()
                if gid not in seen:
                    seen.add(gid)
                    todo.extend(graph[gid])
            result[meta(cell)["grade_id"]] = seen
    return result


def copy_course(tmp_path_factory) -> Path:
    """The course directory as an instructor has it: the config, the sandbox's limits (each call
    of a looping answer stopped after CALL_LIMIT seconds when re-checked) and the generated
    source."""
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "instructor" / "nbgrader_config.py", course)
    limits = (ROOT / "instructor" / "sandbox.toml").read_text()
    assert "\ncall_seconds = 20\n" in limits
    (course / "sandbox.toml").write_text(
        limits.replace("\ncall_seconds = 20\n", f"\ncall_seconds = {CALL_LIMIT}\n"))
    shutil.copytree(ROOT / "instructor" / "source", course / "source")
    return course


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """A copy of instructor/, every assignment generated, three students autograded."""
    course = copy_course(tmp_path_factory)
    nbgrader(course, "generate_assignment", "*")

    sources = {name: nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
               for name in GRADED}
    mode_cycle = itertools.cycle(BROKEN)
    eve = {name: plan(sources[name], mode_cycle) for name in GRADED}
    modes = {(s, name): eve[name] if s == "eve" else {} for s in STUDENTS for name in GRADED}
    defaults = {"ada": "right", "bob": "stub", "eve": "right"}
    for name in GRADED:
        release = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
        for student in STUDENTS:
            chosen = modes[student, name]
            nb = submission(release, sources[name],
                            lambda gid, c=chosen, d=defaults[student]: c.get(gid, d))
            if student == "eve":
                first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
                bare = nbformat.v4.new_code_cell(BARE_EXIT)
                bare["id"] = "eve-exit"
                nb.cells.insert(first_code + 1, bare)
            target = course / "submitted" / student / name / f"{name}.ipynb"
            target.parent.mkdir(parents=True)
            nbformat.write(nb, target)

    start = time.perf_counter()
    # "*": every assignment that has submissions (one process: nbgrader takes seconds to start).
    nbgrader(course, "autograde", "*", f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
             timeout=len(STUDENTS) * len(GRADED) * 2 * CELL_TIMEOUT)
    seconds = time.perf_counter() - start
    nbgrader(course, "generate_feedback", "*")
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    print(f"\nautograde: {len(GRADED)} assignments x {len(STUDENTS)} students in {seconds:.0f} s")
    print((course / "grades.csv").read_text())
    return course, sources, modes, defaults


def expected_cells(sources, modes, defaults, student, name) -> dict[str, float]:
    """The points each autograded cell deserves: full when every answer it runs is right."""
    points = {meta(c)["grade_id"]: meta(c)["points"] for c in sources[name].cells
              if c.cell_type == "code" and meta(c).get("grade")}
    chosen = modes[student, name]
    return {gid: points[gid] if all(chosen.get(a, defaults[student]) == "right" for a in answers)
            else 0 for gid, answers in dependencies(sources[name]).items()}


def test_every_assignment_is_generated_for_release(graded_class):
    course = graded_class[0]
    names = sorted(p.name for p in (course / "source").iterdir())
    assert names == sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))
    for name in names:
        text = (course / "release" / name / f"{name}.ipynb").read_text()
        assert "BEGIN SOLUTION" not in text, name
        assert "NotImplementedError" in text and "checks.check_" in text, name


def test_eve_tries_every_way_to_break(graded_class):
    modes = graded_class[2]
    used = {mode for name in GRADED for mode in modes["eve", name].values()}
    assert set(BROKEN) <= used, used
    # A right answer runs after a broken one in the same kernel.
    assert any("right" in m.values() and len(set(m.values())) > 1
               for (student, _), m in modes.items() if student == "eve")


@pytest.mark.parametrize("student", STUDENTS)
def test_each_autograded_cell_gets_the_points_its_answers_deserve(graded_class, student):
    course, sources, modes, defaults = graded_class
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in GRADED:
            expected = expected_cells(sources, modes, defaults, student, name)
            assert expected, f"{name} has no autograded cell"
            if student == "ada":
                assert all(expected.values()), expected
            if student == "bob":  # a stub earns nothing: every checker runs an answer
                assert not any(expected.values()), expected
            got = {gid: gradebook.find_grade(gid, name, name, student).score for gid in expected}
            assert got == expected, (student, name)


def test_written_answers_wait_for_a_manual_grade_and_untouched_ones_score_zero(graded_class):
    course, sources = graded_class[:2]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for name in GRADED:
            answers = [meta(c)["grade_id"] for c in sources[name].cells
                       if c.cell_type == "markdown" and meta(c).get("grade")]
            for gid in answers:
                ada = gradebook.find_grade(gid, name, name, "ada")
                bob = gradebook.find_grade(gid, name, name, "bob")
                assert ada.needs_manual_grade and ada.auto_score is None, (name, gid)
                assert bob.auto_score == 0 and not bob.needs_manual_grade, (name, gid)


def test_the_stubs_score_zero_and_show_the_checkers_feedback(graded_class):
    course = graded_class[0]
    for name in GRADED:
        nb = nbformat.read(course / "autograded" / "bob" / name / f"{name}.ipynb", as_version=4)
        graded = [c for c in nb.cells if c.cell_type == "code" and meta(c).get("grade")]
        for cell in graded:
            text = "\n".join(str(o.get("evalue", "")) + str(o.get("text", ""))
                             + str(o.get("data", {}).get("text/plain", "")) for o in cell.outputs)
            assert "not implemented yet" in text, (name, meta(cell)["grade_id"], cell.outputs)
        feedback = (course / "feedback" / "bob" / name / f"{name}.html").read_text()
        assert "not implemented yet" in feedback, name


def test_a_bare_sys_exit_and_an_endless_loop_do_not_stop_grading(graded_class):
    """Their cells score 0 (above); here, every cell after them still ran."""
    course = graded_class[0]
    for name in GRADED:
        nb = nbformat.read(course / "autograded" / "eve" / name / f"{name}.ipynb", as_version=4)
        exit_cell = next(c for c in nb.cells if c.get("id") == "eve-exit")
        assert [o.get("ename") for o in exit_cell.outputs if o.output_type == "error"] == \
            ["SystemExit"], exit_cell.outputs
        # Every later cell ran: the kernel outlived the exit, the crash and the loop.
        assert all(c.execution_count for c in nb.cells[nb.cells.index(exit_cell):]
                   if c.cell_type == "code"), name


def test_the_exported_grades_are_the_expected_scores(graded_class):
    course, sources, modes, defaults = graded_class
    with open(course / "grades.csv", newline="") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    names = sorted(p.name for p in (course / "source").iterdir())
    assert set(rows) == {(name, s) for name in names for s in STUDENTS}
    for name in names:
        total = sum(meta(c).get("points", 0) for c in nbformat.read(
            course / "source" / name / f"{name}.ipynb", as_version=4).cells)
        for student in STUDENTS:
            row = rows[name, student]
            assert float(row["max_score"]) == total, (name, row)
            expected = (sum(expected_cells(sources, modes, defaults, student, name).values())
                        if name in GRADED else 0)
            assert float(row["score"]) == expected, (name, student, row)


def test_release_and_collect_go_through_the_exchange_inside_the_course(graded_class,
                                                                      tmp_path_factory):
    course, name = copy_course(tmp_path_factory), GRADED[0]
    student = tmp_path_factory.mktemp("student")
    shutil.copytree(graded_class[0] / "release" / name, course / "release" / name)
    nbgrader(course, "release_assignment", name)
    assert (course / "exchange" / "eanet-course" / "outbound" / name / f"{name}.ipynb").exists()
    # The student's side: the course id and the exchange given on the command line.
    where = ["--course", "eanet-course", f"--Exchange.root={course / 'exchange'}",
             f"--Exchange.cache={student / 'cache'}"]
    nbgrader(student, "fetch_assignment", name, *where)
    nbgrader(student, "submit", name, *where)
    nbgrader(course, "collect", name)
    [collected] = (course / "submitted").glob(f"*/{name}/{name}.ipynb")
    assert collected.read_text() == (student / name / f"{name}.ipynb").read_text()
