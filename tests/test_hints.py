"""Hints teach in three levels, and nothing a learner reads before a checker gives the recipe.

The leak test reads every solution notebook as the exercise a learner gets: the solution regions
replaced by a bare ``raise NotImplementedError()``. For each ★ Build task, everything before its
checker cell (markdown and code, every earlier cell included) and the checker's message for the
stub must not contain the solution's distinctive tokens: the functions and methods it calls
(``reshape(``, ``np.exp(``...), its axis arguments (``axis=-2``), its axis orders
(``(0, 2, 1, 3)``). A test shows that the rule flags the stubs and hints this course had before.
"""

import builtins
import keyword
import pathlib
import re
import tokenize
from io import StringIO

import nbformat
import pytest

from eanet_course import checks
from test_checks import BEGIN, END, EXERCISES, notebook_object, stub_source

ROOT = pathlib.Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
#: Calls that say nothing about the recipe (Python's own, and the learner's own names).
GENERIC = set(dir(builtins)) | set(keyword.kwlist) | {"__init__"}


def regions(source: str) -> list[str]:
    return re.findall(rf"{re.escape(BEGIN)}\n(.*?)^[ \t]*{re.escape(END)}", source, re.S | re.M)


def distinctive_tokens(region: str, signature: str = "") -> set[str]:
    """The tokens of a solution region that give its recipe away, in the forms searched for.

    ``name(`` for every function or method it calls (builtins and names of the signature
    excepted), ``axis=<value>`` / ``axes=...`` / ``keepdims`` for axis arguments, and every
    tuple of three or more integers (an axis order) written without spaces.
    """
    tokens: set[str] = set()
    code = "\n".join(line.split("#")[0] for line in region.splitlines())
    words = list(tokenize.generate_tokens(StringIO(code + "\n").readline))
    for previous, token in zip(words, words[1:]):
        if token.string == "(" and previous.type == tokenize.NAME and previous.string not in (
                GENERIC | set(re.findall(r"\w+", signature))):
            tokens.add(previous.string + "(")
    for name, value in re.findall(r"\b(axis|axes|perm)\s*=\s*(\(?[-\d, ]+\)?|\[[-\d, ]+\])", code):
        tokens.add(f"{name}={value.replace(' ', '')}")
    if "keepdims" in code:
        tokens.add("keepdims")
    for numbers in re.findall(r"[(\[]\s*(-?\d+(?:\s*,\s*-?\d+){2,})\s*[)\]]", code):
        tokens.add("(" + re.sub(r"\s+", "", numbers) + ")")
    return tokens


def leaks(text: str, tokens: set[str]) -> set[str]:
    """The tokens that ``text`` contains (axis arguments also as 'axis -2' in prose)."""
    squeezed = re.sub(r"\s+", "", text)
    found = set()
    for token in tokens:
        if token.startswith(("axis=", "axes=", "perm=")):
            name, value = token.split("=", 1)
            if re.search(rf"{name}\s*[=: ]\s*{re.escape(value)}(?![\d])", text):
                found.add(token)
        elif token.startswith("("):
            if token in squeezed:
                found.add(token)
        elif re.search(rf"(?<![\w.]){re.escape(token)}|\.{re.escape(token)}", text):
            found.add(token)
    return found


def build_tasks(path: pathlib.Path):
    """For each checker cell of ``path``: (checker cell source, the learner's text before it,
    the distinctive tokens of the solution regions that checker judges)."""
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not cell.source.startswith("checks.check_"):
            continue
        name = re.search(r"\((\w+)\)", cell.source).group(1)
        [defining] = [c for c in cells[:index] if re.search(rf"^(def|class) {name}\b",
                                                            c.source, re.M)]
        signature = "\n".join(line for line in stub_source(defining.source).splitlines()
                              if line.lstrip().startswith(("def ", "class ", "@")))
        tokens = set().union(*(distinctive_tokens(r, signature) for r in regions(defining.source)))
        before = "\n".join(stub_source(c.source) for c in cells[:index])
        yield cell.source, before, tokens


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_nothing_before_a_checker_gives_the_recipe_away(path):
    tasks = list(build_tasks(path))
    assert tasks, f"{path.name} has no ★ Build task"
    for checker_cell, before, tokens in tasks:
        assert tokens, f"{path.name}: no distinctive token found for {checker_cell}"
        found = leaks(before, tokens)
        assert not found, f"{path.name}, before `{checker_cell}`: {sorted(found)}"


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=[e[1] for e in EXERCISES])
def test_a_stubs_checker_message_gives_no_recipe(notebook, name, check):
    source = next(c.source for c in nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb",
                                                  as_version=4).cells
                  if re.search(rf"^(def|class) {name}\b", c.source, re.M))
    tokens = set().union(*(distinctive_tokens(r) for r in regions(source)))
    message = check(notebook_object(notebook, name, stub=True)).message
    assert not leaks(message, tokens), message


OLD_STUBS = {
    # The stubs and checker hints of the previous exercises, kept here as known leaks.
    "05_multi_head_external_attention": "raise NotImplementedError('reshape to (B, N, H, dh), "
                                        "then transpose with axes (0, 2, 1, 3).')",
    "04_double_normalization": "raise NotImplementedError('subtract the max over axis -2, exp, "
                               "divide by the sum over axis -2; then divide by the sum over "
                               "axis -1.')",
    "02_self_attention": "Hint: logits = Q @ K^T / sqrt(d_k) with K^T = np.swapaxes(k, -1, -2); "
                         "softmax over the keys (axis -1); output = weights @ V.",
    "01_patches": "Cut a batch of images ... with NumPy alone (`reshape` and `transpose`): "
                  "reshape to (B, H/P, P, W/P, P, C), transpose(0, 1, 3, 2, 4, 5)",
}


@pytest.mark.parametrize("notebook", sorted(OLD_STUBS))
def test_the_rule_flags_the_old_leaky_stubs(notebook):
    path = ROOT / "solutions" / f"{notebook}.ipynb"
    tokens = set().union(*(tokens for _, _, tokens in build_tasks(path)))
    assert leaks(OLD_STUBS[notebook], tokens)


def test_the_rule_ignores_the_contract():
    tokens = distinctive_tokens("    b, n, width = x.shape\n"
                                "    return x.reshape(b, n, h, width // h).transpose(0, 2, 1, 3)\n")
    assert tokens == {"reshape(", "transpose(", "(0,2,1,3)"}
    assert not leaks('def split_heads(x, num_heads):\n    """x (B, N, H*dh) -> (B, H, N, dh)."""',
                     tokens)


# ----------------------------------------------------------------------------------------------
# The hints themselves


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=[e[1] for e in EXERCISES])
def test_every_build_task_has_three_hints_from_idea_to_code(notebook, name, check):
    levels = [checks.hint(check.exercise, level) for level in (1, 2, 3)]
    assert [h.level for h in levels] == [1, 2, 3]
    assert len({h.text for h in levels}) == 3
    source = next(c.source for c in nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb",
                                                  as_version=4).cells
                  if re.search(rf"^(def|class) {name}\b", c.source, re.M))
    tokens = set().union(*(distinctive_tokens(r) for r in regions(source)))
    # Level 1 is the idea: no code. Level 3 is nearly the code: it names the operations.
    assert not leaks(levels[0].text, tokens), levels[0].text
    assert leaks(levels[2].text, tokens), levels[2].text


def test_a_hint_shows_itself_and_points_to_the_next_level():
    first = checks.hint("split_heads")
    assert first.level == 1 and "checks.hint('split_heads', 2)" in first._repr_markdown_()
    assert "Hint 3/3" in repr(checks.hint("check_split_heads", 3))
    assert checks.hint("check_parameter_count", 1).exercise == "count_parameters"


def test_hint_level_3_shows_as_a_code_block():
    text = checks.hint("standardize", 3)._repr_markdown_()
    assert "```python\n" in text and text.rstrip().endswith("```")
    code = text.split("```python\n")[1].split("```")[0]
    assert "`" not in code
    assert "return (train - mean) / std, (test - mean) / std" in code.splitlines()
    compile(code.replace("return ", "_ = "), "hint", "exec")  # lines of Python
    assert "(or" not in checks.hint("attention_to_pixels", 3)._repr_markdown_()


@pytest.mark.parametrize(("args", "words"), [(("no_such_exercise", 1), "split_heads"),
                                             ((None, 1), "split_heads"),
                                             ((3, 1), "split_heads"),
                                             (("split_heads", 4), "levels 1"),
                                             (("split_heads", True), "levels 1")])
def test_a_wrong_hint_request_names_the_choices(args, words):
    with pytest.raises(ValueError, match=words):
        checks.hint(*args)


# ----------------------------------------------------------------------------------------------
# The conventions the generators rely on (see the solution-notebook conventions).


def test_there_is_one_exercise_per_notebook():
    assert [p.stem[:2] for p in SOLUTIONS] == [f"{i:02d}" for i in range(11)]
    notebooks = {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert {p.stem for p in SOLUTIONS} >= notebooks, "a notebook has no exercise"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_solution_follows_the_cell_conventions(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].source.startswith(f"# Exercise {path.stem[:2]} · ")
    assert f"(../notebooks/{path.stem}.ipynb)" in cells[0].source
    assert all(cell.get("id") for cell in cells)
    assert len({cell["id"] for cell in cells}) == len(cells)
    headings = [line for c in cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    for tier in ("★ Build", "★★ Predict", "★★★ Explore"):
        assert any(re.match(rf"#+ {tier}:", h) for h in headings), f"{path.name}: no {tier}"
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None
        if cell.source.startswith("**Your prediction:**"):
            # question before, then the cell to run, then the answer, folded
            assert cells[index - 1].source.startswith("## ★★ Predict")
            assert cells[index + 1].cell_type == "code"
            assert cells[index + 2].source.startswith("<details><summary>Answer</summary>")
            assert cells[index + 2].source.rstrip().endswith("</details>")
    assert sum(c.source.startswith("**Your prediction:**") for c in cells) == sum(
        h.startswith("## ★★ Predict") for h in headings)
    assert sum(c.source.startswith("**Your findings:**") for c in cells) == sum(
        h.startswith("## ★★★ Explore") for h in headings)
