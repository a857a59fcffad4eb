"""The checker of exercise 04's backward pass: the double normalization's gradient, by hand.

The learner writes ``double_normalization_backward(logits, upstream)``: for logits ``Z`` of
shape ``(..., N, S)`` and ``upstream = dL/dA``, where ``A`` is the double normalization of ``Z``,
it returns ``dL/dZ``, same shape. With ``P`` the softmax of ``Z`` over ``N`` and ``r`` the
inverse of each row's sum of ``P`` over ``S`` (so that ``A = P * r``), the answer is::

    dL/dP = r * (G - sum_S(G * A))         the l1 step (quotient rule)
    dL/dZ = P * (dL/dP - sum_N(P * dL/dP))  the softmax over N

The checker compares with ``tf.GradientTape`` differentiating the forward steps (softmax over
``N``, then the l1 division), in float64. A wrong answer is diagnosed by how it relates to the
right one: first the classic mistakes, each computed here (the quotient-rule term missing, the
softmax's subtraction missing, a sum over the wrong axis, a sign, only one of the two steps...);
then a sign or a constant factor; then a least-squares fit of the answer on the four terms the
right answer expands into, ``A*G - A*sum_S(G*A) - P*sum_N(A*G) + P*sum_N(A*sum_S(G*A))``,
which names the term that is missing, doubled or of the wrong sign. Every rejection carries a
``Likely mistake:`` line.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from eanet_course import reference as ref
from eanet_course.checks._core import Mistake, call, checker, close, fresh_rng, preview, to_array

#: Tolerances: relative, and absolute as a fraction of the largest entry of the right answer.
#: Logits offset by hundreds leave float32 about 4 significant digits.
TOLERANCES = {"gentle": (1e-4, 1e-6), "offsets": (3e-3, 3e-4)}

#: The four terms the right answer expands into, in order, with their signs in it.
TERMS = ("A*G, the upstream carried straight through both steps",
         "A*sum_S(G*A), the l1 step's quotient-rule term (from the row sum in the denominator)",
         "P*sum_N(A*G), the softmax's subtraction term (from the column sum in its denominator)",
         "P*sum_N(A*sum_S(G*A)), the softmax's subtraction term applied to the quotient-rule term")
SIGNS = np.array([1.0, -1.0, -1.0, 1.0])


def _forward(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(P, r)``: the softmax over N and the inverse of its row sums over S (kept as an axis)."""
    p = ref.softmax(logits, axis=-2)
    return p, 1.0 / (p.sum(axis=-1, keepdims=True) + ref.EPSILON)


def _through_softmax(p: np.ndarray, d_p: np.ndarray, axis: int = -2,
                     sign: float = -1.0, weights: np.ndarray | None = None) -> np.ndarray:
    """``P * d_p + sign * weights * sum_axis(P * d_p)`` (right: ``axis=-2``, ``sign=-1``,
    ``weights=P``)."""
    t = p * d_p
    return t + sign * (p if weights is None else weights) * t.sum(axis=axis, keepdims=True)


def tape_gradient(logits: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """``dL/dlogits`` by ``tf.GradientTape`` through the forward steps, in float64, for
    ``L = sum(upstream * A)``: the reference the checker judges with."""
    import tensorflow as tf  # here: the rest of the checkers need no TensorFlow

    z = tf.constant(logits, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(z)
        p = tf.nn.softmax(z, axis=-2)
        a = p / (tf.reduce_sum(p, axis=-1, keepdims=True) + ref.EPSILON)
        loss = tf.reduce_sum(a * tf.constant(upstream, tf.float64))
    return tape.gradient(loss, z).numpy()


def terms(logits: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """The four terms of the right answer, ``(4, ...)``, in the order of :data:`TERMS`; the
    right answer is their sum with :data:`SIGNS`."""
    p, r = _forward(logits)
    a = p * r
    direct = a * upstream
    quotient = a * (upstream * a).sum(axis=-1, keepdims=True)
    return np.stack([direct, quotient, p * direct.sum(axis=-2, keepdims=True),
                     p * quotient.sum(axis=-2, keepdims=True)])


def mistakes(logits: np.ndarray, upstream: np.ndarray) -> dict[str, np.ndarray]:
    """The classic wrong gradients, each with the explanation the learner reads."""
    p, r = _forward(logits)
    a, g = p * r, upstream
    right_d_p = r * (g - (g * a).sum(axis=-1, keepdims=True))
    right = _through_softmax(p, right_d_p)
    plain = ref.softmax(logits, axis=-1)
    found = {
        "the l1 step's quotient-rule term is missing: the row sum sum_S(P) in A = P / sum_S(P) "
        "was treated as a constant. It depends on P too, so dL/dP = r * (G - sum_S(G * A)), "
        "not r * G.": _through_softmax(p, r * g),
        "the softmax's subtraction term is missing, or its sum runs over S instead of N "
        "(the two agree: P * dL/dP sums to 0 over S). The softmax over N couples the patches: "
        "dL/dZ = P * (dL/dP - sum_N(P * dL/dP)), the sum over the patch axis N.": p * right_d_p,
        "both subtraction terms are missing: you multiplied the upstream by A, as if each step "
        "were a plain product. Both steps divide by a sum of what they normalize, and each sum "
        "gives a term of its own.": a * g,
        "a sign error: your gradient is exactly minus the right one. dL/dZ goes with the loss, "
        "L = sum(G * A); check the sign of each subtraction.": -right,
        "the l1 step's sum runs over the patch axis N; the l1 step divides each row by its sum "
        "over the memory axis S, so its quotient-rule term sums G * A over S.":
            _through_softmax(p, r * (g - (g * a).sum(axis=-2, keepdims=True))),
        "only the softmax part: your gradient is that of the softmax over N alone, as if A were "
        "P. Go through the l1 step first: dL/dP = r * (G - sum_S(G * A)), then the softmax.":
            _through_softmax(p, g),
        "only the l1 part: you returned dL/dP, the gradient with respect to the softmax's "
        "output. One step is left: through the softmax over N to the logits.": right_d_p,
        "the factor r = 1 / sum_S(P) is missing in the l1 step: dL/dP = r * (G - sum_S(G * A)), "
        "the whole bracket divided by the row's sum.": _through_softmax(p, g - (g * a).sum(
            axis=-1, keepdims=True)),
        "A where P belongs in the softmax step: its subtraction term is P * sum_N(P * dL/dP), "
        "with the softmax's own output P, not the final A.":
            _through_softmax(p, right_d_p, weights=a),
        "the quotient-rule term has the wrong sign: the row sum is in the denominator, so its "
        "derivative subtracts, dL/dP = r * (G - sum_S(G * A)).":
            _through_softmax(p, r * (g + (g * a).sum(axis=-1, keepdims=True))),
        "the softmax's subtraction term has the wrong sign: dL/dZ = P * (dL/dP - sum_N(P * "
        "dL/dP)), a minus.": _through_softmax(p, right_d_p, sign=1.0),
        "this is the gradient of a plain softmax over S (the ablation), not of the double "
        "normalization: the softmax runs over N, then the l1 step over S.":
            plain * (g - (plain * g).sum(axis=-1, keepdims=True)),
        "you returned the attention A itself, not the gradient with respect to the logits.": a,
        "only the diagonal of the softmax's Jacobian, P * (1 - P): column j of P depends on "
        "every logit of column j, so dL/dZ = P * (dL/dP - sum_N(P * dL/dP)), a sum over N.":
            p * (1.0 - p) * right_d_p,
        "only the diagonal of the l1 step's Jacobian, r * (1 - A): each A of a row depends on "
        "every P of that row, so dL/dP = r * (G - sum_S(G * A)), a sum over S.":
            _through_softmax(p, r * (1.0 - a) * g),
        "a mean over N where the softmax's subtraction term sums over N: dL/dZ = P * (dL/dP - "
        "sum_N(P * dL/dP)), a sum, not np.mean.": p * (right_d_p - (p * right_d_p).mean(
            axis=-2, keepdims=True)),
        "a mean over S where the quotient-rule term sums over S: dL/dP = r * (G - sum_S(G * A)), "
        "a sum, not np.mean.": _through_softmax(p, r * (g - (g * a).mean(axis=-1,
                                                                         keepdims=True))),
    }
    # The forward pass recomputed wrongly, the backward formula right.
    for explanation, (p_wrong, r_wrong) in {
        "the forward pass recomputes the softmax over S (axis -1); the double normalization's "
        "softmax runs over the patch axis N (axis -2), then the l1 step over S.": _forward_with(
            logits, axis=-1, max_axis=-1),
        "the maximum subtracted in the forward pass is taken over S (each row's): a softmax over N "
        "ignores a constant per column only, so subtract each column's maximum over N "
        "(axis=-2).": _forward_with(logits, axis=-2, max_axis=-1),
    }.items():
        found[explanation] = _through_softmax(p_wrong, r_wrong * (
            g - (g * p_wrong * r_wrong).sum(axis=-1, keepdims=True)))
    if logits.ndim > 2:
        found["axes counted from the front (axis=0, axis=1): right for one (N, S) map, wrong "
              "with leading batch or head axes; count from the end (axis=-2 for N, axis=-1 "
              "for S)."] = _front_axes(logits, upstream)
    return found


def _forward_with(logits: np.ndarray, axis: int, max_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(P, r)`` with the softmax over ``axis`` and the maximum taken over ``max_axis``."""
    e = np.exp(logits - logits.max(axis=max_axis, keepdims=True))
    p = e / e.sum(axis=axis, keepdims=True)
    return p, 1.0 / (p.sum(axis=-1, keepdims=True) + ref.EPSILON)


def _front_axes(logits: np.ndarray, upstream: np.ndarray) -> np.ndarray:
    """The right formula written with axes 0 (for N) and 1 (for S)."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    p = e / e.sum(axis=0, keepdims=True)
    r = 1.0 / p.sum(axis=1, keepdims=True)
    d_p = r * (upstream - (upstream * p * r).sum(axis=1, keepdims=True))
    return p * (d_p - (p * d_p).sum(axis=0, keepdims=True))


def _diagnosis(got: np.ndarray, expected: np.ndarray, logits: np.ndarray,
               upstream: np.ndarray, rtol: float, atol: float) -> str:
    """The ``Likely mistake:`` line for a wrong answer of the right shape."""
    if not np.all(np.isfinite(got)):
        return ("your gradient contains NaN or inf. The exponential overflows for logits in "
                "the hundreds unless each column's maximum over N is subtracted first (it "
                "cancels in the softmax), and no sum may become a divisor where it is 0.")
    if np.max(np.abs(got)) <= atol:
        return ("your gradient is 0 everywhere. Is the upstream G used? The gradient of sum(A) "
                "alone is 0, since every row of A sums to 1.")
    with np.errstate(all="ignore"):  # a wrong forward pass may overflow on the offset logits
        candidates = mistakes(logits, upstream)
    for explanation, wrong in candidates.items():
        if close(got, wrong, rtol, atol):
            return explanation
    flat, right = got.reshape(-1), expected.reshape(-1)
    factor = float(flat @ right / (right @ right))
    if close(got, factor * expected, rtol, atol):
        return (f"your gradient is {factor:.3g} times the right one: the terms are right, a "
                "constant is wrong (a sum averaged, a factor of 2, an extra division).")
    basis = terms(logits, upstream).reshape(4, -1)
    fitted, *_ = np.linalg.lstsq(basis.T, flat, rcond=None)
    if np.allclose(basis.T @ fitted, flat, rtol=rtol, atol=atol):
        fitted = np.round(fitted, 3) + 0.0  # no -0.0
        wrong = [f"  {TERMS[k]}: " + ("missing" if fitted[k] == 0 else f"{fitted[k]:+g}")
                 + f" in yours, {SIGNS[k]:+.0f} in the right answer"
                 for k in range(4) if fitted[k] != SIGNS[k]]
        return ("your gradient is made of the right terms, with these coefficients wrong "
                "(the right answer is A*G - A*sum_S(G*A) - P*sum_N(A*G) "
                "+ P*sum_N(A*sum_S(G*A))):\n" + "\n".join(wrong))
    return ("none of the classic mistakes matches. Check each step alone, on a (3, 2) map: "
            "dL/dP of the l1 step against a finite difference of A = P / sum_S(P) with P "
            "held fixed, then the softmax step with G taken as dL/dP.")


def _likely(message: str) -> str:
    """The likely mistake behind feedback on a call that gave no array to judge."""
    if "returned None" in message:
        return "the `return` is missing."
    if "still running" in message:
        return "a loop whose condition never changes."
    if "broadcast" in message:
        return ("a sum that drops its axis: logits and upstream have the same shape, and a "
                "sum kept as an axis of length 1 broadcasts back against them.")
    if "array of numbers" in message or "KerasTensor" in message:
        return "return the gradient as a NumPy array of the logits' shape."
    return "the error above names the line of your code that failed."


def _cases(rng: np.random.Generator) -> list[tuple[tuple, str, np.random.Generator]]:
    """Three shapes (N different from S, leading axes or none) twice each, logits offset by
    hundreds per memory unit, and one case drawn fresh (no cached or stored result passes)."""
    shapes = [(5, 3), (2, 4, 6), (2, 3, 5, 4)]
    return ([(s, "gentle", rng) for s in shapes for _ in range(2)]
            + [((2, 6, 4), "offsets", rng), ((4, 3), "gentle", fresh_rng())])


@checker("double_normalization_backward")
def check_double_normalization_backward(fn: Callable) -> str:
    """Check ``fn(logits (..., N, S), upstream (..., N, S)) -> dL/dlogits (..., N, S)``, the
    double normalization's gradient for ``upstream = dL/dA``."""
    cases = _cases(np.random.default_rng(41))
    for shape, kind, gen in cases:
        logits = 1.5 * gen.normal(size=shape)
        note = ""
        if kind == "offsets":
            # Beyond exp's range both ways: an exponential without the maximum overflows.
            offsets = gen.uniform(-1000.0, 1000.0, size=(*shape[:-2], 1, shape[-1]))
            offsets[..., :2] = (900.0, -900.0)
            logits = logits + offsets
            note = ", each memory unit's logits offset by up to ±1000"
        upstream = gen.normal(size=shape)
        what = f"logits and upstream of shape {shape}{note}"
        try:
            got = to_array(call(fn, logits, upstream, what=what), "dL/dlogits", what)
        except Mistake as error:
            raise Mistake(f"{error}\nLikely mistake: {_likely(str(error))}") from None
        expected = tape_gradient(logits, upstream)
        rtol, atol = TOLERANCES[kind]
        atol *= max(1.0, float(np.max(np.abs(expected))))
        if close(got, expected, rtol, atol):
            continue
        lines = [f"Called with {what}:",
                 f"  expected dL/dlogits of shape {expected.shape}, starting {preview(expected)}",
                 f"  got      dL/dlogits of shape {got.shape}, starting {preview(got)}"]
        if got.shape != expected.shape:
            swapped = sorted(got.shape) == sorted(expected.shape)
            lines.append(f"Likely mistake: the shapes differ ({got.shape} instead of "
                         f"{expected.shape}); dL/dlogits has the shape of the logits. "
                         + ("Same sizes in another order: two axes are swapped." if swapped
                            else "A sum must keep its axis (length 1) to broadcast back."))
        else:
            lines.append(f"The largest difference is {np.max(np.abs(got - expected)):.3g}.")
            lines.append("Likely mistake: " + _diagnosis(got, expected, logits, upstream,
                                                          rtol, atol))
        raise Mistake("\n".join(lines))
    return (f"Matches tf.GradientTape's gradient on {len(cases)} random cases of "
            f"{len({shape for shape, _, _ in cases})} shapes, "
            "logits offset by hundreds included.")
