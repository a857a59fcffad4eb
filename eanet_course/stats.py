"""Bootstrap intervals: how far a statistic of a sample could move with another sample.

A claim that rests on a difference (notebook 08: a trained model's memory units against a
control's) shows its spread. :func:`bootstrap_interval` recomputes a statistic on many resamples
of the data, drawn with replacement, and returns the range that holds the middle 95% of the
values (the percentile bootstrap, Efron & Tibshirani 1993, chapter 13). The same ``seed`` and
sizes draw the same resamples, so that two statistics of the same images are paired.
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
    statistic: Callable[[np.ndarray], float],
    size: int | None = None,
    *,
    strata: np.ndarray | None = None,
    resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """The percentile bootstrap interval of ``statistic`` over resamples of ``size`` items.

    Args:
        statistic: maps an index array into the sample, ``(size,)`` integers, to a number, e.g.
            ``lambda i: x[i].mean()``. Called once with ``np.arange(size)`` (the estimate), then
            once per resample.
        size: the number of items (images); may be left out when ``strata`` is given.
        strata: ``(size,)`` labels: each resample draws within every stratum as many items as it
            has (a stratified bootstrap: every class keeps its count, none goes missing).
        resamples: how many resamples (1000 is the usual choice for a 95% interval).
        confidence: the share of the resampled values the interval holds, in ``(0, 1)``.
        seed: seeds NumPy's generator; the same seed and sizes give the same resamples.

    Returns:
        :class:`Interval` ``(estimate, low, high, confidence)``.
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
    groups = ([np.arange(size)] if strata is None
              else [np.flatnonzero(strata == value) for value in np.unique(strata)])
    rng = np.random.default_rng(seed)
    estimate = _value(statistic, np.arange(size))
    values = np.empty(resamples)
    for k in range(resamples):
        indices = np.concatenate([group[rng.integers(0, len(group), len(group))]
                                  for group in groups])
        values[k] = _value(statistic, indices)
    low, high = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Interval(estimate, float(low), float(high), float(confidence))


def _value(statistic: Callable[[np.ndarray], float], indices: np.ndarray) -> float:
    value = statistic(indices)
    if not finite_real(value):
        raise ValueError(f"bootstrap_interval: the statistic returned {value!r} for a resample; "
                         "it must return one finite number for any index array.")
    return float(value)
