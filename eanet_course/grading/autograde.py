"""nbgrader's autograde with the course's protections, and the ``grade`` command.

:func:`configure` (called by ``instructor/nbgrader_config.py``) changes two steps of nbgrader's
autograde pipeline, for ``nbgrader autograde`` and ``python -m eanet_course grade`` alike:

- :class:`SandboxedExecute` runs each submission's kernel in the
  :class:`~eanet_course.grading.sandbox.Sandbox` (its sockets are files in a private folder, as
  the sandbox has no network);
- :class:`Recheck`, right after it, replaces the outputs of every checker cell with the verdict
  of :func:`~eanet_course.grading.fresh.recheck`: nbgrader scores that cell from the re-check,
  never from what the kernel printed.

Each kernel and each re-check runs in its own process group (a ``pids`` cgroup where one can be
made), with a wall-time limit; all its processes are killed when it ends. :func:`grade` runs
nbgrader's autograde for every submission, refuses to when the course's config did not install
the above (nbgrader only logs a config file that fails), and reports each student's score.
"""

from __future__ import annotations

import ast
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nbformat import NotebookNode
from nbformat.v4 import new_output
from traitlets import Unicode

from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from nbgrader.utils import is_grade
from jupyter_client.manager import AsyncKernelManager

from eanet_course.grading.fresh import recheck
from eanet_course.grading.sandbox import Limits, ProcessGroup, Sandbox, readonly_package, \
    remove_readonly

#: The message of the error a failed re-check leaves in its cell (nbgrader scores it 0).
FAILED = "{checker} has not passed: see its feedback above."

_sandboxes: dict[str, Sandbox] = {}


def sandbox_for(course: str | Path) -> Sandbox:
    """The sandbox for ``course``'s limits, with its read-only package copy (made once per
    process, removed when it exits)."""
    key = str(Path(course).resolve())
    if key not in _sandboxes:
        scratch = tempfile.mkdtemp(prefix="eanet-grading-")
        atexit.register(remove_readonly, scratch)
        _sandboxes[key] = Sandbox(Limits.load(course), readonly_package(scratch))
    return _sandboxes[key]


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel started inside the course's sandbox: its connection file and sockets (``ipc``
    transport) live in a private folder, the only one it shares besides its working copy."""

    course = Unicode("", help="The course directory whose sandbox.toml sets the limits.",
                     config=True)

    async def _async_pre_start_kernel(self, **kw):
        self._private = tempfile.mkdtemp(prefix="eanet-kernel-")
        self.transport = "ipc"
        self.connection_file = os.path.join(self._private, "kernel.json")
        self.ip = os.path.join(self._private, "ipc")
        self.kernel_spec.interrupt_mode = "message"  # a signal would stop at bwrap
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments=None):
        command = super().format_kernel_cmd(extra_arguments)
        # The kernel works in a copy of the notebook's folder: nothing it writes there (a link
        # to the gradebook named like the notebook...) reaches the folder nbgrader writes to.
        workdir = self._launch_args.get("cwd") or os.getcwd()
        copy = os.path.join(self._private, "work")
        os.mkdir(copy)
        _copy_folder(workdir, copy)
        sandbox = sandbox_for(self.course or os.getcwd())
        self._group = ProcessGroup.make(sandbox.limits.processes)
        return sandbox.wrap(command, workdir, source=copy, extra_binds=(self._private,),
                            group=self._group, seconds=sandbox.limits.submission_seconds)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart)
        if getattr(self, "_group", None):
            self._group.close()  # whatever the kernel started, detached or not
        shutil.rmtree(getattr(self, "_private", ""), ignore_errors=True)


class SandboxedExecute(Execute):
    """nbgrader's Execute with the kernel in the sandbox."""

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)


def checker_call(source: str) -> tuple[str, str] | None:
    """``(checker, name)`` when the cell's first statement calls ``checks.check_x(name)``."""
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    value = getattr(body[0], "value", None) if body else None
    if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
            and isinstance(value.func.value, ast.Name) and value.func.value.id == "checks"
            and value.func.attr.startswith("check_") and value.args
            and isinstance(value.args[0], ast.Name)):
        return value.func.attr, value.args[0].id
    return None


class Recheck(NbGraderPreprocessor):
    """Each checker cell's outputs become the verdict of a re-check in fresh processes."""

    course = Unicode("", help="The course directory whose sandbox.toml sets the limits.",
                     config=True)

    def preprocess(self, nb: NotebookNode, resources: dict):
        sandbox = sandbox_for(self.course or os.getcwd())
        workdir = resources.get("metadata", {}).get("path") or os.getcwd()
        before: list[str] = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            found = checker_call(cell.source) if is_grade(cell) else None
            if found:
                checker, name = found
                with tempfile.TemporaryDirectory(prefix="eanet-work-") as work:
                    _copy_folder(workdir, work)
                    verdict = recheck(before, checker, name, sandbox, work)
                cell.outputs = _outputs(verdict, checker)
            else:
                before.append(cell.source)
        return nb, resources


def _copy_folder(source: str, target: str) -> None:
    """The files of a submission's folder (not its notebook, nor links or subfolders)."""
    for item in Path(source).iterdir():
        if item.is_file() and not item.is_symlink() and item.suffix != ".ipynb":
            shutil.copy(item, target)


def _outputs(verdict, checker: str) -> list:
    from eanet_course.checks import CheckResult

    note = ("\n(Re-checked in a fresh process" + (", shared with your code: the checker takes "
            "objects." if verdict.shared else ".") + ")")
    shown = CheckResult(verdict.passed, verdict.message + note)
    outputs = [new_output("display_data", data={"text/plain": repr(shown),
                                                "text/html": shown._repr_html_()})]
    if not verdict.passed:
        outputs.append(new_output("error", ename="AssertionError",
                                  evalue=FAILED.format(checker=checker),
                                  traceback=[f"AssertionError: {FAILED.format(checker=checker)}"]))
    return outputs


def configure(c, course: str | Path) -> Limits:
    """Set nbgrader's config ``c`` for ``course``: the sandboxed kernel, the re-check, and the
    time limit of a cell from ``course/sandbox.toml``. Returns the limits."""
    from nbgrader.converters.autograde import Autograde

    limits = Limits.load(course)
    steps = [SandboxedExecute if step is Execute else step
             for step in Autograde.class_traits()["autograde_preprocessors"].default()]
    steps.insert(steps.index(SandboxedExecute) + 1, Recheck)
    c.Autograde.autograde_preprocessors = steps
    c.SandboxedKernelManager.course = str(course)
    c.Recheck.course = str(course)
    c.ExecutePreprocessor.timeout = limits.cell_seconds
    return limits


# --- the grade command -------------------------------------------------------------------------

@dataclass(frozen=True)
class Graded:
    """One submission's grading: ``student``, ``score`` out of ``max_score`` (None: not
    graded) and, when it was not graded, why."""

    student: str
    score: float | None
    max_score: float
    problem: str = ""


def submissions(course: Path, assignment: str) -> list[str]:
    """The students with a submission of ``assignment`` under ``course/submitted/``."""
    folder = course / "submitted"
    return sorted(p.parent.name for p in folder.glob(f"*/{assignment}") if p.is_dir())


def grade(assignment: str, course: str | Path = "instructor", *, log=print) -> list[Graded]:
    """Autograde every submission of ``assignment`` in ``course`` (see the module's docstring).

    One nbgrader process grades them one after the other, each kernel and each re-check in the
    sandbox, with its own process group and wall time. Returns one :class:`Graded` per student;
    the gradebook holds the scores, ready for ``nbgrader export``.
    """
    from nbgrader.api import Gradebook, MissingEntry

    course = Path(course).resolve()
    if not (course / "nbgrader_config.py").exists():
        raise ValueError(f"{course} has no nbgrader_config.py: pass the course directory "
                         "(--course), e.g. instructor/.")
    if not (course / "source" / assignment).is_dir():
        names = sorted(p.name for p in (course / "source").glob("*") if p.is_dir())
        raise ValueError(f"No assignment {assignment!r} in {course / 'source'}; the assignments "
                         f"are: {', '.join(names) or 'none'}.")
    if not (course / "release" / assignment).is_dir():
        raise ValueError(f"{assignment!r} has not been generated: run `nbgrader "
                         f"generate_assignment {assignment}` in {course} first.")
    students = submissions(course, assignment)
    if not students:
        raise ValueError(f"No submissions of {assignment!r} under {course / 'submitted'} "
                         "(expected submitted/STUDENT/ASSIGNMENT/); run `nbgrader collect` first.")
    limits = Limits.load(course)
    lost = Sandbox(limits, course).lost
    if lost:
        log(f"warning: {lost}")
    start = time.time()
    command = [sys.executable, "-m", "eanet_course.grading.autograde", assignment, "--force"]
    env = {**os.environ, "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                                  os.environ.get("PATH", "")])}
    process = subprocess.Popen(command, cwd=course, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=limits.submission_seconds * (len(students) + 1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    if process.returncode == 3:  # the config did not install the sandbox: nothing was graded
        raise ValueError(output.strip().splitlines()[-1])
    results = []
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        maximum = gradebook.find_assignment(assignment).max_score
        for student in students:
            notebooks = list((course / "autograded" / student / assignment).glob("*.ipynb"))
            try:
                score = gradebook.find_submission(assignment, student).score
            except MissingEntry:
                score = None
            if not notebooks or min(p.stat().st_mtime for p in notebooks) < start:
                problem = next((line.strip() for line in output.splitlines()
                                if "error" in line.lower() and f"'{student}'" in line),
                               "not graded (see nbgrader's log above)")
                results.append(Graded(student, None, maximum, problem))
            else:
                results.append(Graded(student, score, maximum))
    failed = [r for r in results if r.score is None]
    if failed:
        log(output)
    width = max(len(s) for s in students)
    for r in results:
        log(f"{r.student:{width}}  " + (f"{r.score:g} / {r.max_score:g}" if r.score is not None
                                       else r.problem))
    return results


def main(argv: list[str] | None = None) -> int:
    """``nbgrader autograde ARGS``, refused unless the course's config installed the sandbox
    and the re-check (nbgrader only logs a config file that fails, and grades on unprotected)."""
    from nbgrader.apps.nbgraderapp import NbGraderApp

    app = NbGraderApp.instance()
    app.initialize(["autograde", *(sys.argv[1:] if argv is None else argv)])
    steps = app.subapp.config.Autograde.get("autograde_preprocessors", [])
    names = {getattr(step, "__name__", str(step)) for step in steps}
    if not {"SandboxedExecute", "Recheck"} <= names:
        print("error: the course's nbgrader_config.py did not install the sandbox and the "
              "re-check (see the error above, or add `from eanet_course.grading.autograde "
              "import configure; configure(c, here)` to it); nothing was graded.",
              file=sys.stderr)
        return 3
    from jupyter_core.application import NoStart

    try:
        app.start()
    except NoStart:  # what a Jupyter app raises once its subcommand has run
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
