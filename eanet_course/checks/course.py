"""Checkers for exercises 00, 08, 09 and 10: data, attention maps, scaling, relatives.

Each compares the learner's NumPy function with a reference written here, on inputs that make
near misses fail (two draws of each shape plus one never seen, uneven channels, no ties), and
names the classic wrong answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from eanet_course import reference as ref
from eanet_course.checks._core import (
    Mistake, call_sized, checker, compare_story, extra_results, fresh_rng, ordered, pair, rounded,
    to_array,
)
from eanet_course.checks.attention import GLOBAL_MAX, LARGE_ATOL, LARGE_RTOL, UNSTABLE

# ----------------------------------------------------------------------------------------------
# 00 standardize with the training set's statistics


def _standardize(train, test, axes=(0, 1, 2), source="train", divide=True, power=1.0):
    stats = {"train": train, "test": test, "both": np.concatenate([train, test])}[source]
    mean = stats.mean(axis=axes, keepdims=True)
    std = stats.std(axis=axes, keepdims=True) ** power if divide else 1.0
    return (train - mean) / std, (test - mean) / std


def _standardize_story(got: np.ndarray, raw: np.ndarray, train: np.ndarray,
                       label: str) -> str:
    """How ``got`` relates to the images ``raw`` channel by channel: the shift and scale it
    applies, against the training set's mean and standard deviation."""
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    shifts, scales = [], []
    for c in range(raw.shape[-1]):
        x, y = raw[..., c].ravel(), got[..., c].ravel()
        if np.ptp(x) == 0:
            return f"your {label} differs from the right one; compare it channel by channel."
        slope, intercept = np.polyfit(x, y, 1)
        if not np.allclose(y, slope * x + intercept, rtol=1e-3, atol=1e-3) or slope == 0:
            return (f"your {label} is not one shift and one scale per channel of the images "
                    f"(channel {c} is not x * a + b for any a, b): every value must be "
                    "(x - mean_c) / std_c, with channel c's training mean and standard "
                    "deviation, whatever the image or position.")
        shifts.append(-intercept / slope)
        scales.append(1 / slope)
    shifts, scales = np.array(shifts), np.array(scales)
    shift_ok = np.allclose(shifts, mean, rtol=1e-3, atol=1e-3 * std.max())
    scale_ok = np.allclose(scales, std, rtol=1e-3)
    what = (f"your {label} is each channel shifted by {np.round(shifts, 3).tolist()} and divided "
            f"by {np.round(scales, 3).tolist()}, where the training set's channels have mean "
            f"{np.round(mean, 3).tolist()} and standard deviation {np.round(std, 3).tolist()}")
    if shift_ok and not scale_ok:
        return what + ": the shift is right, the scale (the standard deviation) is not."
    if scale_ok and not shift_ok:
        return what + ": the scale is right, the shift (the mean) is not" + (
            " (no shift at all)." if np.allclose(shifts, 0, atol=1e-6 * std.max()) else ".")
    return what + ": both the shift and the scale are off."


@checker("standardize")
def check_standardize(fn: Callable) -> str:
    """Check ``fn(train (B, H, W, C), test (B', H, W, C)) -> (train_out, test_out)``: each
    channel shifted and scaled by the training set's own mean and standard deviation."""
    rng = np.random.default_rng(20)
    cases = [("uint8", (64, 8, 8, 3), rng), ("uint8", (64, 8, 8, 3), rng),
             ("float", (48, 6, 6, 2), rng), ("uint8", (64, 8, 8, 3), fresh_rng())]
    ran_on: dict[tuple, str] = {}
    for kind, shape, gen in cases:
        channels = shape[-1]
        centre = gen.uniform(40, 200, size=channels)
        spread = gen.uniform(10, 50, size=channels)
        train = gen.normal(centre, spread, size=shape)
        test = gen.normal(centre + 15, spread * 1.5, size=(shape[0] // 4, *shape[1:]))
        if kind == "uint8":
            train, test = (np.clip(np.round(a), 0, 255).astype(np.uint8) for a in (train, test))
        what = f"{kind} train images {train.shape} and test images {test.shape}"
        out_train, out_test = pair(call_sized(fn, train, test, what=what, ran_on=ran_on),
                                   ("train", "test"), what)
        f_train, f_test = train.astype(np.float64), test.astype(np.float64)
        if out_train.shape != train.shape and out_train.size == channels and \
                out_test.size == channels:
            raise Mistake(f"Called with {what}, your pair holds {channels} numbers each, not "
                          "images.\nLikely mistake: the statistics (each channel's mean and "
                          "standard deviation) came back, not the standardized images: return "
                          "((train - mean) / std, (test - mean) / std).")
        expected = _standardize(f_train, f_test)
        mean = f_train.mean(axis=(0, 1, 2))
        std = f_train.std(axis=(0, 1, 2))
        ordered((out_train, out_test), expected, ("train_out", "test_out"), what, 1e-3, 1e-4)
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
            "the statistics come from the test images: both sets must use the training set's.":
                _standardize(f_train, f_test, source="test"),
            "the images are divided by 255 (scaled to [0, 1]), not standardized: subtract each "
            "channel's training mean and divide by its training standard deviation.":
                (f_train / 255.0, f_test / 255.0),
            "the images are scaled to [0, 1], then standardized with one mean and one standard "
            "deviation for the whole array: each channel has its own.":
                _standardize(f_train / 255.0, f_test / 255.0, axes=None),
            "the division is by the variance, not the standard deviation (its square root).":
                _standardize(f_train, f_test, power=2.0),
            "min-max scaling (x - min) / (max - min), not standardization: subtract the mean and "
            "divide by the standard deviation.": tuple(
                (a - f_train.min(axis=(0, 1, 2))) / np.ptp(f_train, axis=(0, 1, 2))
                for a in (f_train, f_test)),
            "the statistics are taken over the channels of each pixel (axis -1); each channel's "
            "are taken over every image and position (all axes but the last).": (
                _standardize(f_train, f_train, axes=(3,))[0],
                _standardize(f_test, f_test, axes=(3,))[0]) if shape[-1] > 1 else
            (np.full(1, np.nan),) * 2,
            "the training images are standardized twice, or the test images not at all: both "
            "go through the very same shift and scale, once.": (expected[0], f_test),
            "operator precedence: `x - mean / std` divides the mean alone; write "
            "`(x - mean) / std`, with parentheses.": tuple(
                a - mean / std for a in (f_train, f_test)),
            "the images are multiplied by the standard deviation instead of divided by it.":
                _standardize(f_train, f_test, power=-1.0),
            "the standard deviation is the average of each image's own standard deviation; "
            "take it once over every image and position of a channel (axes 0, 1, 2).": tuple(
                (a - mean) / f_train.std(axis=(1, 2)).mean(axis=0) for a in (f_train, f_test)),
            "the test images are divided by the training standard deviation but not shifted by "
            "the training mean: (test - mean) / std.": (expected[0], f_test / std),
            **{f"the statistics are taken over the wrong axes {axes}: each channel's mean and "
               "standard deviation come from every image and position, axes (0, 1, 2).":
               _standardize(f_train, f_test, axes=axes)
               for axes in ((0, 1), (0, 2), (0, 3), (0, 1, 3), (0, 2, 3))},
        }
        for index, (label, got, raw) in enumerate((("train", out_train, f_train),
                                                   ("test", out_test, f_test))):
            compare_story(got, expected[index], f"standardized {label} images", what,
                          {text: wrong[index] for text, wrong in mistakes.items()},
                          lambda got=got, raw=raw, label=label: _standardize_story(
                              got, raw, f_train, f"{label}_out")
                          if got.shape == raw.shape and np.all(np.isfinite(got)) else None,
                          rtol=1e-3, atol=1e-4, axes=("B", "H", "W", "C"))
    return f"Right on {len(cases)} random data sets, uint8 and float, with uneven channels."


# ----------------------------------------------------------------------------------------------
# 08 attention maps


def _pixels(scores: np.ndarray, image_size: int, patch_size: int) -> np.ndarray:
    side = image_size // patch_size
    return np.kron(scores.reshape(side, side), np.ones((patch_size, patch_size)))


def _pixels_story(got: np.ndarray, scores: np.ndarray, size: int, p: int) -> str | None:
    """What ``got``, an ``(size, size)`` map, holds square by square (``p x p`` squares)."""
    if got.shape != (size, size):
        return None
    if np.all(got == np.round(got)):
        return ("every pixel holds a whole number where the scores are fractions: the map is an "
                "integer array (np.zeros(..., dtype=int)?) or is cast to one; make it float.")
    side = size // p
    squares = got.reshape(side, p, side, p)
    spread = np.ptp(squares, axis=(1, 3))
    values = squares[:, 0, :, 0].ravel()
    owner = [np.flatnonzero(np.abs(scores - v) <= 1e-6 * max(1.0, abs(v))) for v in values]
    empty = [i for i, found in enumerate(owner) if found.size == 0]
    if np.all(spread <= 1e-6) and empty and np.all(values[empty] == 0):
        return (f"the squares of patches {empty[:8]}{'...' if len(empty) > 8 else ''} are never "
                "filled (left at 0): a loop that skips them (range(1, side) or range(side - "
                "1)?); every patch's square takes its score.")
    bad = ~np.isclose(got, _pixels(scores, size, p))
    if 2 * bad.any(axis=1).sum() <= size or 2 * bad.any(axis=0).sum() <= size:
        return None  # a few rows or columns of pixels: diagnose says which
    if np.any(spread > 1e-6):
        r, c = (int(i) for i in np.argwhere(spread > 1e-6)[0])
        if np.all(np.min(np.abs(got.reshape(-1, 1) - scores.reshape(1, -1)), axis=1) <= 1e-6):
            return (f"every pixel holds a score, but the {p} x {p} square of a patch holds "
                    f"several patches' scores (the first: row {r}, column {c} of the patch "
                    "grid): the scores are laid out pixel by pixel (np.resize, or a reshape of "
                    "repeated scores?), not each filling its own square. Reshape to the (side, "
                    "side) grid first, then repeat along both axes.")
        return (f"the pixels of one patch's {p} x {p} square hold different values (the first "
                f"such square: row {r}, column {c} of the patch grid), interpolated or smoothed "
                "(a bilinear resize?): every pixel of a square takes its own patch's score, "
                "unchanged (np.repeat, or a resize with nearest-neighbour interpolation).")
    for i, found in enumerate(owner):
        if found.size == 0:
            return (f"each {p} x {p} square holds one value, but square {i} (row {i // side}, "
                    f"column {i % side} of the patch grid) holds {values[i]:.4g}, which is "
                    "not any patch's score: the map holds the scores as they are.")
        if i not in found:
            j = int(found[0])
            return (f"each {p} x {p} square holds one score, but not its own patch's: square "
                    f"{i} (row {i // side}, column {i % side} of the patch grid) holds patch "
                    f"{j}'s score. Patches run row by row: patch i belongs at row i // "
                    f"{side}, column i % {side}.")
    return None


@checker("attention_to_pixels")
def check_attention_to_pixels(fn: Callable) -> str:
    """Check ``fn(unit_scores (N,), image_size, patch_size) -> (image_size, image_size)``: each
    patch's score painted over its ``P x P`` pixels, patches row by row."""
    rng = np.random.default_rng(21)
    cases = [((8, 2), rng), ((8, 2), rng), ((12, 3), rng), ((32, 4), rng), ((12, 4), fresh_rng()),
             ((10, 5), rng)]
    ran_on: dict[tuple, str] = {}
    for (size, p), gen in cases:
        side = size // p
        scores = gen.uniform(size=side * side)
        what = f"unit_scores of shape ({side * side},), image_size={size}, patch_size={p}"
        result = call_sized(fn, scores, size, p, what=what, ran_on=ran_on)
        extra_results(result, (size, size), "the pixel map", what)
        got = to_array(result, "pixel map", what)
        grid = scores.reshape(side, side)
        compare_story(got, _pixels(scores, size, p), "pixel map", what, {
            "the patch grid is transposed: patches run row by row over the image (patch 1 is "
            "to the right of patch 0, not below it).": _pixels(grid.T.ravel(), size, p),
            "the grid is repeated as a whole (tiled) instead of each patch's score filling its "
            "own P x P square.": np.tile(grid, (p, p)),
            "each patch's score fills a P x P square, but the squares are spread the wrong way "
            "(each row of pixels repeats the grid's rows).": np.repeat(np.tile(grid, (1, p)), p, 0),
            "each patch's score fills P*P consecutive pixels of one pixel row (a repeat then a "
            "reshape), not a P x P square: repeat along both axes of the (side, side) grid.":
                np.repeat(scores, p * p).reshape(size, size),
            "each score is repeated along the rows only (axis 0 twice?): repeat once along each "
            "axis of the grid.": np.repeat(np.repeat(grid, p, axis=0), p, axis=0)[:size, :size]
            if p > 1 else np.full(1, np.nan),
            "the scores are rescaled (to their maximum or to [0, 1]); the map holds them as "
            "they are.": _pixels(scores / scores.max(), size, p),
            "the (side, side) grid of patch scores, not blown up to pixels: each score fills "
            "its patch's P x P square.": grid,
            "each score is repeated along one axis only (the rows); repeat along both axes.":
                np.repeat(grid, p, axis=0),
            "each score is repeated along the columns twice (axis=1 both times), so the rows "
            "are never repeated: repeat once along axis 0 and once along axis 1.":
                np.repeat(grid, p * p, axis=1) if p > 1 else np.full(1, np.nan),
            "each score is repeated along the rows twice (axis=0 both times), so the columns "
            "are never repeated: repeat once along axis 0 and once along axis 1.":
                np.repeat(grid, p * p, axis=0) if p > 1 else np.full(1, np.nan),
            "each score is repeated image_size // patch_size times (the number of patches per "
            "side), not patch_size times (the pixels per patch side).":
                _pixels(scores, side * side, side) if side != p else np.full(1, np.nan),
        }, lambda: _pixels_story(got, scores, size, p), axes=("rows", "columns"))
    return f"Right on {len(cases)} random maps of 4 sizes."


@checker("top_units")
def check_top_units(fn: Callable) -> str:
    """Check ``fn(attention (N, S), k) -> (k,)`` the memory units with the largest total
    attention over the patches (column sums), largest first."""
    rng = np.random.default_rng(22)
    cases = [((16, 8), 3, rng), ((16, 8), 3, rng), ((9, 12), 5, rng), ((25, 6), 1, rng),
             ((16, 10), 4, fresh_rng()), ((64, 200), 12, rng), ((40, 400), 250, rng), ((32, 300), 200, fresh_rng())]
    ran_on: dict[tuple, str] = {}
    right_ks: list[int] = []
    for shape, k, gen in cases:
        attention = ref.double_normalization(3.0 * gen.normal(size=shape))
        what = f"attention of shape {shape} and k={k}"
        result = call_sized(fn, attention, k, what=what, ran_on=ran_on)
        extra_results(result, (k,), "the units", what)
        got = to_array(result, "units", what)
        totals = attention.sum(axis=0)
        order = np.argsort(-totals)
        expected = order[:k]
        if got.ndim == 1 and got.size != k and got.size in right_ks:
            raise Mistake(f"Called with {what}, your function returned {got.size} units, as "
                          f"it did for k={got.size}.\nLikely mistake: a fixed number of units "
                          f"(the notebook's k?): return the top k, here {k}, with the "
                          "argument k.")
        if got.shape == expected.shape and set(got.tolist()) == set(expected.tolist()) and \
                not np.array_equal(got, expected) and not np.array_equal(got, np.sort(expected)) \
                and not np.array_equal(got, expected[::-1]):
            raise Mistake(f"Called with {what}, your units are the right {k} but in the order "
                          f"{got.astype(int).tolist()[:12]}, not largest total first "
                          f"{expected.tolist()[:12]}.\nLikely mistake: the top k are picked "
                          "without sorting them (np.argpartition leaves them in no particular "
                          "order): sort the chosen units by their totals, largest first.")
        compare_story(got, expected.astype(np.float64), "units", what, {
            "the order is reversed: largest total first.":
                np.argsort(totals)[-k:].astype(np.float64),
            "yours ranks the units by how many patches prefer them (each patch's argmax), not by "
            "their total attention.": _by_votes(attention, k),
            "the right units in the wrong order: yours are sorted by index; they should come "
            "largest total first.": np.sort(expected).astype(np.float64),
            "the smallest units: yours picks the units with the least attention.":
                np.argsort(totals)[:k].astype(np.float64),
            "yours ranks the units by their largest single score (column maximum), not by "
            "their total attention over the patches.":
                np.argsort(-attention.max(axis=0))[:k].astype(np.float64),
            "yours sums over the memory units (each patch's row) and ranks patches, not units.":
                np.argsort(-attention.sum(axis=1))[:k].astype(np.float64),
            "yours returns the largest totals themselves, not the indices of their units.":
                np.sort(totals)[::-1][:k],
            "the indices count from 1; NumPy's count from 0.": expected.astype(np.float64) + 1,
            "the slice skips the largest unit (an off-by-one at the end of a reversed slice): "
            "yours are ranks 2 to k + 1.": order[1:k + 1].astype(np.float64),
            "yours are the ranks of units 0 to k - 1 (an argsort of an argsort), not the units "
            "ranked 0 to k - 1: one argsort of the negated totals gives the units, largest "
            "first.": np.argsort(order)[:k].astype(np.float64),
            "yours are flat indices into the (N, S) map (an argsort with axis=None, or of a "
            "raveled map), not unit indices: sum each unit's column first, then rank the S "
            "totals.": np.argsort(-attention, axis=None)[:k].astype(np.float64),
            "yours are the units preferred by the first k patches (each row's argmax), not the "
            "units with the largest total attention (the column sums).":
                attention.argmax(axis=1)[:k].astype(np.float64),
            "pairs (unit, total) came back: return the units alone, a (k,) array of indices.":
                np.stack([expected, totals[expected]], axis=1),
            "the units and their totals came back together: return the units alone, a (k,) "
            "array of indices.": np.stack([expected, totals[expected]]),
        }, lambda: _top_story(got, order, k), rtol=0, atol=0, axes=("k",))
        right_ks.append(k)
    return f"Right on {len(cases)} random maps, up to S = 400 memory units."


def _top_story(got: np.ndarray, order: np.ndarray, k: int) -> str | None:
    """Where the learner's units rank by total attention (0 the largest)."""
    s = order.size
    if got.ndim != 1 or not np.all(got == np.round(got)):
        return None
    if got.size == s and set(np.unique(got).tolist()) <= {0.0, 1.0}:
        return (f"a mask over the {s} units came back (1 for the top units), not their indices: "
                "return the k indices, largest total first.")
    if np.any(got < 0) or np.any(got >= s):
        return (f"some of your values ({got[(got < 0) | (got >= s)][:4].tolist()}) are not unit "
                f"indices, which run from 0 to {s - 1} (S = {s}): return indices into the S "
                "memory units.")
    units = got.astype(int).tolist()
    if len(set(units)) < len(units):
        return "a unit appears more than once among yours: each of the top k appears once."
    rank = np.empty(s, dtype=int)
    rank[order] = np.arange(s)
    return (f"your units rank {rank[units][:12].tolist()} by total attention (0 is the "
            f"largest); the answer is the units ranked 0 to {k - 1}, in that order. Rank the "
            "units by their column sums over the patches.")


def _by_votes(attention: np.ndarray, k: int) -> np.ndarray:
    votes = np.bincount(attention.argmax(axis=1), minlength=attention.shape[1])
    return np.argsort(-votes, kind="stable")[:k].astype(np.float64)


# ----------------------------------------------------------------------------------------------
# 09 scaling slopes


@checker("fit_slope")
def check_fit_slope(fn: Callable) -> str:
    """Check ``fn(ns, costs) -> float``: the slope of the least-squares line through
    ``(log n, log cost)``, the exponent k of ``cost ~ n^k``."""
    rng = np.random.default_rng(23)
    cases = [(rng, 1.0, "array"), (rng, 2.0, "list"), (rng, 1.37, "array"),
             (fresh_rng(), 0.6, "list"), (rng, 1.8, "uneven")]
    ran_on: dict[tuple, str] = {}
    for gen, k, kind in cases:
        ns = np.array([64, 128, 256, 512, 1024, 2048])
        if kind == "uneven":  # unevenly spaced, unsorted, a size measured twice
            ns = np.array([300, 40, 1000, 90, 2500, 90, 700])
        costs = 3e-6 * ns**k * np.exp(gen.normal(scale=0.08, size=ns.size))
        args = (ns.tolist(), costs.tolist()) if kind == "list" else (ns, costs)
        what = (f"{'Python lists' if kind == 'list' else 'arrays'} ns {ns.tolist()} and costs "
                f"that grow like n^{k} with noise")
        result = call_sized(fn, *args, what=what, ran_on=ran_on)
        got = to_array(result, "slope", what)
        if got.size == ns.size and got.size > 2:
            raise Mistake(f"Called with {what}, your function returned {got.size} numbers, one "
                          "per point.\nLikely mistake: a value per point (an element-wise ratio "
                          "of logarithms, or the fitted line's values?): the slope is one number "
                          "for all the points, the least-squares slope of log cost against "
                          "log n.")
        if got.size > 2:
            raise Mistake(f"Called with {what}, your function returned {got.size} numbers "
                          f"({type(result).__name__}).\nLikely mistake: the whole fit result "
                          "(scipy's linregress, or every coefficient) came back: return its "
                          "slope alone, a float (`.slope`, or the first coefficient).")
        if got.size == 2:
            raise Mistake(f"Called with {what}, your function returned two numbers "
                          f"{got.tolist()}.\nLikely mistake: both coefficients of the fit "
                          "(slope and intercept) are returned; return the slope alone, a "
                          "float.")
        if got.shape != () or isinstance(result, (list, tuple)):
            raise Mistake(f"Called with {what}, your function returned "
                          f"{type(result).__name__} of shape {got.shape}, not a number.\n"
                          "Likely mistake: a 1-element array (or list) where a float belongs: "
                          "take the number out (float(...), or index [0] of the fit's "
                          "coefficients).")
        log_n, log_c = np.log(ns), np.log(costs)
        expected = np.polyfit(log_n, log_c, 1)[0]
        order = np.argsort(ns, kind="stable")
        if not np.isclose(got, expected, rtol=1e-6, atol=1e-9) and rounded(
                got, np.array(expected)):
            raise Mistake(f"Called with {what}, your slope is {float(got)!r}, the right one "
                          f"{expected!r}.\nLikely mistake: {rounded(got, np.array(expected))}")
        steps = np.diff(log_n[order])
        even = steps.size > 1 and np.allclose(steps, steps[0])
        compare_story(got, np.array(expected), "slope", what, {
            "mixed logarithm bases: log10 on one axis and the natural log on the other (the "
            "slope is off by ln 10 = 2.303); use the same base for both.": np.array(
                expected * math.log(10)),
            "mixed logarithm bases: the natural log on one axis and log10 on the other (the "
            "slope is off by ln 10 = 2.303); use the same base for both.": np.array(
                expected / math.log(10)),
            "the line is forced through the origin (no intercept): fit a slope and an "
            "intercept.": np.array(np.sum(log_n * log_c) / np.sum(log_n * log_n)),
            "the slope is an average of log(cost) / log(n), point by point: that ratio mixes in "
            "the intercept; fit a line.": np.array(np.mean(log_c / log_n)),
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
            "the slope uses only the first and last points" + (
                " (or is the mean of the slopes between neighbouring points, which comes to the "
                "same on sizes evenly spaced on log axes)" if even else "") +
            ": a least-squares fit uses them all.":
                np.array((log_c[-1] - log_c[0]) / (log_n[-1] - log_n[0])),
            "the slope uses only the last two points: a least-squares fit uses them all.":
                np.array((log_c[-1] - log_c[-2]) / (log_n[-1] - log_n[-2])),
            "the slope is the ratio of the mean log cost to the mean log n: that ratio mixes in "
            "the intercept; fit a line.": np.array(np.mean(log_c) / np.mean(log_n)),
            "the slope is the mean of the slopes between neighbouring points: a least-squares "
            "fit uses all the points at once.": np.array(np.mean(
                np.diff(log_c[order]) / np.diff(log_n[order]))) if len(set(ns.tolist())) == ns.size
            else np.full(1, np.nan),
            "the slope uses only the smallest and largest sizes: a least-squares fit uses all "
            "the points.": np.array((log_c[order[-1]] - log_c[order[0]])
                                    / (log_n[order[-1]] - log_n[order[0]])),
        }, lambda: None if got.shape else (
            f"your slope is {float(got):.4g} where the least-squares line through all "
            f"{ns.size} points (log n, log cost) has slope {expected:.4g} (these costs grow "
            f"like n^{k}): fit log(cost) against log(n), every point, one slope and one "
            "intercept."), rtol=1e-6, atol=1e-9)
    return (f"Right on {len(cases)} noisy power laws, from lists and arrays, sizes unsorted and "
            "repeated included; any logarithm base gives the same slope.")


# ----------------------------------------------------------------------------------------------
# 10 Sinkhorn and the EM view of the memory


def _sinkhorn(logits: np.ndarray, steps: int, rows_first: bool = False,
              exp: bool = True, exp_every_round: bool = False,
              columns_only: bool = False) -> np.ndarray:
    p = ref.softmax(logits, axis=-1 if rows_first else -2) if exp else logits
    for step in range(steps):
        if step and exp_every_round:
            p = ref.softmax(p, axis=-2)
        elif step or rows_first or not exp:
            p = p / p.sum(axis=-1 if rows_first else -2, keepdims=True)
        if not columns_only:
            p = p / p.sum(axis=-2 if rows_first else -1, keepdims=True)
    return p


@checker("sinkhorn")
def check_sinkhorn(fn: Callable) -> str:
    """Check ``fn(logits (..., N, S), steps) -> (..., N, S)``: the exponential of the logits,
    then ``steps`` rounds of (columns over N sum to 1, then rows over S sum to 1)."""
    rng = np.random.default_rng(24)
    cases = [((6, 4), 1, rng, 0.0), ((6, 4), 3, rng, 0.0), ((2, 5, 7), 2, rng, 0.0),
             ((2, 5, 7), 10, rng, 0.0), ((3, 6, 5), 4, fresh_rng(), 0.0),
             ((2, 6, 5), 2, rng, "shift"), ((2, 6, 5), 3, rng, 1000.0), ((5, 5), 2, rng, 0.0)]
    ran_on: dict[tuple, str] = {}
    for shape, steps, gen, spread in cases:
        logits = 2.0 * gen.normal(size=shape)
        tolerances, not_finite = {}, None
        what = f"logits of shape {shape} and steps={steps}"
        if spread == "shift":
            logits = logits + 800.0
            what += " (every value near 800)"
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
            not_finite = UNSTABLE.format(shift=800.0)
        elif spread:
            logits = logits + gen.uniform(-spread, spread, size=(*shape[:-2], 1, shape[-1]))
            what += " (each memory unit's column offset by up to ±1000)"
            tolerances = {"rtol": LARGE_RTOL, "atol": LARGE_ATOL}
            not_finite = GLOBAL_MAX
        result = call_sized(fn, logits, steps, what=what, ran_on=ran_on)
        extra_results(result, shape, "the plan", what)
        got = to_array(result, "plan", what)
        by_row = {"max": np.exp(logits - logits.max(axis=-1, keepdims=True)),
                  "softmax": ref.softmax(logits, axis=-1)}
        compare_story(got, _sinkhorn(logits, steps), "plan", what, {
            "the rounds start with the rows: each round first normalizes the columns (over the "
            "patches N), then the rows (over S), as the double normalization does.":
                _sinkhorn(logits, steps, rows_first=True),
            "one round whatever `steps` says.": _sinkhorn(logits, 1) if steps > 1
            else np.full(1, np.nan),
            "one round too many.": _sinkhorn(logits, steps + 1),
            "the exponential is missing: Sinkhorn scales exp(logits), not the logits.":
                _sinkhorn(logits, steps, exp=False),
            "the exponential is taken again in every round (a softmax each time): it is taken "
            "once, before the first round; the rounds only divide by sums.":
                _sinkhorn(logits, steps, exp_every_round=True),
            "the rows are never normalized" + (
                " (or each step is half a round, one normalization; a round is both)"
                if steps == 1 else "") + ": each round divides every column by its sum over N, "
            "then every row by its sum over S.": _sinkhorn(logits, steps, columns_only=True),
            "each step is half a round (one normalization, columns and rows in turn): a round "
            "is both, every column over N and then every row over S.":
                _rounds(ref.softmax(logits, axis=-2), steps, half=True),
            "the exponential is scaled per row before the first round (a maximum or a softmax "
            "over S, axis -1): the columns' normalization does not cancel a factor per row. "
            "Subtract each column's maximum (over N, axis -2) instead.":
                _rounds(by_row["max"], steps),
            "the exponential is normalized per row before the first round (a softmax over S, "
            "axis -1): the columns' normalization does not cancel a factor per row. Start "
            "from exp(logits), or a softmax over N (axis -2).": _rounds(by_row["softmax"], steps),
            "the rows are divided by the sum of the whole map (every N and S), not each row by "
            "its own sum over S (axis -1, keepdims=True).": _rounds(
                ref.softmax(logits, axis=-2), steps, rows=lambda p: p.sum(axis=(-2, -1),
                                                                          keepdims=True)),
            "the rows are divided by a sum without keepdims=True: p.sum(axis=-1) has shape "
            "(..., N) and broadcasts along the last axis, dividing column j by row j's sum. "
            "Keep the axis (keepdims=True).": _rounds(
                ref.softmax(logits, axis=-2), steps, rows=lambda p: np.expand_dims(
                    p.sum(axis=-1), -2)) if shape[-1] == shape[-2] else np.full(1, np.nan),
            "the logarithm of the plan came back (rounds in the log domain, without the final "
            "exponential): return the plan itself.": np.log(_sinkhorn(logits, steps)),
            "the rounds run until the plan converges (or for a fixed large number): run exactly "
            "`steps` rounds.": _sinkhorn(logits, 500) if steps < 500 else np.full(1, np.nan),
            "fixed axes: your axes are counted from the front (0 and 1), which works for one "
            "(N, S) map but not with leading axes. Count from the end: N is -2, S is -1.":
                _sinkhorn_front(logits, steps) if logits.ndim > 2 else np.full(1, np.nan),
            "steps - 1 rounds (a range that starts at 1?): the loop runs `steps` times.":
                _sinkhorn(logits, steps - 1) if steps > 1
                else np.exp(logits - logits.max(axis=-2, keepdims=True)),
        }, lambda: None if not spread else (
            "right on small logits, but not on these large ones (and no NaN): the logits are "
            "changed before the exponential (clipped, capped or scaled to keep exp finite?). "
            "Subtract each column's maximum over N (axis -2) instead: it cancels in the "
            "columns' normalization and changes nothing."),
            **tolerances, not_finite=not_finite, axes=("N", "S"))
    return f"Right on {len(cases)} random inputs, 1 to 10 rounds, large logits included."


def _rounds(plan: np.ndarray, steps: int, half: bool = False,
            rows: Callable | None = None) -> np.ndarray:
    """``steps`` rounds from ``plan`` (each: columns over N, then rows over S; ``half``: one
    normalization per step, in turn; ``rows``: the rows' divisor)."""
    for step in range(steps):
        if not half or step % 2 == 0:
            plan = plan / plan.sum(axis=-2, keepdims=True)
        if not half or step % 2 == 1:
            plan = plan / (rows(plan) if rows else plan.sum(axis=-1, keepdims=True))
    return plan


def _sinkhorn_front(logits: np.ndarray, steps: int) -> np.ndarray:
    p = ref.softmax(logits, axis=0)
    for step in range(steps):
        if step:
            p = p / p.sum(axis=0, keepdims=True)
        p = p / p.sum(axis=1, keepdims=True)
    return p


def _em_step(features, memory, e_axis=-1, normalize=True, hard=False, distance=False,
             scale=1.0, cosine=False, responsibilities=None):
    if cosine:
        logits = ((features / np.linalg.norm(features, axis=1, keepdims=True))
                  @ (memory / np.linalg.norm(memory, axis=1, keepdims=True)).T)
    else:
        logits = (-((features[:, None] - memory[None]) ** 2).sum(-1) if distance
                  else features @ memory.T) * scale
    z = ref.softmax(logits, axis=e_axis) if responsibilities is None else responsibilities
    if hard:
        z = np.eye(memory.shape[0])[logits.argmax(axis=1)]
    if normalize == "N":
        z = z / features.shape[0]
    elif normalize:
        z = z / z.sum(axis=0, keepdims=True)
    return z.T @ features


@checker("em_step")
def check_em_step(fn: Callable) -> str:
    """Check ``fn(features (N, d), memory (S, d)) -> (S, d)``: each patch's responsibilities
    (a softmax over the S units of its similarity to them), then each unit moved to the
    responsibility-weighted mean of the features."""
    rng = np.random.default_rng(25)
    cases = [((20, 4), 3, rng, False), ((20, 4), 3, rng, False), ((30, 6), 5, rng, False),
             ((16, 3), 4, fresh_rng(), False), ((24, 5), 4, rng, True), ((12, 4), 4, rng, False)]
    ran_on: dict[tuple, str] = {}
    for (n, d), s, gen, large in cases:
        features = gen.normal(size=(n, d))
        memory = gen.normal(size=(s, d))
        what = f"features of shape {(n, d)} and memory of shape {(s, d)}"
        not_finite, tolerances = None, {}
        if large:
            # Feature 0 of each patch large, the same for every unit's similarity: the softmax
            # over S cancels it, an exponential without each row's maximum overflows.
            features[:, 0] = gen.uniform(-600.0, 900.0, size=n)
            memory[:, 0] = 1.0
            what += " (similarities offset by up to 900, one offset per patch)"
            not_finite = ("the exponential of the similarities overflows or underflows: "
                          "subtract each patch's largest similarity (over the S units) before "
                          "it.")
            tolerances = {"rtol": LARGE_RTOL, "atol": 1e-3}
        result = call_sized(fn, features, memory, what=what, ran_on=ran_on)
        extra_results(result, (s, d), "the updated memory", what)
        got = to_array(result, "memory", what)
        expected = _em_step(features, memory)
        logits = features @ memory.T
        compare_story(got, expected, "memory", what, {
            "the responsibilities are a softmax over the patches N; each patch shares itself "
            "among the S units (a softmax over S), as in k-means' assignment.":
                _em_step(features, memory, e_axis=0),
            "the new units are weighted sums, not weighted means: divide by each unit's total "
            "responsibility.": _em_step(features, memory, normalize=False),
            "the memory did not move: the update replaces it with the weighted means.": memory,
            "hard assignments (each patch to its most similar unit, k-means' argmax): soft "
            "k-means shares each patch by a softmax.": _em_step(features, memory, hard=True),
            "the similarities are negative squared distances; the contract uses dot products.":
                _em_step(features, memory, distance=True),
            "the weighted sums are divided by the number of patches N; each unit's are divided "
            "by its own total responsibility.": _em_step(features, memory, normalize="N"),
            "the responsibilities (N, S) came back: return the updated memory (S, d), the "
            "responsibility-weighted means of the features.":
                ref.softmax(features @ memory.T, axis=-1),
            "the similarities are divided by sqrt(d), as in scaled dot-product attention: the "
            "contract's softmax is of the plain dot products.":
                _em_step(features, memory, scale=1 / math.sqrt(d)),
            "cosine similarities (features and units normalized to length 1): the contract's "
            "similarities are the plain dot products.": _em_step(features, memory, cosine=True),
            "each patch's responsibilities do not sum to 1 over the S units: the exponential "
            "without the softmax's division by its sum over S.": _em_step(
                features, memory, responsibilities=np.exp(
                    logits - logits.max(axis=1, keepdims=True))),
            "the responsibilities are the raw dot products, with no softmax over the S units.":
                _em_step(features, memory, responsibilities=logits),
            "the weighted sums are divided without keepdims: z.sum(axis=0) has shape (S,) and "
            "broadcasts along the last axis (d), dividing feature j by unit j's total. Keep the "
            "axis ([:, None] or keepdims=True).": (
                ref.softmax(logits, axis=-1).T @ features) / ref.softmax(logits, axis=-1).sum(
                    axis=0) if s == d else np.full(1, np.nan),
        }, lambda: _em_story(got, expected, memory), not_finite=not_finite, **tolerances,
            axes=("S", "d"))
    return f"Right on {len(cases)} random features and memories."


def _em_story(got: np.ndarray, expected: np.ndarray, memory: np.ndarray) -> str | None:
    """``got`` as a mix ``a * memory + b * new`` of the old memory and the right update."""
    if got.shape != expected.shape:
        return None
    basis = np.stack([memory.ravel(), expected.ravel()], axis=1)
    (a, b), *_ = np.linalg.lstsq(basis, got.ravel(), rcond=None)
    if abs(a) > 1e-3 and np.allclose(basis @ (a, b), got.ravel(), rtol=1e-4, atol=1e-6):
        return (f"your memory is {a:.3g} x the old memory + {b:.3g} x the right update: the old "
                "memory is mixed in (a momentum or a residual update). One EM round replaces "
                "each unit by the responsibility-weighted mean of the features.")
    return None
