"""Checkers for exercises 00, 08, 09 and 10: data, attention maps, scaling, relatives.

Each compares the learner's NumPy function with a reference written here, on inputs that make
near misses fail (two draws of each shape plus one never seen, uneven channels, no ties), and
names the classic wrong answers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from eanet_course import reference as ref
from eanet_course.checks._core import Mistake, call, checker, compare, fresh_rng, pair, to_array
from eanet_course.checks.attention import GLOBAL_MAX, LARGE_ATOL, LARGE_RTOL

# ----------------------------------------------------------------------------------------------
# 00 standardize with the training set's statistics


def _standardize(train, test, axes=(0, 1, 2), source="train", divide=True):
    stats = {"train": train, "test": test, "both": np.concatenate([train, test])}[source]
    mean = stats.mean(axis=axes, keepdims=True)
    std = stats.std(axis=axes, keepdims=True) if divide else 1.0
    return (train - mean) / std, (test - mean) / std


@checker("standardize")
def check_standardize(fn: Callable) -> str:
    """Check ``fn(train (B, H, W, C), test (B', H, W, C)) -> (train_out, test_out)``: each
    channel shifted and scaled by the training set's own mean and standard deviation."""
    rng = np.random.default_rng(20)
    cases = [("uint8", (64, 8, 8, 3), rng), ("uint8", (64, 8, 8, 3), rng),
             ("float", (48, 6, 6, 2), rng), ("uint8", (64, 8, 8, 3), fresh_rng())]
    for kind, shape, gen in cases:
        channels = shape[-1]
        centre = gen.uniform(40, 200, size=channels)
        spread = gen.uniform(10, 50, size=channels)
        train = gen.normal(centre, spread, size=shape)
        test = gen.normal(centre + 15, spread * 1.5, size=(shape[0] // 4, *shape[1:]))
        if kind == "uint8":
            train, test = (np.clip(np.round(a), 0, 255).astype(np.uint8) for a in (train, test))
        what = f"{kind} train images {train.shape} and test images {test.shape}"
        out_train, out_test = pair(call(fn, train, test, what=what), ("train", "test"), what)
        f_train, f_test = train.astype(np.float64), test.astype(np.float64)
        expected = _standardize(f_train, f_test)
        mistakes = {
            "one mean and one standard deviation for the whole array: each channel has its own.":
                _standardize(f_train, f_test, axes=None),
            "the test images are standardized with their own statistics: both sets must use "
            "the training set's (the model never sees test statistics).": (
                expected[0], _standardize(f_test, f_train)[0]),
            "the statistics come from training and test images together: only the training "
            "set's may be used.": _standardize(f_train, f_test, source="both"),
            "the statistics are per pixel (over the images only); they should be per channel, "
            "over every image and position.": _standardize(f_train, f_test, axes=(0,)),
            "each image is standardized with its own statistics; the shift and scale are per "
            "channel, computed once over the whole training set.":
                (_standardize(f_train, f_train, axes=(1, 2))[0],
                 _standardize(f_test, f_test, axes=(1, 2))[0]),
            "the division by the standard deviation is missing.":
                _standardize(f_train, f_test, divide=False),
        }
        for index, (label, got) in enumerate((("train", out_train), ("test", out_test))):
            compare(got, expected[index], f"standardized {label} images", what,
                    {text: wrong[index] for text, wrong in mistakes.items()},
                    rtol=1e-3, atol=1e-4)
    return f"Right on {len(cases)} random data sets, uint8 and float, with uneven channels."


# ----------------------------------------------------------------------------------------------
# 08 attention maps


def _pixels(scores: np.ndarray, image_size: int, patch_size: int) -> np.ndarray:
    side = image_size // patch_size
    return np.kron(scores.reshape(side, side), np.ones((patch_size, patch_size)))


@checker("attention_to_pixels")
def check_attention_to_pixels(fn: Callable) -> str:
    """Check ``fn(unit_scores (N,), image_size, patch_size) -> (image_size, image_size)``: each
    patch's score painted over its ``P x P`` pixels, patches row by row."""
    rng = np.random.default_rng(21)
    cases = [((8, 2), rng), ((8, 2), rng), ((12, 3), rng), ((32, 4), rng), ((12, 4), fresh_rng())]
    for (size, p), gen in cases:
        side = size // p
        scores = gen.uniform(size=side * side)
        what = f"unit_scores of shape ({side * side},), image_size={size}, patch_size={p}"
        got = to_array(call(fn, scores, size, p, what=what), "pixel map", what)
        grid = scores.reshape(side, side)
        compare(got, _pixels(scores, size, p), "pixel map", what, {
            "the patch grid is transposed: patches run row by row over the image (patch 1 is "
            "to the right of patch 0, not below it).": _pixels(grid.T.ravel(), size, p),
            "the grid is repeated as a whole (tiled) instead of each patch's score filling its "
            "own P x P square.": np.tile(grid, (p, p)),
            "each patch's score fills a P x P square, but the squares are spread the wrong way "
            "(each row of pixels repeats the grid's rows).": np.repeat(np.tile(grid, (1, p)), p, 0),
        })
    return f"Right on {len(cases)} random maps of 4 sizes."


@checker("top_units")
def check_top_units(fn: Callable) -> str:
    """Check ``fn(attention (N, S), k) -> (k,)`` the memory units with the largest total
    attention over the patches (column sums), largest first."""
    rng = np.random.default_rng(22)
    cases = [((16, 8), 3, rng), ((16, 8), 3, rng), ((9, 12), 5, rng), ((25, 6), 1, rng),
             ((16, 10), 4, fresh_rng())]
    for shape, k, gen in cases:
        attention = ref.double_normalization(3.0 * gen.normal(size=shape))
        what = f"attention of shape {shape} and k={k}"
        got = to_array(call(fn, attention, k, what=what), "units", what)
        totals = attention.sum(axis=0)
        expected = np.argsort(-totals)[:k]
        compare(got, expected.astype(np.float64), "units", what, {
            "the order is reversed: largest total first.":
                np.argsort(totals)[-k:].astype(np.float64),
            "the right units in the wrong order: yours are sorted by index; they should come "
            "largest total first.": np.sort(expected).astype(np.float64),
            "the smallest units: yours picks the units with the least attention.":
                np.argsort(totals)[:k].astype(np.float64),
            "yours ranks the units by their largest single score (column maximum), not by "
            "their total attention over the patches.":
                np.argsort(-attention.max(axis=0))[:k].astype(np.float64),
            "yours sums over the memory units (each patch's row) and ranks patches, not units.":
                np.argsort(-attention.sum(axis=1))[:k].astype(np.float64),
        }, rtol=0, atol=0)
    return f"Right on {len(cases)} random maps."


# ----------------------------------------------------------------------------------------------
# 09 scaling slopes


@checker("fit_slope")
def check_fit_slope(fn: Callable) -> str:
    """Check ``fn(ns, costs) -> float``: the slope of the least-squares line through
    ``(log n, log cost)``, the exponent k of ``cost ~ n^k``."""
    rng = np.random.default_rng(23)
    cases = [(rng, 1.0), (rng, 2.0), (rng, 1.37), (fresh_rng(), 0.6)]
    for gen, k in cases:
        ns = np.array([64, 128, 256, 512, 1024, 2048])
        costs = 3e-6 * ns**k * np.exp(gen.normal(scale=0.08, size=ns.size))
        what = f"ns {ns.tolist()} and costs that grow like n^{k} with noise"
        got = to_array(call(fn, ns.copy(), costs, what=what), "slope", what)
        if got.size == 2:
            raise Mistake(f"Called with {what}, your function returned two numbers "
                          f"{got.tolist()}: return the slope alone, a float.")
        expected = np.polyfit(np.log(ns), np.log(costs), 1)[0]
        log_n, log_c = np.log(ns), np.log(costs)
        compare(got.reshape(()), np.array(expected), "slope", what, {
            "the fit is on the raw numbers: fit the logarithms of both n and cost (a straight "
            "line on a log-log plot).": np.array(np.polyfit(ns, costs, 1)[0]),
            "only the cost is in log scale: take the logarithm of n too.":
                np.array(np.polyfit(ns, log_c, 1)[0]),
            "only n is in log scale: take the logarithm of the cost too.":
                np.array(np.polyfit(log_n, costs, 1)[0]),
            "the axes are swapped: the slope of log n against log cost is about 1/k.":
                np.array(np.polyfit(log_c, log_n, 1)[0]),
            "that is the line's intercept, not its slope.":
                np.array(np.polyfit(log_n, log_c, 1)[1]),
            "the slope uses only the first and last points: a least-squares fit uses them all.":
                np.array((log_c[-1] - log_c[0]) / (log_n[-1] - log_n[0])),
        }, rtol=1e-6, atol=1e-9)
    return f"Right on {len(cases)} noisy power laws; any logarithm base gives the same slope."


# ----------------------------------------------------------------------------------------------
# 10 Sinkhorn and the EM view of the memory


def _sinkhorn(logits: np.ndarray, steps: int, rows_first: bool = False,
              exp: bool = True) -> np.ndarray:
    p = ref.softmax(logits, axis=-1 if rows_first else -2) if exp else logits
    for step in range(steps):
        if step or rows_first or not exp:
            p = p / p.sum(axis=-1 if rows_first else -2, keepdims=True)
        p = p / p.sum(axis=-2 if rows_first else -1, keepdims=True)
    return p


@checker("sinkhorn")
def check_sinkhorn(fn: Callable) -> str:
    """Check ``fn(logits (..., N, S), steps) -> (..., N, S)``: the exponential of the logits,
    then ``steps`` rounds of (columns over N sum to 1, then rows over S sum to 1)."""
    rng = np.random.default_rng(24)
    cases = [((6, 4), 1, rng, 0.0), ((6, 4), 3, rng, 0.0), ((2, 5, 7), 2, rng, 0.0),
             ((2, 5, 7), 10, rng, 0.0), ((3, 6, 5), 4, fresh_rng(), 0.0),
             ((2, 6, 5), 3, rng, 1000.0)]
    for shape, steps, gen, spread in cases:
        logits = 2.0 * gen.normal(size=shape)
        tolerances = {}
        what = f"logits of shape {shape} and steps={steps}"
        if spread:
            logits = logits + gen.uniform(-spread, spread, size=(*shape[:-2], 1, shape[-1]))
            what += " (each memory unit's column offset by up to ±1000)"
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
        got = to_array(call(fn, logits, steps, what=what), "plan", what)
        compare(got, _sinkhorn(logits, steps), "plan", what, {
            "the rounds start with the rows: each round first normalizes the columns (over the "
            "patches N), then the rows (over S), as the double normalization does.":
                _sinkhorn(logits, steps, rows_first=True),
            "one round whatever `steps` says.": _sinkhorn(logits, 1),
            "one round too many.": _sinkhorn(logits, steps + 1),
            "the exponential is missing: Sinkhorn scales exp(logits), not the logits.":
                _sinkhorn(logits, steps, exp=False),
        }, **tolerances, not_finite=GLOBAL_MAX if spread else None)
    return f"Right on {len(cases)} random inputs, 1 to 10 rounds, large logits included."


def _em_step(features, memory, e_axis=-1, normalize=True):
    z = ref.softmax(features @ memory.T, axis=e_axis)  # (N, S)
    if normalize:
        z = z / z.sum(axis=0, keepdims=True)
    return z.T @ features


@checker("em_step")
def check_em_step(fn: Callable) -> str:
    """Check ``fn(features (N, d), memory (S, d)) -> (S, d)``: each patch's responsibilities
    (a softmax over the S units of its similarity to them), then each unit moved to the
    responsibility-weighted mean of the features."""
    rng = np.random.default_rng(25)
    cases = [((20, 4), 3, rng), ((20, 4), 3, rng), ((30, 6), 5, rng), ((16, 3), 4, fresh_rng())]
    for (n, d), s, gen in cases:
        features = gen.normal(size=(n, d))
        memory = gen.normal(size=(s, d))
        what = f"features of shape {(n, d)} and memory of shape {(s, d)}"
        got = to_array(call(fn, features, memory, what=what), "memory", what)
        compare(got, _em_step(features, memory), "memory", what, {
            "the responsibilities are a softmax over the patches N; each patch shares itself "
            "among the S units (a softmax over S), as in k-means' assignment.":
                _em_step(features, memory, e_axis=0),
            "the new units are weighted sums, not weighted means: divide by each unit's total "
            "responsibility.": _em_step(features, memory, normalize=False),
            "the memory did not move: the update replaces it with the weighted means.": memory,
        })
    return f"Right on {len(cases)} random features and memories."
