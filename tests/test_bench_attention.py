"""The attention benchmark: slope fitting, plans, ratios, and one small real run."""

import json

import numpy as np
import pytest

from eanet_course.bench import attention as bench


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
    assert bench.ratios(results) == {64: {"time": 0.5, "memory": 1.5},
                                     4096: {"time": 30.0, "memory": 50.0}}
    with pytest.raises(ValueError, match="baseline"):
        bench.ratios(results, baseline="external")


def test_ratios_and_summary_survive_a_zero_or_missing_external_cost():
    results = {"rows": [_row("external", 64, 0.0, None), _row("self", 64, 1.0, 1.5)],
               "slopes": {}, "batch_size": 1, "embed_dim": 8, "num_heads": 1, "machine": "m"}
    assert bench.ratios(results) == {64: {"time": None, "memory": None}}
    assert "takes - the time and - the peak memory" in bench.summary(results)


def test_a_small_run_measures_each_configuration_and_saves_it(tmp_path, capsys):
    plan = bench.Plan(sizes={"external": (256, 1024), "self": (256, 1024)},
                      repeats=1, warmup=0, min_seconds=0.0, batch_size=1, fit_from=256)
    results = bench.run(out_dir=tmp_path, plan=plan)

    assert json.loads((tmp_path / "attention.json").read_text()) == results
    assert bench.load(tmp_path) == results
    assert (tmp_path / "attention.png").stat().st_size > 0
    assert [(r["layer"], r["N"]) for r in results["rows"]] == [
        ("external", 256), ("external", 1024), ("self", 256), ("self", 1024)]
    assert all(r["time_ms"] > 0 for r in results["rows"])

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
