"""Bootstrap intervals: coverage, pairing by seed, strata, and refusals that name the fix."""

import numpy as np
import pytest

from eanet_course.stats import Interval, bootstrap_interval


def test_the_interval_of_a_mean_matches_the_normal_theory_one():
    x = np.random.default_rng(1).normal(loc=3.0, scale=2.0, size=400)
    interval = bootstrap_interval(lambda i: x[i].mean(), len(x), resamples=2000, seed=0)
    half_width = 1.96 * x.std() / np.sqrt(len(x))       # about 0.2
    assert interval.estimate == pytest.approx(x.mean())
    assert interval.low == pytest.approx(x.mean() - half_width, abs=0.04)
    assert interval.high == pytest.approx(x.mean() + half_width, abs=0.04)
    assert not interval.excludes(3.0) and interval.excludes(2.0) and interval.excludes(4.0)


def test_a_higher_confidence_gives_a_wider_interval_and_the_text_says_it():
    x = np.random.default_rng(2).exponential(size=200)
    narrow = bootstrap_interval(lambda i: x[i].mean(), len(x), confidence=0.5)
    wide = bootstrap_interval(lambda i: x[i].mean(), len(x), confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    assert str(narrow).startswith(f"{x.mean():.3g} (50% interval ")


def test_the_same_seed_draws_the_same_resamples_so_statistics_pair():
    draws = []
    bootstrap_interval(lambda i: draws.append(i.copy()) or 0.0, 50, resamples=3, seed=7)
    again = []
    bootstrap_interval(lambda i: again.append(i.copy()) or 0.0, 50, resamples=3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(draws, again))
    assert not np.array_equal(draws[1], draws[2]), "each resample is a new draw"
    assert np.array_equal(draws[0], np.arange(50)), "the estimate uses the whole sample"


def test_strata_keep_every_class_and_its_count():
    labels = np.repeat([0, 1, 2], [5, 10, 1])
    counts = []
    bootstrap_interval(lambda i: counts.append(np.bincount(labels[i], minlength=3)) or 0.0,
                       strata=labels, resamples=20)
    assert all(np.array_equal(c, [5, 10, 1]) for c in counts)


def test_an_identical_sample_has_an_interval_of_zero_width():
    interval = bootstrap_interval(lambda i: np.ones(10)[i].mean(), 10, resamples=5)
    assert interval == Interval(1.0, 1.0, 1.0, 0.95)


@pytest.mark.parametrize("kwargs,fix", [
    ({"size": 1}, r"size=1 must be an integer >= 2"),
    ({"size": None}, r"size=None must be an integer >= 2 .*or pass strata="),
    ({"size": 10, "resamples": 0}, r"resamples=0 must be an integer >= 1"),
    ({"size": 10, "confidence": 95}, r"confidence=95 must be a number in \(0, 1\), e\.g\. 0\.95"),
    ({"size": 10, "strata": np.zeros(9)}, r"strata must be one label per item, shape \(10,\)"),
])
def test_bad_arguments_are_refused_naming_the_fix(kwargs, fix):
    with pytest.raises(ValueError, match=fix):
        bootstrap_interval(lambda i: 0.0, **kwargs)


def test_a_statistic_that_is_not_a_finite_number_is_refused():
    with pytest.raises(ValueError, match="returned nan for a resample; it must return one finite number"):
        bootstrap_interval(lambda i: float("nan"), 10)


def test_several_statistics_of_the_same_resamples_are_paired():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 1.0, 300), rng.normal(1.0, 1.0, 300)
    b = a + 0.1 * b                       # b moves with a: their ratio varies far less than each
    both = bootstrap_interval(lambda i: np.array([a[i].mean(), b[i].mean(), b[i].mean() / a[i].mean()]),
                              len(a), seed=5)
    assert both[0] == bootstrap_interval(lambda i: a[i].mean(), len(a), seed=5)
    ratio = both[2]
    assert ratio.high - ratio.low < (both[1].high - both[1].low) / 2


@pytest.mark.parametrize("value", [[], [[1.0, 2.0]], "1"])
def test_a_statistic_of_no_numbers_or_a_table_is_refused(value):
    with pytest.raises(ValueError, match="one finite number, or the same count of them"):
        bootstrap_interval(lambda i: value, 10)


def test_a_statistic_whose_count_of_numbers_changes_is_refused():
    with pytest.raises(ValueError, match="the same count of them"):
        bootstrap_interval(lambda i: np.ones(1 + (len(set(i.tolist())) < 10)), 10)
