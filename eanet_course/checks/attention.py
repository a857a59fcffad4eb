"""Checkers for the NumPy exercises 01 to 05: patches, attention, normalization, heads.

Inputs are chosen so that near misses fail: images with fractional and negative values (a
``uint8`` cast shows), logits with offsets of hundreds that differ from one row or column to the
next (an exponential without the right maximum subtracted overflows or underflows), two draws of
every shape plus one never seen before (a result cached by shape, or hard-coded, shows).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from eanet_course import reference as ref
from eanet_course.checks._core import (
    Mistake, call, checker, close, compare_more, fresh_rng, ordered, pair, to_array,
)

#: Tolerances for inputs with logits in the hundreds: float32 keeps ~7 digits of 1000.
LARGE_RTOL, LARGE_ATOL = 2e-3, 1e-5

UNSTABLE = ("the exponential overflows: with logits near {shift:.0f}, exp gives inf and inf/inf "
            "is NaN. A stable softmax subtracts the largest logit along the softmax's own axis "
            "before the exponential (it cancels in the division).")
GLOBAL_MAX = ("a maximum is subtracted, but not along the softmax's own axis (one maximum for "
              "the whole array, or one per row of the other axis): here some rows or columns "
              "lie hundreds below others, their exponentials all underflow to 0, and 0/0 is "
              "NaN. Subtract the maximum along the softmax's own axis (keepdims=True).")


def _cases(rng: np.random.Generator, shapes: list) -> list:
    """Each shape twice (fresh values), then the first shape once more from an unseeded
    generator: a function that caches results by shape, or returns stored numbers, fails."""
    return [s for s in shapes for _ in range(2)] + [("fresh", shapes[0])]


def _draw(rng: np.random.Generator, case) -> tuple[np.random.Generator, object]:
    if isinstance(case, tuple) and case and case[0] == "fresh":
        return fresh_rng(), case[1]
    return rng, case


# ----------------------------------------------------------------------------------------------
# 01 patches


def _patch_mistakes(images: np.ndarray, p: int) -> dict[str, np.ndarray]:
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c)  # (B, rows, P, cols, P, C)

    def flat(axes):
        return grid.transpose(axes).reshape(b, (h // p) * (w // p), p * p * c)

    return {
        "patches in the wrong order: yours run column by column over the image; they should "
        "run row by row, like reading text.": flat((0, 3, 1, 2, 4, 5)),
        "channels interleaved wrongly: inside each of your patches the values come channel "
        "plane by channel plane. Each pixel should keep its C channels together.":
            flat((0, 1, 3, 5, 2, 4)),
        "pixels in the wrong order inside a patch: yours run column by column; they should run "
        "row by row.": flat((0, 1, 3, 4, 2, 5)),
        "each patch is transposed and the patches run column by column.":
            flat((0, 3, 1, 4, 2, 5)),
        "a plain reshape of the image: each of your 'patches' is a strip of consecutive pixels "
        "of one image row, not a P x P square.": images.reshape(b, (h // p) * (w // p), p * p * c),
        "the last row and the last column of patches are missing: a loop or range that stops "
        "one patch early (range(0, H - P, P) leaves out the patch that starts at H - P).":
            flat((0, 1, 3, 2, 4, 5)).reshape(b, h // p, w // p, -1)[:, :-1, :-1].reshape(
                b, -1, p * p * c),
        "the last row of patches is missing: the loop over the image's height stops one patch "
        "early.": flat((0, 1, 3, 2, 4, 5)).reshape(b, h // p, w // p, -1)[:, :-1].reshape(
            b, -1, p * p * c),
        "the last column of patches is missing: the loop over the image's width stops one patch "
        "early.": flat((0, 1, 3, 2, 4, 5)).reshape(b, h // p, w // p, -1)[:, :, :-1].reshape(
            b, -1, p * p * c),
        "the channels are averaged (a grayscale image): each pixel must keep all C of its "
        "values.": ref.extract_patches(images.mean(axis=-1, keepdims=True), p),
        "the channels are summed into one: each pixel must keep all C of its values.":
            ref.extract_patches(images.sum(axis=-1, keepdims=True), p),
        "the channel order reversed (RGB to BGR, a [..., ::-1]): the values are returned "
        "unchanged, channels included.": ref.extract_patches(images[..., ::-1], p),
        "patches that overlap: a window moved one pixel at a time (stride 1). The patches "
        "are non-overlapping: the window moves by P (strides = patch size).":
            _overlapping_patches(images, p),
        **{f"a fixed patch size ({q}), not the patch_size argument ({p}): read P from the "
           "argument.": ref.extract_patches(images, q)
           for q in range(1, min(h, w) + 1) if q != p and h % q == 0 and w % q == 0},
        "height and width swapped when the shape is read: the grid is cut with H and W "
        "exchanged, which only square images forgive. images.shape is (B, H, W, C).":
            images.reshape(b, w // p, p, h // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(
                b, (h // p) * (w // p), p * p * c) if h != w else np.full(1, np.nan),
        **{"the reshaped grid is transposed in the wrong order: after reshaping to (B, "
           "rows, P, cols, P, C), that is (B, patch row, pixel row, patch column, pixel "
           "column, C), yours orders its axes as (B, " + ", ".join(GRID_AXES[i - 1] for i in perm)
           + "); the right order is (B, patch row, patch column, pixel row, pixel column, C)."
           : flat((0, *perm)) for perm in itertools.permutations(range(1, 6))
           if perm != (1, 3, 2, 4, 5)},
    }


#: The axes of images reshaped to (B, rows, P, cols, P, C), batch left out, in words.
GRID_AXES = ("patch row", "pixel row", "patch column", "pixel column", "C")


def _overlapping_patches(images: np.ndarray, p: int) -> np.ndarray:
    """Every P x P window at stride 1, in reading order: ``(B, (H-P+1)(W-P+1), P*P*C)``."""
    windows = np.lib.stride_tricks.sliding_window_view(images, (p, p), axis=(1, 2))
    b, rows, cols = windows.shape[:3]  # (B, rows, cols, C, P, P)
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(b, rows * cols, -1)


@checker("extract_patches")
def check_extract_patches(fn: Callable) -> str:
    """Check ``fn(images (B, H, W, C), patch_size) -> (B, N, P*P*C)``."""
    rng = np.random.default_rng(1)
    cases = _cases(rng, [((2, 8, 8, 3), 2), ((1, 12, 8, 2), 4), ((3, 6, 9, 3), 3),
                         ((2, 10, 15, 1), 5)])
    for case in cases:
        gen, (shape, p) = _draw(rng, case)
        # Normalized images: fractional and negative values, some beyond 255.
        images = gen.normal(scale=80.0, size=shape)
        what = f"float images of shape {shape} and patch_size={p}"
        got = to_array(call(fn, images, p, what=what), "patches", what)
        expected = ref.extract_patches(images, p)
        if not close(got, expected) and got.size and np.all(got == np.round(got)):
            raise Mistake(f"Called with {what}, every value you return is a whole number, but "
                          "the images here are floats, negative and fractional values included.\n"
                          "Likely mistake: the values were rounded or cast to integers (uint8?); "
                          "keep the input's values as they are.")
        compare_more(got, expected, "patches", what, _patch_mistakes(images, p),
                axes=("B", "N", "P*P*C"))
    return f"Same patches as the reference on {len(cases)} random float batches of 3 shapes."


# ----------------------------------------------------------------------------------------------
# 02 scaled dot-product attention


def _row_offsets(gen, q, k, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """q and k whose logits get one large offset per query row (each key sees it equally):
    the softmax over the keys cancels it, but an exponential of it overflows."""
    q, k = q.copy(), k.copy()
    d_k = q.shape[-1]
    q[..., 0] = gen.uniform(-spread, spread, size=q.shape[:-1]) + spread / 2
    k[..., 0] = math.sqrt(d_k)  # logits += q[..., 0] for every key
    return q, k


@checker("scaled_dot_product_attention")
def check_scaled_dot_product_attention(fn: Callable) -> str:
    """Check ``fn(q (..., Nq, dk), k (..., Nk, dk), v (..., Nk, dv)) -> (output, weights)``."""
    rng = np.random.default_rng(2)
    shapes = [((5, 4), (7, 4), (7, 3)), ((2, 6, 8), (2, 6, 8), (2, 6, 5)),
              ((2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 2))]
    cases = ([(s, 0.0) for s in _cases(rng, shapes)]
             + [(shapes[1], "shift"), (shapes[2], 1600.0)])
    for case, spread in cases:
        gen, case_shapes = _draw(rng, case)
        q, k, v = (2.0 * gen.normal(size=s) for s in case_shapes)
        what = "q, k, v of shapes " + ", ".join(map(str, case_shapes))
        tolerances, not_finite = {}, None
        if spread == "shift":
            q[..., 0], k[..., 0] = 800.0 / math.sqrt(q.shape[-1]), q.shape[-1]
            what += " (every logit near 800)"
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
            not_finite = UNSTABLE.format(shift=800.0)
        elif spread:
            q, k = _row_offsets(gen, q, k, spread)
            what += f" (logits up to {spread * 1.5:.0f}, a different offset per query)"
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
            not_finite = GLOBAL_MAX
        out, weights = pair(call(fn, q, k, v, what=what), ("output", "weights"), what)
        logits = q @ np.swapaxes(k, -1, -2)
        d_k = q.shape[-1]
        expected_out, expected_weights = ref.scaled_dot_product_attention(q, k, v)
        ordered((out, weights), (expected_out, expected_weights), ("output", "weights"), what,
                **tolerances)
        masked = logits / math.sqrt(d_k) + np.where(
            np.tril(np.ones(logits.shape[-2:])) > 0, 0.0, -np.inf)
        compare_more(weights, expected_weights, "weights", what, {
            "a causal mask the contract does not ask for: every query attends to every key, "
            "later ones included.": ref.softmax(masked, axis=-1),
            "the raw logits came back as the weights: Q K^T, before the scale and the softmax.":
                logits,
            "the scale factor is missing: the logits Q K^T must be divided by sqrt(d_k) before "
            "the softmax.": ref.softmax(logits, axis=-1),
            "the wrong scale factor: yours divides by d_k; the scale is sqrt(d_k).":
                ref.softmax(logits / d_k, axis=-1),
            "the scale multiplies instead of dividing: yours multiplies by sqrt(d_k).":
                ref.softmax(logits * math.sqrt(d_k), axis=-1),
            "softmax over the wrong axis: each query's weights must sum to 1 over the keys; "
            "yours are normalized over the queries.": ref.softmax(logits / math.sqrt(d_k), -2),
            "the exponential is missing: the weights are the logits divided by their sum, not "
            "a softmax.": (logits / math.sqrt(d_k))
            / np.sum(logits / math.sqrt(d_k), axis=-1, keepdims=True),
            "the maximum subtracted before the exponential is taken over the queries (axis -2); "
            "it must be over the keys, the softmax's own axis, where it cancels.":
                (lambda e: e / e.sum(-1, keepdims=True))(
                    np.exp(logits / math.sqrt(d_k)
                           - (logits / math.sqrt(d_k)).max(-2, keepdims=True))),
            "the weights came back before the softmax (the scaled logits).":
                logits / math.sqrt(d_k),
            "the wrong scale factor: yours divides by sqrt(d_v), the width of V; the scale is "
            "sqrt(d_k), the width of the queries and keys.": ref.softmax(
                logits / math.sqrt(v.shape[-1]), axis=-1) if v.shape[-1] != d_k
            else np.full(1, np.nan),
            "the wrong scale factor: yours divides by the square root of the number of keys "
            "N_k; the scale is sqrt(d_k), the width of the queries and keys.": ref.softmax(
                logits / math.sqrt(k.shape[-2]), axis=-1) if k.shape[-2] != d_k
            else np.full(1, np.nan),
            "the scale is applied after the softmax: divide the logits by sqrt(d_k) before the "
            "softmax, not the weights after it.": ref.softmax(logits, axis=-1) / math.sqrt(d_k),
            "the weights are not divided by their sum: the exponentials exp(logits - max) are "
            "returned as they are, so no query's weights sum to 1.":
                np.exp(logits / math.sqrt(d_k)
                       - (logits / math.sqrt(d_k)).max(-1, keepdims=True)),
            "one sum for the whole array: the exponentials are divided by their total over "
            "every query (and batch), not by each query's own sum over the keys "
            "(sum(axis=-1, keepdims=True)).": (lambda e: e / e.sum())(
                np.exp(logits / math.sqrt(d_k)
                       - (logits / math.sqrt(d_k)).max(-1, keepdims=True))),
            "one sum (and maximum) for the whole array: a softmax over every logit at once, not "
            "over each query's keys (axis=-1).": ref.softmax(
                (logits / math.sqrt(d_k)).reshape(-1)).reshape(logits.shape),
            "queries and keys swapped: yours computes K Q^T, one row per key; the logits are "
            "Q K^T, one row per query.": ref.softmax(
                np.swapaxes(logits, -1, -2) / math.sqrt(d_k), axis=-1)
            if q.shape == k.shape else np.full(1, np.nan),
        }, **tolerances, not_finite=not_finite, axes=("Nq", "Nk"))
        compare_more(out, expected_out, "output", what, {
            "the output multiplies the weights by K, not by V.":
                expected_weights @ k if k.shape == v.shape else np.full(1, np.nan),
            "the output uses the weights before they are divided by their sum: multiply V by "
            "the normalized weights you return.": np.exp(
                logits / math.sqrt(d_k) - (logits / math.sqrt(d_k)).max(-1, keepdims=True)) @ v,
            "the output multiplies the transposed weights: the weights are (..., Nq, Nk), the "
            "output takes one weighted sum of V's rows per query.": np.swapaxes(
                expected_weights, -1, -2) @ v if q.shape == k.shape else np.full(1, np.nan),
        }, **tolerances, axes=("Nq", "dv"))
    return (f"Output and weights match the reference on {len(cases)} random cases, logits with "
            "offsets in the thousands included.")


# ----------------------------------------------------------------------------------------------
# 03 external attention, 04 double normalization


def _l1(a: np.ndarray, axis: int) -> np.ndarray:
    return a / np.sum(a, axis=axis, keepdims=True)


def _normalization_mistakes(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The classic wrong double normalizations of ``(..., N, S)`` logits."""
    mistakes = {
        "softmax over the wrong axis: yours runs over the memory axis S. EANet's first step "
        "is a softmax over the patch axis N (each memory unit's column sums to 1).":
            _l1(ref.softmax(logits, axis=-1), -1),
        "the l1 step is missing, or it runs over the wrong axis (N instead of S): every column "
        "sums to 1 but the rows do not. After the softmax over N, each patch's row must be "
        "divided by its own sum over the memory axis S.": ref.softmax(logits, axis=-2),
        "both axes swapped: yours is a softmax over S then l1 over N. It is the other way "
        "round: the softmax runs over the patches N, the l1 step over the memory units S.":
            _l1(ref.softmax(logits, axis=-1), -2),
        "the maximum subtracted before the exponential is taken over the memory axis S; it "
        "must be taken along the softmax's own axis (over the patches N), where it cancels.":
            _l1(_l1(np.exp(logits - logits.max(axis=-1, keepdims=True)), -2), -1),
        "a second softmax where the l1 step goes: the second step only divides each row by its "
        "sum, with no exponential.": ref.softmax(ref.softmax(logits, axis=-2), axis=-1),
        "the exponential is missing: the first step is a softmax over N (exp, then divide by "
        "the column's sum), not a plain division of the logits by their sum.":
            _l1(_l1(logits, -2), -1),
        "the second step divides by the row's maximum, not by its sum: l1 normalization "
        "divides each patch's row by its sum over S.": (lambda a: a / a.max(-1, keepdims=True))(
            ref.softmax(logits, axis=-2)),
        "an l2 normalization where the l1 step goes: divide each row by its sum over S, not by "
        "its Euclidean norm.": (lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True))(
            ref.softmax(logits, axis=-2)),
        "the steps in the wrong order: yours normalizes the logits over S first, then takes the "
        "softmax over N. The softmax over N comes first, then the l1 step over S on its result.":
            ref.softmax(logits / np.abs(logits).sum(axis=-1, keepdims=True), axis=-2),
        "the steps in the wrong order: yours divides the logits by their sum over S first, "
        "then takes the softmax over N. The softmax over N comes first, then the l1 step.":
            ref.softmax(_l1(logits, -1), axis=-2),
        "the map is squared (sharpened) before the l1 step: the l1 step divides the softmax's "
        "result itself by its row sum.": _l1(ref.softmax(logits, axis=-2) ** 2, -1),
        "the softmax runs over N and S together (one softmax over the whole map), not over N "
        "alone.": _l1(ref.softmax(logits.reshape(*logits.shape[:-2], -1), axis=-1)
                      .reshape(logits.shape), -1),
    }
    if logits.ndim > 2:
        mistakes["the softmax runs over the first (batch) axis: `.T` reverses every axis of a "
                 "batched array (or axis=0 is fixed). Take the softmax over axis=-2, the "
                 "patches."] = _l1(ref.softmax(logits, axis=0), -1)
        mistakes["fixed axes: your axes are counted from the front, which works for one (N, S) "
                 "map but not with leading batch or head axes. Count the axes from the end: "
                 "N is second to last, S last."] = _l1(ref.softmax(logits, axis=0), 1)
    return mistakes


def _normalization_inputs(gen, shape, kind: str) -> tuple[np.ndarray, str, dict, str | None]:
    """Logits for a normalization case: gentle, all shifted by 800, or one large offset per
    memory unit (the softmax over N cancels both; an unstable exponential does not)."""
    logits = 2.0 * gen.normal(size=shape)
    if kind == "shift":
        return (logits + 800.0, " (every value near 800)",
                {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}, UNSTABLE.format(shift=800.0))
    if kind == "columns":
        offsets = gen.uniform(-1000.0, 1000.0, size=(*shape[:-2], 1, shape[-1]))
        return (logits + offsets, " (each memory unit's column offset by up to ±1000)",
                {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}, GLOBAL_MAX)
    return logits, "", {}, None


def _normalization_cases(rng, shapes):
    return ([(c, "gentle") for c in _cases(rng, shapes)]
            + [(shapes[1], "shift"), (shapes[2], "columns")])


@checker("double_normalization")
def check_double_normalization(fn: Callable) -> str:
    """Check ``fn(logits (..., N, S)) -> (..., N, S)``, the double normalization."""
    rng = np.random.default_rng(4)
    cases = _normalization_cases(rng, [(5, 3), (2, 7, 4), (2, 3, 6, 9)])
    for case, kind in cases:
        gen, shape = _draw(rng, case)
        logits, note, tolerances, not_finite = _normalization_inputs(gen, shape, kind)
        what = f"logits of shape {shape}{note}"
        got = to_array(call(fn, logits, what=what), "attention", what)
        compare_more(got, ref.double_normalization(logits), "attention", what,
                _normalization_mistakes(logits), **tolerances, not_finite=not_finite,
                axes=("N", "S"))
    return (f"Matches the reference on {len(cases)} random inputs of 3 shapes, logits in the "
            "hundreds and thousands included.")


@checker("external_attention")
def check_external_attention(fn: Callable) -> str:
    """Check ``fn(features (..., N, d), m_k (S, d), m_v (S, dv)) -> (output, attention)``."""
    rng = np.random.default_rng(3)
    shapes = [((6, 4), 3, 4), ((2, 5, 8), 6, 3), ((2, 3, 7, 4), 5, 4)]
    cases = _normalization_cases(rng, shapes)
    for case, kind in cases:
        gen, (f_shape, s, dv) = _draw(rng, case)
        features = gen.normal(size=f_shape)
        m_k, m_v = gen.normal(size=(s, f_shape[-1])), gen.normal(size=(s, dv))
        tolerances, not_finite, note = {}, None, ""
        if kind != "gentle":
            # A constant feature 1 and a large key per memory unit: the same large offset for
            # every patch's logit to that unit (shift: the same for every unit).
            features[..., 0] = 1.0
            m_k[:, 0] = 800.0 if kind == "shift" else gen.uniform(-1000.0, 1000.0, size=s)
            note = (" (every logit near 800)" if kind == "shift"
                    else " (each memory unit's logits offset by up to ±1000)")
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
            not_finite = UNSTABLE.format(shift=800.0) if kind == "shift" else GLOBAL_MAX
        what = f"features {f_shape}, m_k {m_k.shape}, m_v {m_v.shape}{note}"
        out, attention = pair(call(fn, features, m_k, m_v, what=what),
                              ("output", "attention"), what)
        expected_out, expected_attention = ref.external_attention(features, m_k, m_v)
        ordered((out, attention), (expected_out, expected_attention), ("output", "attention"),
                what, **tolerances)
        logits = features @ m_k.T
        compare_more(attention, expected_attention, "attention", what, {
            "the raw logits came back as the attention: F M_k^T before the double "
            "normalization.": logits,
            "the logits are scaled by 1/sqrt(d), as in self-attention: external attention has "
            "no scale, A = DoubleNorm(F M_k^T).": ref.double_normalization(
                logits / math.sqrt(features.shape[-1])),
            **_normalization_mistakes(logits)},
            **tolerances, not_finite=not_finite, axes=("N", "S"))
        compare_more(out, expected_out, "output", what, {
            "the output reads the wrong memory: the attention weighs the rows of M_v, not M_k.":
                expected_attention @ m_k if m_k.shape == m_v.shape else np.full(1, np.nan),
            "the output is the features themselves (or the attention), not the attention times "
            "M_v.": features,
            "a residual connection added: the exercise's output is A M_v alone (the layer adds "
            "its residual elsewhere).": expected_out + features
            if features.shape == expected_out.shape else np.full(1, np.nan),
            "the output is taken before the l1 step: it multiplies the softmax over N by M_v, "
            "not the final attention you return.": ref.softmax(logits, axis=-2) @ m_v,
        }, **tolerances, axes=("N", "dv"))
    return (f"Output and attention match the reference on {len(cases)} random cases, logits "
            "in the hundreds and thousands included.")


# ----------------------------------------------------------------------------------------------
# 05 heads


@checker("split_heads")
def check_split_heads(fn: Callable) -> str:
    """Check ``fn(x (B, N, H*dh), num_heads) -> (B, H, N, dh)``."""
    rng = np.random.default_rng(5)
    cases = _cases(rng, [((2, 5, 12), 3), ((1, 4, 8), 2), ((3, 6, 24), 4), ((2, 7, 10), 5)])
    for case in cases:
        gen, (shape, h) = _draw(rng, case)
        x = gen.normal(size=shape)
        b, n, width = shape
        dh = width // h
        what = f"x of shape {shape} and num_heads={h}"
        got = to_array(call(fn, x, h, what=what), "heads", what)
        try:
            _compare_heads(got, x, h, what)
        except Mistake as error:
            if got.ndim != 4 or got.shape[1] == h or "classic wrong" in str(error) \
                    or "axes swapped" in str(error) or "another order" in str(error) \
                    or "stops early" in str(error) or "reverse order" in str(error):
                raise
            raise Mistake(f"Called with {what}, your result has shape {got.shape}, expected "
                          f"{(b, h, n, dh)}: its heads axis has length {got.shape[1]}, not "
                          f"num_heads={h}.\nLikely mistake: a fixed number of heads (or of "
                          "channels per head) in the code: read H from the num_heads argument "
                          "and dh from x's width, dh = width // num_heads.") from None
    return f"Matches the reference on {len(cases)} random inputs of 4 shapes."


def _compare_heads(got: np.ndarray, x: np.ndarray, h: int, what: str) -> None:
    b, n, width = x.shape
    dh = width // h
    compare_more(got, ref.split_heads(x, h), "heads", what, {
        "the axes are not reordered: yours stops at (B, N, H, dh); the heads axis must "
        "come before the patches.": x.reshape(b, n, h, dh),
        "heads split in the wrong order: a reshape straight to (B, H, N, dh) mixes patches "
        "and channels (shapes alone cannot tell).": x.reshape(b, h, n, dh),
        "heads split in the wrong order: yours sends channel c to head c % H. Each head "
        "must own a block of dh consecutive channels.":
            x.reshape(b, n, dh, h).transpose(0, 3, 1, 2),
        "patches and channels swapped inside each head: yours is (B, H, dh, N).":
            x.reshape(b, n, h, dh).transpose(0, 2, 3, 1),
        "a reshape in Fortran order (order='F' reads the first axis fastest): NumPy's default "
        "order, last axis fastest, cuts the channel axis into heads.":
            x.reshape(b, h, n, dh, order="F"),
    }, axes=("B", "H", "N", "dh"))


@checker("merge_heads")
def check_merge_heads(fn: Callable) -> str:
    """Check ``fn(x (B, H, N, dh)) -> (B, N, H*dh)``, the inverse of ``split_heads``."""
    rng = np.random.default_rng(6)
    cases = _cases(rng, [(2, 3, 5, 4), (1, 2, 4, 4), (3, 4, 6, 2), (2, 5, 3, 3)])
    for case in cases:
        gen, shape = _draw(rng, case)
        x = gen.normal(size=shape)
        b, h, n, dh = shape
        what = f"x of shape {shape}"
        got = to_array(call(fn, x, what=what), "merged heads", what)
        compare_more(got, ref.merge_heads(x), "merged heads", what, {
            "heads merged in the wrong order: a reshape straight to (B, N, H*dh), without "
            "moving the heads axis first, mixes patches and heads.": x.reshape(b, n, h * dh),
            "heads merged in the wrong order: your channels are interleaved (channel c comes "
            "from head c % H); head h's channels should form one block.":
                x.transpose(0, 2, 3, 1).reshape(b, n, dh * h),
            "the heads are averaged, not concatenated: each patch keeps all H*dh channels, "
            "head after head.": x.mean(axis=1),
            "the heads are summed, not concatenated: each patch keeps all H*dh channels, head "
            "after head.": x.sum(axis=1),
            "the heads are concatenated along the patch axis (yours is (B, H*N, dh)); they go "
            "side by side on the channel axis.": x.reshape(b, h * n, dh),
            "the heads are stacked on a new axis (B, N, H, dh); merge the last two axes into "
            "one of H*dh channels.": x.transpose(0, 2, 1, 3),
            "only the first head is kept: all H heads are concatenated.": x[:, 0],
            "the maximum over the heads, not their concatenation: each patch keeps all H*dh "
            "channels, head after head.": x.max(axis=1),
            "np.concatenate(x, axis=-1) runs over x's first axis, the batch, not the heads: "
            "concatenate the heads x[:, i] (or transpose and reshape).":
                np.concatenate(list(x), axis=-1),
            "the heads are folded into the batch axis (yours is (B*H, N, dh)): move the heads "
            "axis next to the channels, (B, N, H, dh), and merge those two.":
                x.reshape(b * h, n, dh),
        }, axes=("B", "N", "H*dh"))
    return f"Matches the reference on {len(cases)} random inputs of 3 shapes."
