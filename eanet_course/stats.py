"""Bootstrap intervals: how far a statistic of a sample could move with another sample.

A claim that rests on a difference (notebook 08: a trained model's memory units against a
control's) shows its spread. :func:`bootstrap_interval` recomputes a statistic on many resamples
of the data, drawn with replacement, and returns the range that holds the middle 95% of the
values (the percentile bootstrap, Efron & Tibshirani 1993, chapter 13). Several statistics of the
same resamples (paired: scores of two models on the same images, and their ratio) come from one
statistic that returns several numbers; the same ``seed`` and sizes also draw the same resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from eanet_course.validation import finite_real, is_integer

__all__ = ["Interval", "bootstrap_interval"]


class Interval(NamedTuple):
    """A statistic on the whole sample and its bootstrap interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float

    def excludes(self, value: float) -> bool:
        """Whether ``value`` lies outside the interval (e.g. 1 for a ratio: a difference)."""
        return value < self.low or value > self.high

    def __str__(self) -> str:
        return (f"{self.estimate:.3g} ({self.confidence:.0%} interval {self.low:.3g} to "
                f"{self.high:.3g})")


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | np.ndarray],
    size: int | None = None,
    *,
    strata: np.ndarray | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval | list[Interval]:
    """The percentile bootstrap interval of ``statistic`` over resamples of ``size`` items.

    Args:
        statistic: maps an index array into the sample, ``(size,)`` integers, to a number, e.g.
            ``lambda i: x[i].mean()``, or to a 1-D array of ``m`` numbers (``m`` statistics of
            the same resamples). Called once with ``np.arange(size)`` (the estimate), then once
            per resample.
        size: the number of items (images); may be left out when ``strata`` is given.
        strata: ``(size,)`` labels: each resample draws within every stratum as many items as it
            has (a stratified bootstrap: every class keeps its count, none goes missing).
        resamples: how many resamples (1000 is the usual choice for a 95% interval).
        confidence: the share of the resampled values the interval holds, in ``(0, 1)``.
        seed: seeds NumPy's generator; the same seed and sizes give the same resamples.

    Returns:
        :class:`Interval` ``(estimate, low, high, confidence)``; a list of ``m`` of them when
        ``statistic`` returns ``m`` numbers.
    """
    if strata is not None:
        strata = np.asarray(strata)
        if strata.ndim != 1 or (size is not None and len(strata) != size):
            raise ValueError(f"bootstrap_interval: strata must be one label per item, shape "
                             f"({size if size is not None else 'size'},), got {strata.shape}.")
        size = len(strata)
    if size is None or not is_integer(size) or size < 2:
        raise ValueError(f"bootstrap_interval: size={size!r} must be an integer >= 2 (the number "
                         "of items to resample), or pass strata=.")
    if not is_integer(resamples) or resamples < 1:
        raise ValueError(f"bootstrap_interval: resamples={resamples!r} must be an integer >= 1.")
    if not finite_real(confidence) or not 0.0 < confidence < 1.0:
        raise ValueError(f"bootstrap_interval: confidence={confidence!r} must be a number in "
                         "(0, 1), e.g. 0.95.")
    # Items sorted by stratum; position p of a resample draws uniformly among the items of the
    # stratum that sits at p, i.e. order[start + floor(u * count)] with u uniform in [0, 1).
    order = np.arange(size) if strata is None else np.argsort(strata, kind="stable")
    _, starts, counts = np.unique(np.zeros(size) if strata is None else strata[order],
                                  return_index=True, return_counts=True)
    start, count = np.repeat(starts, counts), np.repeat(counts, counts)
    rng = np.random.default_rng(seed)
    first = statistic(np.arange(size))
    estimate = _numbers(first, None)
    values = np.empty((resamples, len(estimate)))
    for k in range(resamples):
        indices = order[start + (rng.random(size) * count).astype(np.intp)]
        values[k] = _numbers(statistic(indices), len(estimate))
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2], axis=0)
    intervals = [Interval(float(e), float(lo), float(hi), float(confidence))
                 for e, lo, hi in zip(estimate, low, high)]
    return intervals if np.ndim(first) == 1 else intervals[0]


def _numbers(value, expected: int | None) -> np.ndarray:
    """``value`` (a number or a 1-D array of them) as a float array, or a ValueError."""
    numbers = np.asarray(value, dtype=object)
    if numbers.ndim > 1 or numbers.size == 0 or not all(finite_real(v) for v in numbers.ravel()) or (
            expected is not None and numbers.size != expected):
        raise ValueError(f"bootstrap_interval: the statistic returned {value!r} for a resample; "
                         "it must return one finite number, or the same count of them in a 1-D "
                         "array, for any index array.")
    return numbers.astype(float).ravel()
