"""★★ Predict tasks predict: nothing the learner runs before opening the answer gives it away.

For every ★★ Predict task of ``solutions/`` and ``exercises/``, the code cells between the task's
heading and its ``<details>`` answer may set the experiment up, but must not show a result: no
``assert``, no ``print`` or ``display``, no plot, no checker call, and no bare expression as the
last statement (Jupyter would display its value). The answer's checks come in a code cell right
after the ``<details>`` block. Tests below show that the rule flags the cells the course had
before (an ``assert`` of the answer, a ``print`` of the measured factor).
"""

from __future__ import annotations

import ast
import pathlib
import re

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted(
    (ROOT / "exercises").glob("*.ipynb"))
PREDICT = re.compile(r"^#+\s*★★\s*Predict\b", re.M)
#: Functions that show something.
SHOWING = {"print", "display", "pprint", "show", "imshow", "plot", "scatter", "bar", "hist",
           "matshow", "write"}
#: Methods that return None: a call to one as the last statement displays nothing.
SILENT = {"build", "set_weights", "assign", "append", "extend", "update", "set_random_seed"}


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    return func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)


def giveaways(source: str) -> list[str]:
    """What a code cell shows the learner when it runs (empty: it shows nothing)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ["a cell that is not plain Python (a magic?) cannot be judged"]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert):
            found.append(f"an assert (line {node.lineno})")
        elif isinstance(node, ast.Call):
            name = _called_name(node)
            if name in SHOWING:
                found.append(f"a call to {name} (line {node.lineno})")
            elif (isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name)
                  and node.func.value.id in ("checks", "plt")):
                found.append(f"{node.func.value.id}.{node.func.attr} (line {node.lineno})")
    last = tree.body[-1] if tree.body else None
    if isinstance(last, ast.Expr) and not (isinstance(last.value, ast.Call)
                                           and _called_name(last.value) in SILENT):
        found.append(f"a bare expression on the last line (line {last.lineno}), which "
                     "Jupyter displays")
    return found


def predict_tasks(cells) -> list[tuple[str, list, int | None]]:
    """For each ★★ Predict heading: (heading, the cells between it and its <details>, the
    index of the <details> cell or None)."""
    tasks = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown" or not PREDICT.search(cell.source):
            continue
        heading = PREDICT.search(cell.source).group(0)
        between, answer = [], None
        for later in range(index + 1, len(cells)):
            text = cells[later].source.lstrip()
            if cells[later].cell_type == "markdown" and text.startswith("<details>"):
                answer = later
                break
            if cells[later].cell_type == "markdown" and re.match(r"#+\s", text):
                break  # the next section: this task has no answer
            between.append(cells[later])
        tasks.append((heading, between, answer))
    return tasks


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_nothing_run_before_the_answer_gives_it_away(path):
    cells = nbformat.read(path, as_version=4).cells
    tasks = predict_tasks(cells)
    assert tasks, f"{path.name} has no ★★ Predict task"
    for number, (heading, between, answer) in enumerate(tasks, start=1):
        where = f"{path.parent.name}/{path.name}, ★★ task {number}"
        assert answer is not None, f"{where}: no <details> answer before the next section"
        assert any(c.source.lstrip().startswith("**Your prediction:**") for c in between), where
        for cell in between:
            if cell.cell_type == "code":
                shown = giveaways(cell.source)
                assert not shown, f"{where}, before its answer: {shown}\n{cell.source}"
        # The answer's check: a code cell right after the <details> block, with an assert.
        check = cells[answer + 1] if answer + 1 < len(cells) else None
        assert check is not None and check.cell_type == "code", f"{where}: no check after"
        assert any(isinstance(n, ast.Assert) for n in ast.walk(ast.parse(check.source))), (
            f"{where}: the cell after the answer checks nothing\n{check.source}")


def test_every_notebook_keeps_its_predict_tasks():
    """13 tasks in solutions/, the same in exercises/ (the rule cannot pass by losing them)."""
    counts = {folder: sum(len(predict_tasks(nbformat.read(p, as_version=4).cells))
                          for p in NOTEBOOKS if p.parent.name == folder)
              for folder in ("solutions", "exercises")}
    assert counts == {"solutions": 13, "exercises": 13}


# Cells the course ran before the answer until this rule (exercises 06, 04, 05), flagged.
OLD_CELLS = [
    "out = np.asarray(block(x))\n"
    "print(f\"largest difference between output and input: {np.max(np.abs(out - x)):.2e}\")\n"
    "assert np.allclose(out, x, atol=1e-6)",
    "for name, normalize in normalizations.items():\n"
    "    moved = not np.allclose(normalize(column), normalize(logits))\n"
    "    print(f\"{name}: {'changes' if moved else 'unchanged'}\")",
    "for heads in (1, 2, 4, 8):\n"
    "    layer = ExternalAttention(64, num_heads=heads, dim_coefficient=4, memory_units=16)\n"
    "    layer.build((None, 16, 64))\n"
    "    layer.memory_key.count_params()\n"
    "layer.memory_key.count_params()",
    "plt.imshow(picture)",
    "checks.check_sinkhorn(sinkhorn)",
]


@pytest.mark.parametrize("source", OLD_CELLS, ids=range(len(OLD_CELLS)))
def test_the_rule_flags_cells_that_show_the_answer(source):
    assert giveaways(source)


def test_the_rule_lets_a_silent_setup_through():
    assert not giveaways("layer = ExternalAttention(8)\nlayer.build((None, 4, 8))\n"
                         "x = np.zeros((1, 4, 8))\nlayer.set_weights(weights)")
