"""A hostile class, graded: nobody fools the grader, nobody breaks what is around them.

A one-exercise course (``merge_heads``, the smallest checker: NumPy only) is generated with the
course's generator, released with nbgrader, and handed in by thirteen students: an honest one, a
stub, the six cheats of issue 21, a rewriter of the package, a deleter of another student's
folder, a spawner of 50 detached processes, a memory hog and an endless loop. They are graded
with ``python -m eanet_course grade`` under small limits, with the package imported from a
writable copy put first on ``PYTHONPATH`` (the rewriter's target).

Asserted: every student's score; that the four cheats on the kernel's objects would have
fooled a checker run where the learner's code ran (so the test would notice a regression);
that nothing outside the sandbox changed (the course's files, every submission, the package
copy, the solutions, the real /tmp); that no process a submission started is left.
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from eanet_course.grading.sandbox import bwrap

pytest.importorskip("nbgrader", reason="the [instructor] extra: nbgrader, Python 3.11+")
if not bwrap():
    pytest.skip("bubblewrap is not installed (scripts/ensure-bubblewrap.sh) or cannot make "
                "namespaces here", allow_module_level=True)

from nbgrader.api import Gradebook  # noqa: E402 -- after the skips

from eanet_course.exercises import source_text  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAME = "90_tiny"
POINTS = 2
#: The limits of this test's course: small, so that the loop and the hog cost seconds.
LIMITS = {"memory_mb": 3072, "processes": 128, "submission_seconds": 180, "cell_seconds": 6,
          "call_seconds": 2, "tmp_mb": 64}
#: A duration no other process on the machine sleeps for: the spawner's processes are found by it.
SLEEP = "6061"
#: A file the hostile students try to create in the real /tmp.
CANARY = Path("/tmp") / f"eanet-hostile-canary-{os.getpid()}"

RIGHT = """def merge_heads(x):
    \"\"\"(B, H, N, dh) -> (B, N, H*dh).\"\"\"
    b, h, n, dh = x.shape
    return np.transpose(x, (0, 2, 1, 3)).reshape(b, n, h * dh)"""
#: Right shape, wrong values: what each cheat dresses up as a right answer.
WRONG = """def merge_heads(x):
    b, h, n, dh = x.shape
    return np.zeros((b, n, h * dh))"""
#: The four cheats on the kernel's objects, each one line after a wrong answer.
KERNEL_CHEATS = {
    "rebind_checks": "checks = __import__('types').SimpleNamespace("
                     "check_merge_heads=lambda f: True)",
    "patch_checker": "checks.check_merge_heads = lambda f: True",
    "bool_true": "checks.CheckResult.__bool__ = lambda self: True",
    "patch_allclose": "np.allclose = lambda *a, **k: True",
}
#: Reading the answer from the course's source/ (three folders up from the submission, as
#: nbgrader runs it) or from the solutions/ next to the installed package.
COPY = """
import json, pathlib
def _steal(path):
    try:
        cells = json.loads(pathlib.Path(path).read_text())["cells"]
    except OSError:
        return
    for cell in cells:
        text = "".join(cell["source"])
        if text.lstrip().startswith("def merge_heads"):
            exec(text, globals())
"""
COPY_SOURCE = COPY + f'_steal("../../../source/{NAME}/{NAME}.ipynb")'
COPY_SOLUTIONS = COPY + (
    "import eanet_course\n"
    "_steal(pathlib.Path(eanet_course.__file__).parents[1] / 'solutions' / "
    "'05_multi_head_external_attention.ipynb')")


def _rewrite(targets: list[str]) -> str:
    return f"""
import os, pathlib
import eanet_course.checks._core as core
for path in [core.__file__, *{targets!r}]:
    try:
        text = pathlib.Path(path).read_text()
        text = text.replace("return self.passed", "return True")
        text = text.replace("CheckResult(False,", "CheckResult(True,")
        pathlib.Path(path).write_text(text)
    except OSError:
        pass
"""


def students(course: Path, package: Path) -> dict[str, dict]:
    """Each student: the answer cell, cells added after it, and the score deserved."""
    course_guess = "pathlib.Path(os.getcwd()).parents[2]"
    return {
        "honest": {"answer": RIGHT, "score": POINTS},
        "stub": {"answer": None, "score": 0},
        **{name: {"answer": f"{WRONG}\n{line}", "score": 0}
           for name, line in KERNEL_CHEATS.items()},
        "copy_source": {"answer": f"{WRONG}\n{COPY_SOURCE}", "score": 0},
        "copy_solutions": {"answer": f"{WRONG}\n{COPY_SOLUTIONS}", "score": 0},
        "package_rewrite": {"answer": WRONG + _rewrite(
            [str(package / "eanet_course" / "checks" / "_core.py")]), "score": 0},
        "deleter": {"answer": RIGHT, "score": POINTS, "extra": f"""
import os, pathlib, shutil
for course in [pathlib.Path("../../.."), {course_guess}, pathlib.Path({str(course)!r})]:
    shutil.rmtree(course / "submitted" / "honest", ignore_errors=True)
    shutil.rmtree(course / "source", ignore_errors=True)
    try:
        (course / "gradebook.db").write_text("gone")
    except OSError:
        pass
pathlib.Path({str(CANARY)!r}).write_text("written from a submission")
"""},
        "spawner": {"answer": RIGHT, "score": POINTS, "extra": f"""
import subprocess
for _ in range(50):
    subprocess.Popen(["sleep", "{SLEEP}"], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
"""},
        "memory_hog": {"answer": RIGHT.replace(
            "    b, h, n, dh", "    hog = np.ones(2**29)  # 4 GiB\n    b, h, n, dh"),
            "score": 0},
        "endless_loop": {"answer": "def merge_heads(x):\n    while True:\n        pass",
                         "score": 0},
    }


def solution_notebook(path: Path) -> None:
    cells = [
        nbformat.v4.new_markdown_cell("# A tiny exercise\n\n## ★ Build: merge the heads"),
        nbformat.v4.new_code_cell("import numpy as np\n\nfrom eanet_course import checks"),
        nbformat.v4.new_code_cell(RIGHT.replace(
            "    b, h, n, dh", "    ### BEGIN SOLUTION\n    b, h, n, dh")
            + "\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("checks.check_merge_heads(merge_heads)"),
    ]
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index:02d}"
    path.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def digest(*folders: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def sleepers() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == \
                    f"sleep\0{SLEEP}\0".encode():
                found.append(int(proc.name))
        except OSError:
            pass
    return found


def cpu_seconds() -> float:
    """CPU time of this process's finished children (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args, cwd, env, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    start = time.perf_counter()
    tmp = tmp_path_factory.mktemp("hostile")
    package = tmp / "package"  # a writable copy, first on PYTHONPATH: the rewriter's target
    shutil.copytree(ROOT / "eanet_course", package / "eanet_course",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(package),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    course = tmp / "course"
    solution = tmp / "solutions" / f"{NAME}.ipynb"
    solution_notebook(solution)
    source = course / "source" / NAME / f"{NAME}.ipynb"
    source.parent.mkdir(parents=True)
    source.write_text(source_text(solution))
    shutil.copy(ROOT / "instructor" / "nbgrader_config.py", course)
    (course / "sandbox.toml").write_text("".join(f"{k} = {v}\n" for k, v in LIMITS.items()))
    run([sys.executable, "-m", "nbgrader", "generate_assignment", NAME], course, env)

    release = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    plan = students(course, package)
    for student, how in plan.items():
        nb = nbformat.from_dict(json.loads(json.dumps(release)))
        answer = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
        if how["answer"] is not None:
            answer.source = how["answer"]
        if "extra" in how:
            extra = nbformat.v4.new_code_cell(how["extra"])
            extra["id"] = "extra"
            nb.cells.insert(nb.cells.index(answer) + 1, extra)
        target = course / "submitted" / student / NAME / f"{NAME}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)

    outside = [course / "source", course / "release", course / "submitted", package]
    before = digest(*outside)
    solutions_before = digest(ROOT / "solutions")
    generated = time.perf_counter()
    cpu = cpu_seconds()
    done = run([sys.executable, "-m", "eanet_course", "grade", NAME, "--course", str(course)],
               tmp, env, timeout=len(plan) * LIMITS["submission_seconds"])
    seconds, cpu = time.perf_counter() - generated, cpu_seconds() - cpu
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        scores = {s: gradebook.find_submission(NAME, s).score for s in plan}
    print(f"\nset up and generated in {generated - start:.0f} s, {len(plan)} students graded "
          f"in {seconds:.0f} s ({cpu:.0f} s of CPU):\n{done.stdout}")
    return {"course": course, "plan": plan, "scores": scores, "before": before,
            "after": digest(*outside), "solutions": (solutions_before, digest(ROOT / "solutions")),
            "env": env, "package": package}


def test_every_student_gets_the_score_the_answer_deserves(graded):
    expected = {s: how["score"] for s, how in graded["plan"].items()}
    assert graded["scores"] == expected


def test_nothing_outside_the_sandbox_changed(graded):
    assert graded["after"] == graded["before"]
    assert graded["solutions"][0] == graded["solutions"][1]
    assert not CANARY.exists()
    assert (graded["course"] / "autograded" / "honest" / NAME / f"{NAME}.ipynb").exists()


def test_no_process_of_a_submission_outlives_its_grading(graded):
    assert sleepers() == []


def test_the_stolen_answers_were_there_to_steal(graded):
    """Without the sandbox, the copying students would have found the answer."""
    course = graded["course"]
    assert "def merge_heads" in (course / "source" / NAME / f"{NAME}.ipynb").read_text()
    assert "def merge_heads" in (
        ROOT / "solutions" / "05_multi_head_external_attention.ipynb").read_text()


def test_the_kernel_cheats_fool_a_checker_that_shares_their_process(graded):
    """The four cheats on the kernel's objects pass the grade cell when it runs where they ran:
    it is the re-check in a fresh process that gives them 0."""
    grade_cell = next(c.source for c in nbformat.read(
        graded["course"] / "source" / NAME / f"{NAME}.ipynb", as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade"))
    script = ["import numpy as np", "from eanet_course import checks", "display = print",
              "fooled = []"]
    for name, line in KERNEL_CHEATS.items():
        script += [f"# {name}", "import importlib, sys",
                   "for m in [m for m in sys.modules if m.startswith('eanet_course')]: "
                   "del sys.modules[m]",
                   "import numpy as np; np.allclose = np.core.numeric.allclose",
                   "from eanet_course import checks", WRONG, line,
                   "try:", *["    " + s for s in grade_cell.splitlines()],
                   f"    fooled.append({name!r})", "except AssertionError:", "    pass"]
    script.append("print('fooled:', ','.join(fooled))")
    done = run([sys.executable, "-c", "\n".join(script)], graded["course"], graded["env"])
    assert done.stdout.strip().splitlines()[-1] == "fooled: " + ",".join(KERNEL_CHEATS)
