"""The checkers pass the solutions, call the stubs "not implemented yet", and behave in class.

The correct functions come from the solution notebooks themselves, and the stubs are made from
them the way every generator makes them (the solution region replaced by a bare
``raise NotImplementedError()``), so the tests check what learners actually get. The bank of
right and wrong answers is in ``test_checker_bank.py``.
"""

import html
import pathlib
import re

import keras
import nbformat
import numpy as np
import pytest

from eanet_course import checks
from eanet_course import reference as ref

ROOT = pathlib.Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

# (notebook, what the learner writes, its checker)
EXERCISES = [
    ("00_setup_and_data", "standardize", checks.check_standardize),
    ("01_patches", "extract_patches", checks.check_extract_patches),
    ("02_self_attention", "scaled_dot_product_attention",
     checks.check_scaled_dot_product_attention),
    ("03_external_attention", "external_attention", checks.check_external_attention),
    ("04_double_normalization", "double_normalization", checks.check_double_normalization),
    ("04_double_normalization", "double_normalization_backward",
     checks.check_double_normalization_backward),
    ("05_multi_head_external_attention", "split_heads", checks.check_split_heads),
    ("05_multi_head_external_attention", "merge_heads", checks.check_merge_heads),
    ("05_multi_head_external_attention", "MyExternalAttention",
     checks.check_external_attention_layer),
    ("06_eanet_model", "transformer_block", checks.check_transformer_block),
    ("06_eanet_model", "count_parameters", checks.check_parameter_count),
    ("07_training", "warmup_cosine", checks.check_learning_rate_schedule),
    ("07_training", "train_step", checks.check_train_step),
    ("08_attention_maps", "attention_to_pixels", checks.check_attention_to_pixels),
    ("08_attention_maps", "top_units", checks.check_top_units),
    ("09_complexity_and_scaling", "fit_slope", checks.check_fit_slope),
    ("10_limits_and_relatives", "sinkhorn", checks.check_sinkhorn),
    ("10_limits_and_relatives", "em_step", checks.check_em_step),
]
IDS = [name for _, name, _ in EXERCISES]


def stub_source(source: str) -> str:
    """``source`` with each solution region replaced by a bare ``raise NotImplementedError()``."""
    pattern = re.compile(rf"^([ \t]+){re.escape(BEGIN)}\n.*?^[ \t]+{re.escape(END)}[ \t]*$",
                         re.S | re.M)
    return pattern.sub(lambda m: f"{m.group(1)}raise NotImplementedError()", source)


def notebook_object(notebook: str, name: str, stub: bool = False):
    """``name`` as the solution notebook defines it (or its stub): the notebook's first code
    cell (the imports) and the cell that defines ``name`` are executed."""
    cells = [c for c in nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb",
                                      as_version=4).cells if c.cell_type == "code"]
    defining = [c for c in cells if re.search(rf"^(def|class) {name}\b", c.source, re.M)]
    assert len(defining) == 1, f"{notebook}: expected one cell defining {name}"
    assert BEGIN in defining[0].source
    namespace: dict = {}
    exec(cells[0].source, namespace)
    exec(stub_source(defining[0].source) if stub else defining[0].source, namespace)
    return namespace[name]


def test_every_build_task_is_listed_here():
    """Each checker cell of every solution is one of the EXERCISES above."""
    called = set()
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code" and "checks.check_" in cell.source:
                assert re.fullmatch(r"checks\.check_\w+\(\w+\)", cell.source.strip()), (
                    f"{path.name}: a checker cell holds one call and nothing else:\n"
                    f"{cell.source}")
                called.add((path.stem, cell.source.strip()))
    listed = {(nb, f"checks.{check.__name__}({name})") for nb, name, check in EXERCISES}
    assert called == listed


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=IDS)
def test_every_checker_passes_its_solution(notebook, name, check):
    result = check(notebook_object(notebook, name))
    assert result.passed, result.message
    assert result.message.startswith(f"✓ {check.__name__}: correct")


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=IDS)
def test_every_checker_reports_its_stub_as_not_implemented(notebook, name, check):
    result = check(notebook_object(notebook, name, stub=True))
    assert not result.passed and result.not_implemented, result.message
    assert f"checks.hint({check.exercise!r}, 1)" in result.message
    assert check.exercise in checks.HINTS


# ----------------------------------------------------------------------------------------------
# A checker never raises, whatever the learner hands it, and leaves the session as it was.


def raises_value_error(*args, **kwargs):
    raise ValueError("shapes (3,4) and (5,4) not aligned")


def returns_none(*args, **kwargs):
    return None


def returns_text(*args, **kwargs):
    return "attention"


def returns_nan(*args, **kwargs):
    return np.full((2, 3), np.nan)


@pytest.mark.parametrize("check", [c for _, _, c in EXERCISES], ids=IDS)
@pytest.mark.parametrize("wrong", [raises_value_error, returns_none, returns_text, returns_nan])
def test_checkers_never_raise_on_broken_functions(check, wrong):
    result = check(wrong)
    assert not result.passed and not result.not_implemented
    assert result.message.startswith(f"✗ {check.__name__}: not right yet.")
    if wrong is raises_value_error:
        assert "raised ValueError: shapes (3,4) and (5,4) not aligned" in result.message


@pytest.mark.parametrize("policy", ["mixed_float16", "float64", "bfloat16"])
def test_a_learners_dtype_policy_neither_breaks_a_checker_nor_is_lost(policy):
    block = notebook_object("06_eanet_model", "transformer_block")
    before = keras.config.dtype_policy().name
    keras.config.set_dtype_policy(policy)
    try:
        assert checks.check_transformer_block(block).passed
        assert checks.check_double_normalization(ref.double_normalization).passed
        assert keras.config.dtype_policy().name == policy
    finally:
        keras.config.set_dtype_policy(before)


def test_a_failure_points_to_the_next_hint_level_the_learner_has_not_read():
    def wrong(logits):
        return ref.softmax(logits, axis=-1)

    checks._core.hints_seen.pop("double_normalization", None)
    assert "checks.hint('double_normalization', 1)" in checks.check_double_normalization(
        wrong).message
    checks.hint("double_normalization", 2)
    assert "checks.hint('double_normalization', 3)" in checks.check_double_normalization(
        wrong).message
    checks.hint("double_normalization", 3)
    assert "checks.hint('double_normalization', 3)" in checks.check_double_normalization(
        wrong).message


def test_a_value_that_is_not_a_function_gets_a_hint():
    result = checks.check_double_normalization(np.zeros((3, 3)))
    assert not result.passed
    assert "Pass the function itself" in result.message


def test_wrong_shapes_say_both_shapes():
    result = checks.check_split_heads(lambda x, h: x)
    assert "(2, 5, 12) instead of (2, 3, 5, 4)" in result.message


def test_a_result_shows_itself_in_a_notebook():
    result = checks.check_merge_heads(lambda x: x.reshape(x.shape[0], x.shape[2], -1))
    assert not result
    assert repr(result) == result.message
    assert html.escape(result.message) in result._repr_html_()
    assert "#b42318" in result._repr_html_()


def test_a_function_that_edits_its_input_in_place_is_judged_on_its_answer():
    def double_normalization_in_place(logits):
        logits -= logits.max(axis=-2, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=-2, keepdims=True)
        logits /= logits.sum(axis=-1, keepdims=True)
        return logits

    assert checks.check_double_normalization(double_normalization_in_place).passed


def test_a_block_output_not_computed_from_x_is_explained():
    result = checks.check_transformer_block(lambda x, *sizes: keras.Input(x.shape[1:]))
    assert not result.passed
    assert "not computed from x" in result.message
