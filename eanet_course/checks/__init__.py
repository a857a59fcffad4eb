"""Checkers for the exercises: friendly feedback that names the classic mistakes, and hints.

Each ``check_<name>(learner_function)`` calls the learner's function on several random inputs
(near misses fail: fractional images, logits in the thousands, fresh values for every shape),
compares with :mod:`eanet_course.reference`, and returns a :class:`CheckResult`. A checker never
raises on the learner's code (an exception, ``sys.exit``, an endless loop, a stub, a wrong type
or shape, NaN): it says what was expected, what came back, the likely mistake, and which hint
level to read next. ``hint(name, level)`` gives the hints: 1 the idea, 2 the steps, 3 nearly the
code. In a notebook, put the call alone in a cell: the result shows itself as a coloured box.

Modules: ``_core`` (the safe call, time limit, comparison), ``hints``, ``attention`` (01-05),
``blocks`` (the layer, the block, the count), ``training`` (07), ``course`` (00, 08-10).
"""

from eanet_course.checks._core import NOT_IMPLEMENTED, TIME_LIMIT_S, CheckResult
from eanet_course.checks.attention import (
    check_double_normalization, check_external_attention, check_extract_patches,
    check_merge_heads, check_scaled_dot_product_attention, check_split_heads,
)
from eanet_course.checks.backward import check_double_normalization_backward
from eanet_course.checks.blocks import (
    check_external_attention_layer, check_parameter_count, check_transformer_block,
)
from eanet_course.checks.course import (
    check_attention_to_pixels, check_em_step, check_fit_slope, check_sinkhorn,
    check_standardize, check_top_units,
)
from eanet_course.checks.hints import HINTS, Hint, hint
from eanet_course.checks.training import check_learning_rate_schedule, check_train_step

__all__ = [
    "NOT_IMPLEMENTED",
    "TIME_LIMIT_S",
    "CheckResult",
    "Hint",
    "HINTS",
    "hint",
    "check_standardize",
    "check_extract_patches",
    "check_scaled_dot_product_attention",
    "check_external_attention",
    "check_double_normalization",
    "check_split_heads",
    "check_merge_heads",
    "check_external_attention_layer",
    "check_transformer_block",
    "check_parameter_count",
    "check_learning_rate_schedule",
    "check_train_step",
    "check_attention_to_pixels",
    "check_top_units",
    "check_fit_slope",
    "check_sinkhorn",
    "check_em_step",
    "check_double_normalization_backward",
]
