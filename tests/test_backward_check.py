"""The checker of exercise 04's backward pass accepts right gradients and names wrong ones.

Right answers come in the styles a class writes (a stable NumPy version, a loop with each
column's softmax Jacobian written out, float32, TensorFlow ops); wrong answers are the classic
mistakes of a backward pass by hand. Every rejection must carry a ``Likely mistake:`` line that
names the mistake.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from eanet_course import checks
from eanet_course import reference as ref
from eanet_course.checks import backward
from eanet_course.layers import double_normalization

check = checks.check_double_normalization_backward


def forward(logits):
    """P (softmax over N), r (inverse row sums over S), A = P * r."""
    p = ref.softmax(logits, axis=-2)
    r = 1.0 / p.sum(axis=-1, keepdims=True)
    return p, r, p * r


def through_softmax(p, d_p, axis=-2, sign=-1.0, weights=None):
    t = p * d_p
    return t + sign * (p if weights is None else weights) * t.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------------------------------
# Right answers


def right_numpy(logits, upstream):
    p, r, a = forward(logits)
    d_p = r * (upstream - (upstream * a).sum(axis=-1, keepdims=True))
    return p * (d_p - (p * d_p).sum(axis=-2, keepdims=True))


def right_jacobian_loops(logits, upstream):
    """Each row's l1 Jacobian and each column's softmax Jacobian written out as matrices."""
    logits = np.asarray(logits)
    n, s = logits.shape[-2:]
    flat_z, flat_g = logits.reshape(-1, n, s), upstream.reshape(-1, n, s)
    out = np.empty_like(flat_z)
    for b in range(flat_z.shape[0]):
        p = ref.softmax(flat_z[b], axis=0)
        d_p = np.empty((n, s))
        for i in range(n):
            total = p[i].sum()
            jacobian = (np.eye(s) * total - p[i][:, None]) / total**2  # dA_ij / dP_ik, (j, k)
            d_p[i] = flat_g[b, i] @ jacobian
        for j in range(s):
            jacobian = np.diag(p[:, j]) - np.outer(p[:, j], p[:, j])  # dP_ij / dZ_kj
            out[b, :, j] = d_p[:, j] @ jacobian
    return out.reshape(logits.shape)


def right_float32(logits, upstream):
    return right_numpy(logits.astype("float32"), upstream.astype("float32"))


def right_tensorflow_ops(logits, upstream):
    z, g = tf.constant(logits), tf.constant(upstream)
    p = tf.nn.softmax(z, axis=-2)
    r = 1.0 / tf.reduce_sum(p, axis=-1, keepdims=True)
    d_p = r * (g - tf.reduce_sum(g * p * r, axis=-1, keepdims=True))
    return p * d_p - p * tf.reduce_sum(p * d_p, axis=-2, keepdims=True)


@pytest.mark.parametrize("fn", [right_numpy, right_jacobian_loops, right_float32,
                                right_tensorflow_ops])
def test_right_gradients_pass(fn):
    result = check(fn)
    assert result.passed, result.message


def test_the_reference_agrees_with_the_packages_written_out_gradient():
    rng = np.random.default_rng(0)
    logits, upstream = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 5, 3))
    z = tf.constant(logits, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(z)
        loss = tf.reduce_sum(double_normalization(z) * tf.constant(upstream, tf.float32))
    tape_answer = backward.tape_gradient(logits, upstream)
    np.testing.assert_allclose(tape.gradient(loss, z).numpy(), tape_answer, atol=1e-6)
    terms = backward.terms(logits, upstream)
    np.testing.assert_allclose(np.tensordot(backward.SIGNS, terms, 1), tape_answer, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Wrong answers, each with the words its diagnosis must contain


def no_quotient_term(logits, upstream):
    p, r, _ = forward(logits)
    return through_softmax(p, r * upstream)


def no_softmax_subtraction(logits, upstream):
    p, r, a = forward(logits)
    return p * r * (upstream - (upstream * a).sum(axis=-1, keepdims=True))


def softmax_sum_over_s(logits, upstream):
    p, r, a = forward(logits)
    return through_softmax(p, r * (upstream - (upstream * a).sum(axis=-1, keepdims=True)),
                           axis=-1)


def l1_sum_over_n(logits, upstream):
    p, r, a = forward(logits)
    return through_softmax(p, r * (upstream - (upstream * a).sum(axis=-2, keepdims=True)))


def sign_flipped(logits, upstream):
    return -right_numpy(logits, upstream)


def softmax_part_only(logits, upstream):
    p, _, _ = forward(logits)
    return through_softmax(p, upstream)


def l1_part_only(logits, upstream):
    _, r, a = forward(logits)
    return r * (upstream - (upstream * a).sum(axis=-1, keepdims=True))


def times_a(logits, upstream):
    return forward(logits)[2] * upstream


def no_row_sum_factor(logits, upstream):
    p, _, a = forward(logits)
    return through_softmax(p, upstream - (upstream * a).sum(axis=-1, keepdims=True))


def a_for_p_in_softmax(logits, upstream):
    p, r, a = forward(logits)
    d_p = r * (upstream - (upstream * a).sum(axis=-1, keepdims=True))
    return through_softmax(p, d_p, weights=a)


def plain_softmax_gradient(logits, upstream):
    s = ref.softmax(logits, axis=-1)
    return s * (upstream - (s * upstream).sum(axis=-1, keepdims=True))


def unstable(logits, upstream):
    e = np.exp(logits)
    p = e / e.sum(axis=-2, keepdims=True)
    r = 1.0 / p.sum(axis=-1, keepdims=True)
    d_p = r * (upstream - (upstream * p * r).sum(axis=-1, keepdims=True))
    return p * (d_p - (p * d_p).sum(axis=-2, keepdims=True))


def doubled(logits, upstream):
    return 2.0 * right_numpy(logits, upstream)


def quotient_doubled_and_no_softmax_term(logits, upstream):
    p, r, a = forward(logits)
    return p * r * (upstream - 2.0 * (upstream * a).sum(axis=-1, keepdims=True))


def upstream_ignored(logits, upstream):
    return right_numpy(logits, np.ones_like(upstream))


def sums_without_keepdims(logits, upstream):
    p, r, a = forward(logits)
    return r * (upstream - (upstream * a).sum(axis=-1))


def transposed(logits, upstream):
    return np.swapaxes(right_numpy(logits, upstream), -1, -2)


def forgot_return(logits, upstream):
    right_numpy(logits, upstream)


WRONG = [
    (no_quotient_term, "quotient-rule term is missing"),
    (no_softmax_subtraction, "subtraction term is missing"),
    (softmax_sum_over_s, "its sum runs over S instead of N"),
    (l1_sum_over_n, "l1 step's sum runs over the patch axis N"),
    (sign_flipped, "sign error"),
    (softmax_part_only, "only the softmax part"),
    (l1_part_only, "only the l1 part"),
    (times_a, "both subtraction terms are missing"),
    (no_row_sum_factor, "factor r = 1 / sum_S(P) is missing"),
    (a_for_p_in_softmax, "A where P belongs"),
    (plain_softmax_gradient, "plain softmax over S"),
    (unstable, "NaN or inf"),
    (doubled, "2 times the right one"),
    (quotient_doubled_and_no_softmax_term, "quotient-rule term (from the row sum in the "
                                           "denominator): -2 in yours"),
    (upstream_ignored, "upstream G used"),
    (sums_without_keepdims, "a sum that drops its axis"),
    (transposed, "the shapes differ"),
    (forgot_return, "the `return` is missing"),
]


@pytest.mark.parametrize(("fn", "words"), WRONG, ids=[fn.__name__ for fn, _ in WRONG])
def test_wrong_gradients_are_rejected_with_the_mistake_named(fn, words):
    result = check(fn)
    assert not result.passed and not result.not_implemented, result.message
    assert "Likely mistake:" in result.message, result.message
    likely = result.message.split("Likely mistake:", 1)[1]
    assert words in likely, result.message


def test_a_mistake_the_fit_names_term_by_term():
    message = check(quotient_doubled_and_no_softmax_term).message
    assert "softmax's subtraction term (from the column sum in its denominator): missing" \
        in message, message


def test_a_stub_is_not_implemented_and_never_raises():
    def stub(logits, upstream):
        raise NotImplementedError()

    assert check(stub).not_implemented
    assert not check("not a function").passed
