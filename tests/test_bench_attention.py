"""The attention benchmark: slope fitting, plans, ratios, and one small real run."""

import json

import numpy as np
import pytest

from eanet_course import results as records
from eanet_course.bench import attention as bench
from eanet_course.cli import main


@pytest.mark.parametrize("exponent", [0.5, 1.0, 2.0])
def test_fit_slope_recovers_the_exponent_of_a_power_law(exponent):
    ns = np.array([64, 256, 1024, 4096])
    costs = 3.7 * ns**exponent * np.exp(np.random.default_rng(0).normal(0, 1e-3, ns.size))
    assert bench.fit_slope(ns, costs) == pytest.approx(exponent, abs=0.01)


@pytest.mark.parametrize("ns, costs", [([1024], [1.0]), ([64, 128], [1.0, 0.0]),
                                       ([256, 256], [1.0, 2.0]), ([64, 128], [1.0, np.nan])])
def test_fit_slope_refuses_what_has_no_log_log_line(ns, costs):
    with pytest.raises(ValueError, match="two points"):
        bench.fit_slope(ns, costs)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"sizes": {"flash": (64,)}}, "Unknown layer"),
        ({"sizes": {"self": (64, 0)}}, "positive integers"),
        ({"sizes": {"self": ()}}, "positive integers"),
        ({"sizes": {"self": (256, 256)}}, "repeats a size"),
        ({"repeats": 0}, "repeats"),
        ({"runs": 0}, "runs"),
        ({"min_seconds": -1.0}, "min_seconds"),
        ({"embed_dim": 30}, "not divisible"),
    ],
)
def test_a_bad_plan_is_refused_with_the_reason(changes, message):
    fields = {"sizes": {"self": (64,)}, "repeats": 1, **changes}
    with pytest.raises(ValueError, match=message):
        bench.Plan(**fields)


def test_run_wants_a_plan_object(tmp_path):
    with pytest.raises(TypeError, match="Plan"):
        bench.run(out_dir=tmp_path, plan={"self": (64,)})


def test_quick_plan_stays_inside_the_full_plan():
    for layer, sizes in bench.QUICK.sizes.items():
        assert set(sizes) <= set(bench.FULL.sizes[layer])
    assert max(bench.FULL.sizes["external"]) >= 16384
    assert all(max(bench.FULL.sizes[layer]) >= 4096 for layer in bench.LAYERS)


def _row(layer, n, time_ms, peak_mb):
    return {"layer": layer, "N": n, "time_ms": time_ms, "peak_mb": peak_mb}


def test_ratios_compare_the_baseline_with_external_attention_at_shared_sizes():
    results = {"rows": [_row("external", 64, 2.0, 1.0), _row("external", 4096, 10.0, 4.0),
                        _row("self", 64, 1.0, 1.5), _row("self", 4096, 300.0, 200.0),
                        _row("external", 16384, 40.0, 16.0)]}
    assert bench.ratios(results) == {64: {"time": 0.5, "time_range": [0.5, 0.5], "memory": 1.5},
                                     4096: {"time": 30.0, "time_range": [30.0, 30.0],
                                            "memory": 50.0}}
    # With a spread, the range runs from the baseline's fastest over external's slowest to the
    # other way round.
    results["rows"][1].update(time_ms_low=8.0, time_ms_high=12.0)
    results["rows"][3].update(time_ms_low=240.0, time_ms_high=360.0)
    assert bench.ratios(results)[4096]["time_range"] == [20.0, 45.0]
    with pytest.raises(ValueError, match="baseline"):
        bench.ratios(results, baseline="external")


def test_ratios_and_summary_survive_a_zero_or_missing_external_cost():
    results = {"rows": [_row("external", 64, 0.0, None), _row("self", 64, 1.0, 1.5)],
               "slopes": {}, "batch_size": 1, "embed_dim": 8, "num_heads": 1, "machine": "m"}
    assert bench.ratios(results) == {64: {"time": None, "time_range": None, "memory": None}}
    assert "takes - the time and - the peak memory" in bench.summary(results)


def test_a_small_run_measures_each_configuration_and_saves_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EANET_HOME", str(tmp_path / "home"))
    plan = bench.Plan(sizes={"external": (256, 1024), "self": (256, 1024)},
                      repeats=1, warmup=0, min_seconds=0.0, batch_size=1, fit_from=256)
    results = bench.run(out_dir=tmp_path, plan=plan, save=True)

    assert json.loads((tmp_path / "attention.json").read_text()) == results
    assert bench.load(tmp_path) == results
    assert (tmp_path / "attention.png").stat().st_size > 0
    assert [(r["layer"], r["N"]) for r in results["rows"]] == [
        ("external", 256), ("external", 1024), ("self", 256), ("self", 1024)]
    # One round: the median step, and the fastest and slowest step as the spread.
    for r in results["rows"]:
        assert len(r["time_ms_runs"]) == 1 and r["time_ms"] > 0
        assert r["time_ms_low"] <= r["time_ms"] <= r["time_ms_high"]
    assert results["runs"] == 1 and results["spread"] == "fastest and slowest timed step"
    assert results["load_average"]["min"] <= results["load_average"]["max"]
    assert results["slopes"]["self"]["time_runs"] is None
    # --save kept the record beside (not over) the shipped one.
    mine = records.load("attention", "mine")
    assert mine["data"] == results
    assert mine["provenance"]["command"].startswith("eanet_course.bench.attention.run(plan=")

    # The peak holds at least the attention maps kept for the backward pass, 4 bytes a score:
    # (B, H, N, N) for self-attention, (B, H*c, N, S) for external attention.
    peak = {(r["layer"], r["N"]): r["peak_mb"] for r in results["rows"]}
    heads, mib = plan.num_heads, 2**20
    assert peak["self", 1024] >= heads * 1024 * 1024 * 4 / mib
    assert peak["external", 1024] >= (4 * heads) * 1024 * (plan.embed_dim // 4) * 4 / mib
    # ... and grows with N^2 against N.
    assert results["slopes"]["self"]["memory"] > 1.6
    assert results["slopes"]["external"]["memory"] < 1.3
    assert results["slopes"]["self"]["range"] == [256, 1024]

    printed = capsys.readouterr().out
    assert "(custom plan)" in printed and "[ 4/4] self" in printed
    assert "Fitted log-log slopes" in printed
    assert "At N = 1024" in printed


@pytest.mark.parametrize("flag", ["--save", "--ship"])
def test_cli_save_and_ship_pass_the_record(flag, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench, "run", lambda **kwargs: calls.append(kwargs))
    assert main(["bench", "attention", "--quick", flag]) == 0
    assert calls == [{"quick": True, "out_dir": None, "save": flag == "--save",
                      "ship": flag == "--ship"}]
    assert main(["bench", "epoch", flag]) == 2
    assert "not of `bench epoch`" in capsys.readouterr().err


def test_time_calls_alternates_and_keeps_every_round():
    order = []
    timings = bench.time_calls({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                               repeats=3, warmup=1)
    assert order == ["a", "b"] * 4  # one warm-up round, then three timed ones, in turn
    for timing in timings.values():
        assert len(timing.times_ms) == 3
        assert timing.low_ms <= timing.median_ms <= timing.high_ms
    with pytest.raises(ValueError, match="repeats >= 1"):
        bench.time_call(lambda: None, repeats=0)


def _rows(layer, ns, medians, spread):
    return [{"layer": layer, "N": n, "time_ms": t, "time_ms_low": t / spread,
             "time_ms_high": t * spread} for n, t in zip(ns, medians)]


def test_slope_range_brackets_the_fitted_slope_from_the_spread():
    ns = [256, 1024, 4096]
    rows = _rows("self", ns, [1.0, 16.0, 256.0], spread=2.0)  # slope 2, every point x/÷ 2
    low, high = bench.slope_range(ns, [r["time_ms_low"] for r in rows],
                                  [r["time_ms_high"] for r in rows])
    # The ends move by log(4) in opposite directions over log(16) of N: 2 -/+ 0.5.
    assert (low, high) == pytest.approx((1.5, 2.5))


def test_describe_growth_names_only_what_the_spread_allows():
    ns = [1024, 2048, 4096]
    clear = {"rows": _rows("self", ns, [10.0, 40.0, 160.0], spread=1.05)}
    clear["slopes"] = bench.fit_slopes(clear["rows"], 1024)
    said = bench.describe_growth(clear, "self")
    assert "it grows, with a fitted slope of 2.00" in said and ": about quadratic." in said
    wide = {"rows": _rows("external", ns, [10.0, 20.0, 40.0], spread=1.3)}
    wide["slopes"] = bench.fit_slopes(wide["rows"], 1024)
    assert ("anything from less than linear to between linear and quadratic"
            in bench.describe_growth(wide, "external"))
    flat = {"rows": _rows("self", ns, [10.0, 11.0, 12.0], spread=1.5)}
    flat["slopes"] = bench.fit_slopes(flat["rows"], 1024)
    said = bench.describe_growth(flat, "self")
    assert "the spreads overlap" in said and "do not show the time growing" in said
    with pytest.raises(ValueError, match="fitted slope"):
        bench.describe_growth(flat, "external")


def test_time_forward_gives_rows_slopes_and_a_labelled_plot():
    from eanet_course.layers import SelfAttention

    live = bench.time_forward({"self": SelfAttention(8, num_heads=2)}, {"self": [16, 32, 64]}, 8,
                              repeats=1, warmup=1, fit_last=2)
    assert [r["N"] for r in live["rows"]] == [16, 32, 64]
    assert all(r["time_ms_low"] <= r["time_ms"] <= r["time_ms_high"] for r in live["rows"])
    assert live["slopes"]["self"]["range"] == [32, 64]  # the fit_last largest sizes
    shipped = {"rows": _rows("self", [64, 128], [1.0, 4.0], 1.1) + _rows("external", [64], [1.0], 1.1),
               "slopes": {}}
    assert [r["layer"] for r in bench.layers_of(shipped, "self")["rows"]] == ["self", "self"]
    with pytest.raises(ValueError, match="No rows of"):
        bench.layers_of(shipped, "keras_mha")
    figure = bench.plot_timings({"live now": live, "shipped: a label": shipped})
    assert [ax.get_title() for ax in figure.axes] == ["live now", "shipped: a label"]
    with pytest.raises(ValueError, match="metric"):
        bench.plot_timings({"live": live}, metric="energy")


def test_rounds_keep_the_median_of_their_medians_and_per_round_slopes():
    rounds = {n: [{"time_ms": t, "steps_ms": [t], "peak_mb": 2.0} for t in times]
              for n, times in {256: (1.0, 3.0, 2.0), 1024: (16.0, 20.0, 40.0)}.items()}
    rows = [bench._row("self", n, measured) for n, measured in rounds.items()]
    assert [(r["time_ms"], r["time_ms_low"], r["time_ms_high"]) for r in rows] == [
        (2.0, 1.0, 3.0), (20.0, 16.0, 40.0)]
    slopes = bench.fit_slopes(rows, 256)["self"]
    assert slopes["time_runs"] == pytest.approx([2.0, np.log(20 / 3) / np.log(4), 2.0 * np.log(20) / np.log(16)])
