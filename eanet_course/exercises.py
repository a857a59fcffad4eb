"""Generate the learners' exercises and the nbgrader course from ``solutions/``, the one source.

``solutions/NN_<topic>.ipynb`` follows the cell conventions of the course:

- a **★ Build** code cell holds the learner's code between two marker lines, inside a function or
  class body::

      def split_heads(x, num_heads):
          \"\"\"x (B, N, H*dh) -> (B, H, N, dh).\"\"\"
          ### BEGIN SOLUTION
          ...
          ### END SOLUTION

- a **checker cell** is one call alone in its cell, ``checks.check_split_heads(split_heads)``;
- a **★★ Predict** or **★★★ Explore** answer is a markdown cell that starts with
  ``**Your prediction:**`` or ``**Your findings:**``.

:func:`build` writes three things from each solution, deterministically (so that :func:`stale`
compares bytes):

1. **nbgrader metadata into the solution itself**, derived from those conventions: solution
   regions are ``solution`` cells, checker cells autograded ``grade`` cells (``locked``, with
   :data:`POINTS` and a ``grade_id`` from the exercise and the checker's name), answer cells
   manually graded ``solution`` + ``grade`` cells, the code cells of a ★★★ Explore scaffold
   free (the learner edits them), every other cell ``locked``;
2. ``instructor/source/NN_<topic>/NN_<topic>.ipynb``, the nbgrader source: outputs cleared,
   each checker cell becomes ``feedback = checks.check_x(f)``, ``display(feedback)``, then an
   ``assert feedback`` whose message points at the feedback: the student still sees the
   checker's friendly feedback, and a check that fails raises, which is how nbgrader scores a
   test cell (and how its Validate button finds it). Each answer cell's text sits in a solution
   region;
3. ``exercises/NN_<topic>.ipynb``, the learner's self-study copy: nbgrader's own
   ``ClearSolutions`` and ``ClearOutput`` preprocessors, nbgrader's metadata dropped, cells left
   editable, the solution it comes from in its metadata (:data:`GENERATED`) and a last line
   saying where the worked solution is. Nothing inside a solution region reaches it: the region
   becomes nbgrader's stub, ``raise NotImplementedError()``.

nbgrader (the ``[instructor]`` extra, Python 3.11 or newer) does the clearing, so building and
checking need it; the generated notebooks themselves need only the course.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbformat import NotebookNode

__all__ = ["BEGIN", "END", "GENERATED", "POINTS", "MissingNbgrader", "annotated", "build", "exercise_text",
           "solution_text", "source_text", "stale"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
#: The labels that open a manually graded answer cell, and its kind.
ANSWERS = {"**Your prediction:**": "prediction", "**Your findings:**": "findings"}
#: Points per graded cell: an autograded checker cell, a prediction, a findings cell.
POINTS = {"checker": 2, "prediction": 1, "findings": 2}
#: The variable a one-call checker cell keeps its result in, in the nbgrader source.
FEEDBACK = "feedback"
#: The exercise's metadata key that says which solution it was generated from, and how.
GENERATED = "eanet_course_generated"
_TASK = re.compile(r"^#+\s*★+\s*(?P<kind>Build|Predict|Explore)\b", re.M)
_HEADING = re.compile(r"^(?P<level>#+)\s", re.M)


class MissingNbgrader(RuntimeError):
    """nbgrader, which ``exercises build`` and ``check`` use, is not installed."""


def _nbgrader() -> SimpleNamespace:
    """nbgrader's ``ClearSolutions``, ``ClearOutput`` and ``MetadataValidator``, or a clear error
    saying how to install them."""
    try:
        from nbgrader.nbgraderformat import MetadataValidator
        from nbgrader.preprocessors import ClearOutput, ClearSolutions
    except ImportError as error:
        raise MissingNbgrader(
            "exercises build and check use nbgrader's preprocessors, which are not installed "
            f"({error}). Install the instructor extra: pip install -e '.[instructor]' "
            "(nbgrader 0.9.6 and later need Python 3.11 or newer; this is Python "
            f"{sys.version.split()[0]}). Learners do not need it: exercises/ is committed."
        ) from error
    return SimpleNamespace(ClearSolutions=ClearSolutions, ClearOutput=ClearOutput,
                           MetadataValidator=MetadataValidator)


def _root(root: str | Path | None) -> Path:
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    if not (root / "solutions").is_dir():
        raise ValueError(f"No solutions/ folder under {root}; run from the course's checkout "
                         "or pass root= (the folder that holds solutions/ and exercises/).")
    return root


# --- reading the conventions -------------------------------------------------------------------

def _check_regions(source: str, where: str) -> int:
    """The number of solution regions in a code cell; malformed regions are refused."""
    regions, inside = 0, False
    for number, line in enumerate(source.splitlines(), start=1):
        if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line:
            continue
        marker = line.strip()
        if marker not in (BEGIN, END):
            raise ValueError(f"{where}, line {number}: a marker line holds only {BEGIN} or "
                             f"{END} (nbgrader reads any line that contains them); got {marker!r}.")
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another region; "
                                 f"close the first one with {END}.")
            if not line[: len(line) - len(line.lstrip())]:
                raise ValueError(f"{where}, line {number}: a solution region must sit inside a "
                                 "function body (indented), so that the exercise's raise does "
                                 "not stop the notebook; wrap the code in a function.")
            inside, regions = True, regions + 1
        else:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}.")
            inside = False
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed; add a {END} line.")
    return regions


def _parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:  # IPython magics: not a cell the conventions describe
        return None


def _checker_name(node: ast.AST | None) -> str | None:
    """``"check_x"`` when ``node`` is a call ``checks.check_x(...)``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "checks"
            and node.func.attr.startswith("check_")):
        return node.func.attr
    return None


def _checker_cell(source: str, where: str) -> tuple[str, str | None] | None:
    """``(checker, variable)`` for a checker cell, else None.

    A checker cell is ``checks.check_x(f)`` alone (``variable`` None), or
    ``name = checks.check_x(f)`` optionally followed by ``name`` (``variable`` "name").
    A checker call at the top level of a cell with other statements is refused.
    """
    tree = _parse(source)
    if tree is None:
        return None
    body = tree.body
    if len(body) == 1 and isinstance(body[0], ast.Expr) and _checker_name(body[0].value):
        return _checker_name(body[0].value), None
    first = body[0] if body else None
    if (isinstance(first, ast.Assign) and len(first.targets) == 1
            and isinstance(first.targets[0], ast.Name) and _checker_name(first.value)):
        name = first.targets[0].id
        rest = body[1:]
        if not rest or (len(rest) == 1 and isinstance(rest[0], ast.Expr)
                        and isinstance(rest[0].value, ast.Name) and rest[0].value.id == name):
            return _checker_name(first.value), name
    for statement in body:
        value = getattr(statement, "value", None)
        if _checker_name(value):
            raise ValueError(f"{where}: a checker call must be alone in its cell, e.g. "
                             f"`checks.{_checker_name(value)}(...)`, so that nbgrader grades "
                             "it as one test; move the other statements to their own cell.")
    return None


def _defined_names(source: str) -> list[str]:
    """The functions and classes a cell defines at its top level, in order."""
    tree = _parse(source)
    return [node.name for node in (tree.body if tree else [])
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _answer_kind(cell: NotebookNode) -> str | None:
    """``"prediction"`` or ``"findings"`` for a manually graded markdown answer cell."""
    if cell.cell_type != "markdown":
        return None
    text = cell.source.lstrip()
    return next((kind for label, kind in ANSWERS.items() if text.startswith(label)), None)


def _exercise_id(path: Path) -> str:
    """``"05"`` for ``05_multi_head_external_attention.ipynb`` (the stem without a number)."""
    match = re.match(r"\d+", path.stem)
    return match.group(0) if match else path.stem


def _unique(base: str, used: set[str]) -> str:
    name, count = base, 1
    while name in used:
        count += 1
        name = f"{base}_{count}"
    used.add(name)
    return name


def _metadata(grade_id: str, *, solution: bool = False, grade: bool = False,
              locked: bool = False, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _read(path: Path) -> NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except Exception as error:  # noqa: BLE001 -- any unreadable notebook gets the same advice
        raise ValueError(f"{path.name} is not a readable notebook ({error}); "
                         "open it in Jupyter and save it again.") from error


def annotated(solution_path: str | Path) -> NotebookNode:
    """The solution notebook with the nbgrader metadata its cell conventions imply.

    Any nbgrader metadata already there is replaced, so the result depends on the cells'
    content alone (and annotating twice changes nothing).
    """
    path = Path(solution_path)
    nb = _read(path)
    number, used = _exercise_id(path), set()
    regions, counts = 0, {kind: 0 for kind in ANSWERS.values()}
    explore_level: int | None = None  # heading level of the current ★★★ Explore section
    for index, cell in enumerate(nb.cells):
        cell["id"] = cell.get("id") or f"cell-{index:02d}"
        cell.metadata.pop("nbgrader", None)
        where = f"{path.name}, cell {index} (id {cell['id']})"
        if cell.cell_type == "markdown":
            explore_level = _explore_after(cell.source, explore_level)
        kind = _answer_kind(cell)
        if kind:
            counts[kind] += 1
            grade_id = _unique(f"{number}_{kind}_{counts[kind]}", used)
            cell.metadata["nbgrader"] = _metadata(grade_id, solution=True, grade=True,
                                                  points=POINTS[kind])
            continue
        if cell.cell_type == "markdown" and "BEGIN SOLUTION" in cell.source:
            raise ValueError(f"{where}: a markdown answer cell starts with one of "
                             f"{', '.join(ANSWERS)}; start the cell with its label.")
        if cell.cell_type != "code":
            cell.metadata["nbgrader"] = _metadata(_unique(f"{number}_{cell['id']}", used),
                                                  locked=True)
            continue
        found = _check_regions(cell.source, where)
        checker = _checker_cell(cell.source, where)
        if found:
            regions += found
            names = _defined_names(cell.source) or [cell["id"]]
            cell.metadata["nbgrader"] = _metadata(_unique(f"{number}_{names[0]}", used),
                                                  solution=True)
        elif checker:
            cell.metadata["nbgrader"] = _metadata(_unique(f"{number}_{checker[0]}", used),
                                                  grade=True, locked=True,
                                                  points=POINTS["checker"])
        elif explore_level is None:
            cell.metadata["nbgrader"] = _metadata(_unique(f"{number}_{cell['id']}", used),
                                                  locked=True)
    if not regions:
        raise ValueError(f"{path.name} has no {BEGIN} ... {END} region; mark the "
                         "code the learner should write.")
    _nbgrader().MetadataValidator().validate_nb(nb)
    return nb


def _explore_after(markdown: str, explore_level: int | None) -> int | None:
    """The Explore section's heading level after a markdown cell (None: not in one).

    A ``★★★ Explore`` heading opens the section; another task heading, or any heading of the
    same or a higher level, closes it. Sub-headings inside it keep it open.
    """
    for heading in _HEADING.finditer(markdown):
        level = len(heading["level"])
        task = _TASK.match(markdown, heading.start())
        if task:
            explore_level = level if task["kind"] == "Explore" else None
        elif explore_level is not None and level <= explore_level:
            explore_level = None
    return explore_level


def _text(nb: NotebookNode) -> str:
    return nbformat.writes(nb) + "\n"


def solution_text(solution_path: str | Path) -> str:
    """The solution notebook, as text, with its nbgrader metadata (what build writes back)."""
    return _text(annotated(solution_path))


# --- the two generated notebooks ---------------------------------------------------------------

def _answer_regions(nb: NotebookNode) -> None:
    """Put each answer cell's text (after its label) in a solution region, in place."""
    for cell in nb.cells:
        kind = _answer_kind(cell)
        if kind and BEGIN not in cell.source:
            label = next(label for label, k in ANSWERS.items() if k == kind)
            text = cell.source.lstrip()[len(label):].strip()
            cell.source = "\n".join([label, BEGIN, *([text] if text else []), END])


def _clear_outputs(nb: NotebookNode) -> NotebookNode:
    return _nbgrader().ClearOutput().preprocess(nb, {})[0]


def _source_notebook(solution_path: str | Path) -> NotebookNode:
    """The nbgrader source notebook: graded checker cells, answers in solution regions."""
    nb = annotated(solution_path)
    _answer_regions(nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("grade"):
            checker, variable = _checker_cell(cell.source, "")
            # The call's statement alone (without a display of `variable` after it).
            call = ast.get_source_segment(cell.source, _parse(cell.source).body[0])
            if variable is None:
                variable, call = FEEDBACK, f"{FEEDBACK} = {call}"
            cell.source = "\n".join([call, f"display({variable})",
                                     f'assert {variable}, "{checker} has not passed: see its '
                                     'feedback above."'])
    return _clear_outputs(nb)


def source_text(solution_path: str | Path) -> str:
    """``instructor/source/NN_<topic>/NN_<topic>.ipynb``, as text, for ``solution_path``."""
    return _text(_source_notebook(solution_path))


def exercise_text(solution_path: str | Path) -> str:
    """The exercise notebook, as text, that ``solution_path`` generates."""
    solution_path = Path(solution_path)
    exercise = annotated(solution_path)
    _answer_regions(exercise)
    exercise = _nbgrader().ClearSolutions().preprocess(exercise, {})[0]
    exercise = _clear_outputs(exercise)
    for cell in exercise.cells:
        cell.metadata.pop("nbgrader", None)
    exercise.metadata[GENERATED] = {"from": f"solutions/{solution_path.name}",
                                    "by": "python -m eanet_course exercises build"}
    note = nbformat.v4.new_markdown_cell(
        f"*The worked solution, for after you have tried: `solutions/{solution_path.name}`.*")
    note["id"] = "solution-note"
    exercise.cells.append(note)
    return _text(exercise)


# --- the files ---------------------------------------------------------------------------------

def _targets(root: Path, solution: Path) -> dict[Path, str]:
    """Each file ``solution`` generates, with its text."""
    name = solution.stem
    return {
        solution: solution_text(solution),
        root / "exercises" / solution.name: exercise_text(solution),
        root / "instructor" / "source" / name / solution.name: source_text(solution),
    }


def _orphans(root: Path) -> list[Path]:
    """The generated notebooks under ``root`` whose solution is gone."""
    names = {s.stem for s in (root / "solutions").glob("*.ipynb")}
    exercises = (root / "exercises").glob("*.ipynb")
    sources = (root / "instructor" / "source").glob("*/*.ipynb")
    return sorted(p for p in [*exercises, *sources] if p.stem not in names)


def build(root: str | Path | None = None) -> list[Path]:
    """Write the nbgrader metadata into every ``solutions/NN_<topic>.ipynb``, and its exercise
    and nbgrader source.

    Generated notebooks whose solution is gone are removed (with their folder under
    ``instructor/source/`` when it is left empty). Returns the paths it wrote: those that were
    missing or differed. ``root`` is the folder holding ``solutions/`` (default: the checkout
    this package lives in).
    """
    root = _root(root)
    # Everything is generated before anything is written: a bad solution changes no file.
    targets = {path: text for solution in sorted((root / "solutions").glob("*.ipynb"))
               for path, text in _targets(root, solution).items()}
    for orphan in _orphans(root):
        orphan.unlink()
        if orphan.parent.parent.name == "source" and not any(orphan.parent.iterdir()):
            orphan.parent.rmdir()
    written = []
    for path, text in targets.items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale(root: str | Path | None = None) -> list[str]:
    """The generated files that are missing, out of date, or left over without a solution.

    A solution whose nbgrader metadata is missing or out of date is stale too. Returns paths
    relative to ``root`` (``exercises/01_patches.ipynb``...); empty when everything is exactly
    what :func:`build` would write.
    """
    root = _root(root)
    names = []
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        for path, text in _targets(root, solution).items():
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                names.append(path.relative_to(root).as_posix())
    return names + [p.relative_to(root).as_posix() for p in _orphans(root)]
