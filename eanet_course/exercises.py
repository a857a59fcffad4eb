"""Generate ``exercises/`` from ``solutions/``, the single source, and tell when it is stale.

In a solution notebook, the learner's code sits inside a function body between two marker
lines::

    def split_heads(x, num_heads):
        ### BEGIN SOLUTION
        # HINT: reshape to (B, N, H, dh), then transpose.
        ...
        ### END SOLUTION

The exercise gets, in place of the region, ``raise NotImplementedError(<the HINT line>)`` at
the marker's indentation; outputs are cleared and a note says where the file comes from. The
output is deterministic, so ``stale`` can compare files byte for byte.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

__all__ = ["BEGIN", "END", "build", "exercise_text", "stale"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_HINT = re.compile(r"^\s*# HINT:\s*(?P<hint>.+?)\s*$")
DEFAULT_HINT = "write your code here, then run the checker below."


def _root(root: str | Path | None) -> Path:
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    if not (root / "solutions").is_dir():
        raise ValueError(f"No solutions/ folder under {root}; run from the course's checkout "
                         "or pass root= (the folder that holds solutions/ and exercises/).")
    return root


def _orphans(root: Path) -> list[Path]:
    """The exercises under ``root`` whose solution is gone."""
    names = {s.name for s in (root / "solutions").glob("*.ipynb")}
    return [p for p in sorted((root / "exercises").glob("*.ipynb")) if p.name not in names]


def _stub_source(source: str, where: str) -> str:
    """``source`` with each solution region replaced by a ``raise NotImplementedError``."""
    out: list[str] = []
    region: list[str] | None = None
    indent = ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if region is not None:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another region; "
                                 f"close the first one with {END}.")
            indent = line[: len(line) - len(line.lstrip())]
            if not indent:
                raise ValueError(f"{where}, line {number}: a solution region must sit inside a "
                                 "function body (indented), so that the exercise's raise does "
                                 "not stop the notebook; wrap the code in a function.")
            region = []
        elif marker == END:
            if region is None:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}.")
            hints = [m["hint"] for m in map(_HINT.match, region) if m]
            out.append(f"{indent}raise NotImplementedError({(hints[0] if hints else DEFAULT_HINT)!r})")
            region = None
        elif region is not None:
            region.append(line)
        else:
            out.append(line)
    if region is not None:
        raise ValueError(f"{where}: {BEGIN} is never closed; add a {END} line.")
    return "\n".join(out)


def exercise_text(solution_path: str | Path) -> str:
    """The exercise notebook, as text, that ``solution_path`` generates."""
    solution_path = Path(solution_path)
    solution = nbformat.read(solution_path, as_version=4)
    exercise = copy.deepcopy(solution)
    regions = 0
    for index, cell in enumerate(exercise.cells):
        cell["id"] = cell.get("id") or f"cell-{index:02d}"
        if cell.cell_type != "code":
            continue
        regions += cell.source.count(BEGIN)
        cell.source = _stub_source(cell.source, f"{solution_path.name}, cell {index}")
        cell.outputs, cell.execution_count = [], None
    if not regions:
        raise ValueError(f"{solution_path.name} has no {BEGIN} ... {END} region; mark the "
                         "code the learner should write.")
    note = nbformat.v4.new_markdown_cell(
        f"*Generated from `solutions/{solution_path.name}` by `python -m eanet_course exercises "
        "build`: edit the solution, not this file.* Replace each `raise NotImplementedError` "
        "with your code, then run the checker cell after it.")
    note["id"] = "generated-note"
    exercise.cells.insert(0, note)
    return nbformat.writes(exercise) + "\n"


def build(root: str | Path | None = None) -> list[Path]:
    """Write ``exercises/NN_<topic>.ipynb`` for every ``solutions/NN_<topic>.ipynb``.

    Exercises whose solution is gone are removed. Returns the paths written. ``root`` is the
    folder holding ``solutions/`` (default: the checkout this package lives in).
    """
    root = _root(root)
    (root / "exercises").mkdir(exist_ok=True)
    for orphan in _orphans(root):
        orphan.unlink()
    written = []
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        target = root / "exercises" / solution.name
        target.write_text(exercise_text(solution), encoding="utf-8")
        written.append(target)
    return written


def stale(root: str | Path | None = None) -> list[str]:
    """The exercises that are missing, out of date, or left over without a solution.

    Returns paths relative to ``root`` (``exercises/01_patches.ipynb``...); empty when
    ``exercises/`` is exactly what :func:`build` would write.
    """
    root = _root(root)
    names = []
    for solution in sorted((root / "solutions").glob("*.ipynb")):
        target = root / "exercises" / solution.name
        if not target.exists() or target.read_text(encoding="utf-8") != exercise_text(solution):
            names.append(f"exercises/{solution.name}")
    return names + [f"exercises/{p.name}" for p in _orphans(root)]
