"""The checkers pass the solutions, flag the stubs, and name every classic mistake.

The correct functions and the stubs come from the notebooks themselves (solutions/ and the
generated exercises/), so the tests check what learners actually get.
"""

import html
import math
import pathlib

import nbformat
import numpy as np
import pytest
from keras import layers

from eanet_course import checks
from eanet_course import reference as ref
from eanet_course.exercises import BEGIN
from eanet_course.layers import ExternalAttention

ROOT = pathlib.Path(__file__).resolve().parents[1]

# (notebook, function the learner writes, its checker)
EXERCISES = [
    ("01_patches", "extract_patches", checks.check_extract_patches),
    ("02_self_attention", "scaled_dot_product_attention",
     checks.check_scaled_dot_product_attention),
    ("03_external_attention", "external_attention", checks.check_external_attention),
    ("04_double_normalization", "double_normalization", checks.check_double_normalization),
    ("05_multi_head_external_attention", "split_heads", checks.check_split_heads),
    ("05_multi_head_external_attention", "merge_heads", checks.check_merge_heads),
    ("06_eanet_model", "transformer_block", checks.check_transformer_block),
    ("06_eanet_model", "count_parameters", checks.check_parameter_count),
    ("07_training", "warmup_cosine", checks.check_learning_rate_schedule),
]
IDS = [function for _, function, _ in EXERCISES]


def notebook_function(folder: str, notebook: str, name: str):
    """``name`` as defined in ``folder/notebook.ipynb``: its first code cell (the imports) and
    the cell that defines ``name`` are executed."""
    cells = [c for c in nbformat.read(ROOT / folder / f"{notebook}.ipynb", as_version=4).cells
             if c.cell_type == "code"]
    namespace: dict = {}
    exec(cells[0].source, namespace)
    defining = [c for c in cells if f"def {name}(" in c.source]
    assert len(defining) == 1, f"{folder}/{notebook}: expected one cell defining {name}"
    exec(defining[0].source, namespace)
    return namespace[name]


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=IDS)
def test_every_checker_passes_its_solution(notebook, name, check):
    source = nbformat.read(ROOT / "solutions" / f"{notebook}.ipynb", as_version=4)
    assert any(BEGIN in c.source and f"def {name}(" in c.source for c in source.cells)
    result = check(notebook_function("solutions", notebook, name))
    assert result.passed, result.message
    assert result.message.startswith(f"✓ {check.__name__}: correct")


@pytest.mark.parametrize(("notebook", "name", "check"), EXERCISES, ids=IDS)
def test_every_checker_reports_its_stub_as_not_implemented(notebook, name, check):
    result = check(notebook_function("exercises", notebook, name))
    assert not result.passed
    assert result.not_implemented
    assert "not implemented yet" in result.message
    assert "Hint:" in result.message


# ----------------------------------------------------------------------------------------------
# Classic mistakes, each written as a learner would, and the words the feedback must contain.


def _grid(images, p):
    b, h, w, c = images.shape
    return images.reshape(b, h // p, p, w // p, p, c), (b, (h // p) * (w // p), p * p * c)


def patches_column_major(images, p):
    grid, shape = _grid(images, p)
    return grid.transpose(0, 3, 1, 2, 4, 5).reshape(shape)


def patches_channel_planes_first(images, p):
    grid, shape = _grid(images, p)
    return grid.transpose(0, 1, 3, 5, 2, 4).reshape(shape)


def patches_plain_reshape(images, p):
    return _grid(images, p)[0].reshape(_grid(images, p)[1])


def attention_without_scale(q, k, v):
    weights = ref.softmax(q @ np.swapaxes(k, -1, -2), axis=-1)
    return weights @ v, weights


def attention_softmax_over_queries(q, k, v):
    weights = ref.softmax(q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]), axis=-2)
    return weights @ v, weights


def norm_softmax_over_memory(logits):
    over_memory = ref.softmax(logits, axis=-1)
    return over_memory / over_memory.sum(axis=-1, keepdims=True)


def norm_without_l1(logits):
    return ref.softmax(logits, axis=-2)


def norm_l1_over_patches(logits):
    over_patches = ref.softmax(logits, axis=-2)
    return over_patches / over_patches.sum(axis=-2, keepdims=True)


def norm_with_fixed_axes(logits):
    over_patches = ref.softmax(logits, axis=0)
    return over_patches / over_patches.sum(axis=1, keepdims=True)


def norm_unstable_softmax(logits):
    e = np.exp(logits)
    over_patches = e / e.sum(axis=-2, keepdims=True)
    return over_patches / over_patches.sum(axis=-1, keepdims=True)


def external_with(normalization):
    def external_attention(features, m_k, m_v):
        attention = normalization(features @ m_k.T)
        return attention @ m_v, attention
    return external_attention


def split_without_transpose(x, h):
    b, n, width = x.shape
    return x.reshape(b, h, n, width // h)


def split_dh_by_h(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, width // h, h).transpose(0, 3, 1, 2)


def merge_without_transpose(x):
    b, h, n, dh = x.shape
    return x.reshape(b, n, h * dh)


def merge_dh_by_h(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 3, 1).reshape(b, n, dh * h)


def block_without_residuals(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    x = ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    hidden = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(x))
    return layers.Dense(embed_dim)(hidden)


def block_without_second_norm(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    attended = ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    x = layers.Add()([x, attended])
    return layers.Add()([x, layers.Dense(embed_dim)(layers.Dense(mlp_dim, activation="gelu")(x))])


def block_without_gelu(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    """Same layers, same parameter count, same zero-weight output: only the outputs differ."""
    attended = ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    x = layers.Add()([x, attended])
    hidden = layers.Dense(mlp_dim)(layers.LayerNormalization(epsilon=1e-5)(x))
    return layers.Add()([x, layers.Dense(embed_dim)(hidden)])


def block_with_default_epsilon(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    attended = ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization()(x))
    x = layers.Add()([x, attended])
    hidden = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization()(x))
    return layers.Add()([x, layers.Dense(embed_dim)(hidden)])


def params_forgetting(**leave_out):
    """The solution's formula with one term left out (a learner's slip)."""
    solution = notebook_function("solutions", "06_eanet_model", "count_parameters")

    def count(config):
        total = solution(config)
        if leave_out.get("positions"):
            total -= config.num_patches * config.embed_dim
        if leave_out.get("blocks"):
            total -= (config.num_blocks - 1) * (solution(config.replace(num_blocks=2))
                                                - solution(config.replace(num_blocks=1)))
        if leave_out.get("memory_units"):
            total = solution(config.replace(memory_units=None))
        return total
    return count


def schedule_without_warmup(peak, total, warmup):
    import keras
    return keras.optimizers.schedules.CosineDecay(peak, total)


def schedule_without_decay(peak, total, warmup):
    import keras
    return keras.optimizers.schedules.CosineDecay(0.0, total, alpha=1.0, warmup_target=peak,
                                                  warmup_steps=warmup)


MISTAKES = [
    (checks.check_extract_patches, patches_column_major, ["patches in the wrong order",
                                                          "row by row"]),
    (checks.check_extract_patches, patches_channel_planes_first, ["channels interleaved wrongly"]),
    (checks.check_extract_patches, patches_plain_reshape, ["without the transpose"]),
    (checks.check_scaled_dot_product_attention, attention_without_scale,
     ["missing scale factor", "sqrt(d_k)"]),
    (checks.check_scaled_dot_product_attention, attention_softmax_over_queries,
     ["softmax over the wrong axis", "over the queries"]),
    (checks.check_double_normalization, norm_softmax_over_memory,
     ["softmax over the wrong axis", "memory axis S"]),
    (checks.check_double_normalization, norm_without_l1, ["l1 step is missing"]),
    (checks.check_double_normalization, norm_l1_over_patches,
     ["l1 step", "wrong axis (N instead of S)"]),
    (checks.check_double_normalization, norm_with_fixed_axes, ["axis=-2", "leading batch"]),
    (checks.check_double_normalization, norm_unstable_softmax, ["NaN", "subtract the maximum"]),
    (checks.check_external_attention, external_with(norm_softmax_over_memory),
     ["softmax over the wrong axis"]),
    (checks.check_external_attention, external_with(norm_without_l1), ["l1 step is missing"]),
    (checks.check_split_heads, split_without_transpose,
     ["heads split in the wrong order", "mixes patches and channels"]),
    (checks.check_split_heads, split_dh_by_h, ["heads split in the wrong order", "(dh, H) split"]),
    (checks.check_merge_heads, merge_without_transpose,
     ["heads merged in the wrong order", "without the transpose"]),
    (checks.check_merge_heads, merge_dh_by_h, ["heads merged in the wrong order", "(dh, H)"]),
    (checks.check_transformer_block, block_without_residuals, ["residual connection is missing"]),
    (checks.check_transformer_block, block_without_second_norm,
     ["missing one LayerNormalization"]),
    (checks.check_transformer_block, block_without_gelu, ["largest difference"]),
    (checks.check_transformer_block, block_with_default_epsilon, ["epsilon=1e-5"]),
    (checks.check_parameter_count, params_forgetting(positions=True), ["position embedding"]),
    (checks.check_parameter_count, params_forgetting(blocks=True), ["num_blocks"]),
    (checks.check_parameter_count, params_forgetting(memory_units=True), ["memory_units"]),
    (checks.check_learning_rate_schedule, schedule_without_warmup, ["warm-up is missing"]),
    (checks.check_learning_rate_schedule, schedule_without_decay, ["no decay"]),
]


@pytest.mark.parametrize(("check", "wrong", "phrases"), MISTAKES,
                         ids=[f"{c.__name__[6:]}-{w.__name__}" for c, w, _ in MISTAKES])
def test_classic_mistakes_are_rejected_and_named(check, wrong, phrases):
    result = check(wrong)
    assert not result.passed
    assert not result.not_implemented
    for phrase in phrases:
        assert phrase in result.message, result.message
    assert "Hint:" in result.message


# ----------------------------------------------------------------------------------------------
# A checker never raises on what a learner hands it.


def raises_value_error(*args):
    raise ValueError("shapes (3,4) and (5,4) not aligned")


def returns_none(*args):
    return None


def returns_text(*args):
    return "attention"


def returns_nan(*args):
    return np.full((2, 3), np.nan)


@pytest.mark.parametrize("check", [c for _, _, c in EXERCISES], ids=IDS)
@pytest.mark.parametrize("wrong", [raises_value_error, returns_none, returns_text, returns_nan])
def test_checkers_never_raise_on_broken_functions(check, wrong):
    result = check(wrong)
    assert not result.passed and not result.not_implemented
    assert result.message.startswith(f"✗ {check.__name__}: not right yet.")
    if wrong is raises_value_error:
        assert "raised ValueError: shapes (3,4) and (5,4) not aligned" in result.message


def test_a_value_that_is_not_a_function_gets_a_hint():
    result = checks.check_double_normalization(np.zeros((3, 3)))
    assert not result.passed
    assert "Pass the function itself" in result.message


def test_wrong_shapes_say_both_shapes():
    result = checks.check_split_heads(lambda x, h: x)
    assert "(2, 5, 12) instead of (2, 3, 5, 4)" in result.message


def test_a_result_shows_itself_in_a_notebook():
    result = checks.check_merge_heads(merge_dh_by_h)
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
    import keras

    result = checks.check_transformer_block(lambda x, *sizes: keras.Input(x.shape[1:]))
    assert not result.passed
    assert "not computed from x" in result.message
