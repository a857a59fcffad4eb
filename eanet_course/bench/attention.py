"""Does external attention really cost O(N)? Time and peak memory as the number of patches grows.

Three layers of the same width are compared on one forward + backward pass (the cost of a
training step): the course's :class:`~eanet_course.layers.ExternalAttention`, its
:class:`~eanet_course.layers.SelfAttention` and ``keras.layers.MultiHeadAttention``. Same width
means ``embed_dim`` in and out and, for self-attention, heads of ``embed_dim // num_heads``
channels (the usual transformer; the Keras example's ViT uses ``key_dim=embed_dim``, which makes
its N x N work four times larger: this benchmark gives self-attention the better deal).

Each configuration runs in a fresh process (see :mod:`eanet_course.bench._memory`), so one run
cannot pollute the next, with TensorFlow's pooling allocator:

* **Peak memory**: what the tensors of one step add at their peak, once the layer is built and
  the step traced (activations kept for the backward pass, gradients, scratch).
* **Time**: a compiled step (``tf.function``, no XLA) run ``warmup`` times, then the median of
  ``repeats`` timed runs. The full plan measures every configuration in ``runs`` = 3 rounds (all
  configurations once, then again: a change in the machine's load falls on all of them) and
  keeps the median of the rounds, with their lowest and highest as the spread.
* **Slopes**: a line fitted to ``log(cost)`` against ``log(N)``; ~1 is linear, ~2 quadratic,
  with the range of slopes the spread allows (:func:`slope_range`).

Run it with ``python -m eanet_course bench attention [--quick] [--out DIR] [--save]``.
``--save`` also writes the record ``attention`` to ``$EANET_HOME/results`` (see
:mod:`eanet_course.results`; notebook 09 shows it beside the course's shipped one).
Everything runs on the CPU (a GPU, if there is one, is left alone). Other programs busy on the
same cores slow the steps unevenly: time slopes are only as steady as the machine (the record
keeps the load average seen during the run), memory is exact.

Notebooks 02 and 03 time single layers with :func:`time_forward` (a compiled forward call,
medians after warm-up, spread) and phrase what they see with :func:`describe_growth`, computed
from the numbers; :func:`plot_timings` draws shipped and live curves side by side, each labelled.
"""

from __future__ import annotations

import json
import os
import statistics
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
import numpy as np
import tensorflow as tf

from eanet_course import layers, results as records, viz
from eanet_course.bench._memory import fresh_processes, peak_tensor_mb, use_pooling_allocator
from eanet_course.bench._report import machine
from eanet_course.bench._report import out_dir as out_dir_for
from eanet_course.paths import atomic_write

__all__ = ["FULL", "LAYERS", "QUICK", "Plan", "Timing", "describe_growth", "fit_slope",
           "fit_slopes", "layers_of", "load", "plot_timings", "ratios", "run", "slope_range", "summary",
           "time_call", "time_calls", "time_forward"]

#: The layers compared: the course's external and self-attention, and Keras' own attention.
LAYERS = ("external", "self", "keras_mha")

_DEVICE = "/CPU:0"


def _powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**k for k in range(lo.bit_length() - 1, hi.bit_length()))


@dataclass(frozen=True)
class Plan:
    """What to measure: the sizes N per layer, the repeats, and the shared layer shape.

    Each configuration is timed ``repeats`` times, and more until the timed steps add up to
    ``min_seconds`` (fast steps are the noisiest), in ``runs`` rounds over all configurations,
    each configuration in a fresh process every round. ``fit_from`` is the smallest N of the
    fitted slopes (small N measure overheads, not growth); when a layer has fewer than two
    sizes from there, its two largest sizes are used.
    """

    sizes: Mapping[str, tuple[int, ...]]
    repeats: int
    warmup: int = 2
    runs: int = 1
    min_seconds: float = 1.0
    batch_size: int = 2
    embed_dim: int = 64
    num_heads: int = 4
    fit_from: int = 1024

    def __post_init__(self) -> None:
        unknown = set(self.sizes) - set(LAYERS)
        if unknown:
            raise ValueError(f"Unknown layer(s) {sorted(unknown)}; choose among {LAYERS}.")
        for name, sizes in self.sizes.items():
            if not sizes or any(not isinstance(n, int) or n < 1 for n in sizes):
                raise ValueError(f"sizes[{name!r}]={sizes!r} must be positive integers N.")
            if len(set(sizes)) != len(sizes):
                raise ValueError(f"sizes[{name!r}]={sizes!r} repeats a size; list each N once.")
        for name in ("repeats", "warmup", "runs", "batch_size", "embed_dim", "num_heads",
                     "fit_from"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "warmup" else 1):
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if not isinstance(self.min_seconds, (int, float)) or self.min_seconds < 0:
            raise ValueError(f"min_seconds={self.min_seconds!r} must be a number >= 0.")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}."
            )


#: The issue's benchmark: N = 64 .. 4096 for every layer, up to 16384 for external attention;
#: every configuration in 3 rounds, the median of the rounds kept.
FULL = Plan(
    sizes={
        "external": _powers_of_two(64, 16384),
        "self": _powers_of_two(64, 4096),
        "keras_mha": _powers_of_two(64, 4096),
    },
    repeats=7,
    runs=3,
)

#: Under two minutes on two cores: fewer sizes, fewer repeats.
QUICK = Plan(
    sizes={"external": (256, 1024, 4096), "self": (256, 1024, 2048),
           "keras_mha": (256, 1024, 2048)},
    repeats=3,
    warmup=1,
    min_seconds=0.3,
)


def _make_layer(name: str, plan: Plan) -> keras.layers.Layer:
    if name == "external":
        return layers.ExternalAttention(plan.embed_dim, num_heads=plan.num_heads)
    if name == "self":
        return layers.SelfAttention(plan.embed_dim, num_heads=plan.num_heads)
    return keras.layers.MultiHeadAttention(plan.num_heads, key_dim=plan.embed_dim // plan.num_heads)


def _make_step(name: str, n: int, plan: Plan) -> tuple[tf.types.experimental.PolymorphicFunction,
                                                      tf.Tensor]:
    """A built layer's compiled forward + backward step, and its input ``(batch, N, embed_dim)``.

    The step returns the loss and the gradients with respect to the input and every weight,
    so nothing of the backward pass can be pruned away.
    """
    layer = _make_layer(name, plan)

    def forward(x: tf.Tensor) -> tf.Tensor:
        if name == "keras_mha":
            return layer(x, x, training=True)
        return layer(x, training=True)

    with tf.device(_DEVICE):
        x = tf.random.stateless_normal((plan.batch_size, n, plan.embed_dim), seed=(0, n))
        forward(x[:, :2])  # builds the weights on a tiny input

    @tf.function(jit_compile=False)
    def step(x: tf.Tensor) -> tuple[tf.Tensor, list[tf.Tensor]]:
        with tf.device(_DEVICE), tf.GradientTape() as tape:
            tape.watch(x)
            loss = keras.ops.mean(keras.ops.square(forward(x)))
        return loss, tape.gradient(loss, [x, *layer.trainable_variables])

    return step, x


@dataclass(frozen=True)
class Timing:
    """Milliseconds of repeated calls after warm-up: their median and spread (fastest, slowest)."""

    median_ms: float
    low_ms: float
    high_ms: float
    times_ms: tuple[float, ...]

    def __str__(self) -> str:
        return (f"{self.median_ms:.1f} ms (median of {len(self.times_ms)}, "
                f"{self.low_ms:.1f} to {self.high_ms:.1f})")


def time_calls(fns: Mapping[str, Callable[[], object]], *, repeats: int = 5, warmup: int = 1,
               min_seconds: float = 0.0) -> dict[str, Timing]:
    """Time several calls side by side: ``warmup`` untimed rounds, then ``repeats`` timed rounds
    (more until each call's timed runs add up to ``min_seconds``), every round calling each
    function once in turn, so that a change in the machine's load falls on all of them.

    Each :class:`Timing`'s ``times_ms`` are in round order: ``a.times_ms[k] / b.times_ms[k]`` is
    the ratio of round ``k``, measured side by side. Each function must return only once its
    work is done (a TensorFlow function on the CPU does; on a GPU, return something read back to
    the host, such as ``.numpy()`` of a sum).
    """
    if not isinstance(repeats, int) or repeats < 1 or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"timing needs repeats >= 1 and warmup >= 0, got repeats={repeats!r}, "
                         f"warmup={warmup!r}.")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    while (min(map(len, seconds.values())) < repeats
           or min(map(sum, seconds.values())) < min_seconds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    timings = {}
    for name, values in seconds.items():
        ms = tuple(1000 * value for value in values)
        timings[name] = Timing(statistics.median(ms), min(ms), max(ms), ms)
    return timings


def time_call(fn: Callable[..., object], *args: object, repeats: int = 5, warmup: int = 1,
              min_seconds: float = 0.0) -> Timing:
    """Time ``fn(*args)``: ``warmup`` calls left out, then ``repeats`` timed calls, and more until
    the timed ones add up to ``min_seconds`` (:func:`time_calls` of one function)."""
    return time_calls({"call": lambda: fn(*args)}, repeats=repeats, warmup=warmup,
                      min_seconds=min_seconds)["call"]


def _measure(name: str, n: int, plan: Plan) -> dict:
    """``{"time_ms", "steps_ms", "peak_mb"}`` of one forward + backward step; run it in a fresh
    process.

    The peak is what the first step's tensors add once the layer is built and the step traced;
    the time is the median of ``plan.repeats`` or more steps (see :class:`Plan`), all listed in
    ``steps_ms``, after ``plan.warmup`` more.
    """
    use_pooling_allocator()
    step, x = _make_step(name, n, plan)
    step.get_concrete_function(x)  # trace without running
    peak_mb = peak_tensor_mb(step, x)
    timing = time_call(step, x, repeats=plan.repeats, warmup=plan.warmup,
                       min_seconds=plan.min_seconds)
    return {"time_ms": timing.median_ms, "steps_ms": list(timing.times_ms), "peak_mb": peak_mb}


def time_forward(layers: Mapping[str, keras.layers.Layer], sizes: Mapping[str, Sequence[int]],
                 embed_dim: int, *, repeats: int = 5, warmup: int = 1,
                 fit_last: int = 3) -> dict:
    """Time one compiled forward call of each layer on a sequence ``(1, N, embed_dim)`` per N.

    The call is a ``tf.function``, traced once for any N (in the first warm-up), so the time is
    the layer's maths rather than Python's per-operation overhead in eager mode.

    Args:
        layers: ``{name: layer}``, e.g. ``{"self": SelfAttention(64)}``.
        sizes: ``{name: [N, ...]}`` for every layer.
        embed_dim: the width of the inputs.
        repeats, warmup: ``repeats`` timed calls after ``warmup`` untimed ones, per N.
        fit_last: the slopes are fitted on each layer's ``fit_last`` largest sizes (at small
            N a fixed cost per call hides the growth).

    Returns:
        ``{"rows", "slopes"}`` as :func:`run` gives them: one row per layer and N, ``{"layer",
        "N", "time_ms", "time_ms_low", "time_ms_high"}`` (the median, the fastest and the
        slowest call), and :func:`fit_slopes` of each layer; what :func:`describe_growth` and
        :func:`plot_timings` read.
    """
    if set(layers) != set(sizes):
        raise ValueError(f"time_forward needs sizes for exactly the layers given: layers "
                         f"{sorted(layers)}, sizes {sorted(sizes)}.")
    rows: list[dict] = []
    slopes: dict[str, dict] = {}
    for name, layer in layers.items():
        forward = tf.function(lambda x, layer=layer: tf.reduce_sum(layer(x)),
                              input_signature=[tf.TensorSpec((1, None, embed_dim))])
        mine = []
        for n in sizes[name]:
            x = keras.random.normal((1, n, embed_dim), seed=0)
            timing = time_call(lambda: forward(x).numpy(), repeats=repeats, warmup=warmup)
            mine.append({"layer": name, "N": n, "time_ms": timing.median_ms,
                         "time_ms_low": timing.low_ms, "time_ms_high": timing.high_ms})
        rows += mine
        ordered = sorted(sizes[name])
        slopes.update(fit_slopes(mine, ordered[-min(fit_last, len(ordered))]))
    return {"rows": rows, "slopes": slopes}


def layers_of(results: Mapping, *names: str) -> dict:
    """``results`` (of :func:`run`, or a record's ``data``) cut to the layers ``names``:
    ``{"rows", "slopes"}``, e.g. to plot the shipped self-attention beside a live one."""
    missing = set(names) - {r["layer"] for r in results["rows"]}
    if missing:
        raise ValueError(f"No rows of {sorted(missing)} in these results; they hold "
                         f"{sorted({r['layer'] for r in results['rows']})}.")
    return {"rows": [r for r in results["rows"] if r["layer"] in names],
            "slopes": {k: v for k, v in results["slopes"].items() if k in names}}


def fit_slope(ns: list[int] | np.ndarray, costs: list[float] | np.ndarray) -> float:
    """The exponent ``k`` of ``cost ~ N**k``: the slope of a line fitted to the log-log points."""
    ns, costs = np.asarray(ns, dtype=float), np.asarray(costs, dtype=float)
    if (np.unique(ns).size < 2 or not np.all(np.isfinite(ns) & (ns > 0))
            or not np.all(np.isfinite(costs) & (costs > 0))):
        raise ValueError("fit_slope needs at least two points, at two different N, with positive "
                         "finite N and cost.")
    return float(np.polyfit(np.log(ns), np.log(costs), 1)[0])


def slope_range(ns: Sequence[int], lows: Sequence[float],
                highs: Sequence[float]) -> tuple[float, float]:
    """The shallowest and the steepest slope :func:`fit_slope` can give with every cost anywhere
    between its ``lows`` and ``highs`` (e.g. the fastest and slowest of repeated runs).

    A least-squares slope adds up the log costs with weights of the sign of ``log N`` minus its
    mean: the steepest line takes the highest cost where that weight is positive and the lowest
    elsewhere, the shallowest the opposite.
    """
    x = np.log(np.asarray(ns, dtype=float))
    upper = x > x.mean()
    shallow = np.where(upper, lows, highs)
    steep = np.where(upper, highs, lows)
    return fit_slope(ns, shallow), fit_slope(ns, steep)


def _low(row: Mapping) -> float:
    return row.get("time_ms_low", row["time_ms"])


def _high(row: Mapping) -> float:
    return row.get("time_ms_high", row["time_ms"])


def _fitted(rows: Sequence[Mapping], layer: str, fit_from: int) -> list[Mapping]:
    """The rows of ``layer`` that its slopes are fitted on: N >= ``fit_from``, at least two."""
    mine = sorted((r for r in rows if r["layer"] == layer), key=lambda r: r["N"])
    if len(mine) < 2:
        return []
    lo = min(fit_from, mine[-2]["N"])
    return [r for r in mine if r["N"] >= lo]


def fit_slopes(rows: Sequence[Mapping], fit_from: int = 1) -> dict[str, dict]:
    """The log-log slopes of every layer in ``rows`` with two sizes or more, from N = ``fit_from``.

    Returns:
        ``{layer: {"time", "time_range", "time_runs", "memory", "range"}}``: ``time`` the
        slope of the medians, ``time_range`` ``[shallowest, steepest]``, :func:`slope_range` of
        the rows' spread, ``range`` ``[lo, hi]`` of the sizes fitted,
        ``time_runs`` the slope of each round where rows hold ``time_ms_runs`` of several
        rounds (else None), ``memory`` None where a row has no positive peak.
    """
    slopes = {}
    for name in dict.fromkeys(r["layer"] for r in rows):
        fitted = _fitted(rows, name, fit_from)
        if not fitted:
            continue
        ns = [r["N"] for r in fitted]
        peaks = [r.get("peak_mb") for r in fitted]
        memory_ok = all(p is not None and p > 0 for p in peaks)
        rounds = {len(r.get("time_ms_runs", ())) for r in fitted}
        per_run = None
        if len(rounds) == 1 and min(rounds) > 1:
            per_run = [fit_slope(ns, [r["time_ms_runs"][k] for r in fitted])
                       for k in range(min(rounds))]
        slopes[name] = {
            "time": fit_slope(ns, [r["time_ms"] for r in fitted]),
            "time_range": list(slope_range(ns, [_low(r) for r in fitted],
                                           [_high(r) for r in fitted])),
            "time_runs": per_run,
            "memory": fit_slope(ns, peaks) if memory_ok else None,
            "range": [ns[0], ns[-1]],
        }
    return slopes


def _shape(slope: float) -> str:
    for bound, words in ((0.8, "less than linear"), (1.2, "about linear"),
                         (1.8, "between linear and quadratic"), (2.2, "about quadratic")):
        if slope < bound:
            return words
    return "steeper than quadratic"


def describe_growth(results: Mapping, layer: str) -> str:
    """One sentence on how ``layer``'s time grows with N, every word computed from ``results``.

    Over the sizes its slope was fitted on (``results["slopes"][layer]["range"]``): the median
    times at both ends, whether the time grows at all (the fastest run at the largest N is
    slower than the slowest at the smallest), and, if it does, the fitted slope, the range of
    slopes the spread allows (:func:`slope_range`) and the growth they name (about linear: 0.8
    to 1.2; about quadratic: 1.8 to 2.2).
    """
    fitted_range = results.get("slopes", {}).get(layer, {}).get("range")
    if fitted_range is None:
        raise ValueError(f"describe_growth needs a fitted slope of {layer!r} (rows at two "
                         "different N or more).")
    lo_n, hi_n = fitted_range
    fitted = sorted((r for r in results["rows"] if r["layer"] == layer and lo_n <= r["N"] <= hi_n),
                    key=lambda r: r["N"])
    first, last = fitted[0], fitted[-1]
    said = (f"{layer}: from N = {first['N']:,} to {last['N']:,} "
            f"({last['N'] / first['N']:.0f}x the patches) the median time went from "
            f"{first['time_ms']:.2f} to {last['time_ms']:.2f} ms "
            f"({last['time_ms'] / first['time_ms']:.1f}x)")
    if _low(last) <= _high(first):
        return (f"{said}; the spreads overlap (slowest at N = {first['N']:,}: "
                f"{_high(first):.2f} ms, fastest at N = {last['N']:,}: {_low(last):.2f} ms), "
                "so these runs do not show the time growing.")
    ns = [r["N"] for r in fitted]
    slope = fit_slope(ns, [r["time_ms"] for r in fitted])
    lo, hi = slope_range(ns, [_low(r) for r in fitted], [_high(r) for r in fitted])
    shape = (_shape(lo) if _shape(lo) == _shape(hi)
             else f"anything from {_shape(lo)} to {_shape(hi)}")
    return (f"{said}: it grows, with a fitted slope of {slope:.2f} over {len(ns)} sizes "
            f"({lo:.2f} to {hi:.2f} within the spread of the runs): {shape}.")


def plot_timings(panels: Mapping[str, Mapping], *, metric: str = "time") -> Figure:
    """Time (or peak memory) against N, one panel per measurement, each titled with its label.

    Args:
        panels: ``{label: results}``, each ``results`` with ``"rows"`` (as :func:`run` or
            :func:`time_forward` give them) and ``"slopes"`` (:func:`fit_slopes`); a label such
            as :func:`eanet_course.results.label`'s line says whose measurement it is.
        metric: ``"time"`` (the median, its bar the spread from fastest to slowest) or
            ``"memory"`` (the peak, exact: no bar).

    The legend gives each layer's fitted slope and the range of N it was fitted over.
    """
    if not panels:
        raise ValueError("plot_timings needs at least one {label: results} panel.")
    if metric not in ("time", "memory"):
        raise ValueError(f"metric={metric!r}: use 'time' or 'memory'.")
    key, ylabel = ("time_ms", "time (ms)") if metric == "time" else ("peak_mb", "peak memory (MB)")
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, (label, found) in zip(axes[0], panels.items()):
        rows, slopes = found["rows"], found.get("slopes", {})
        for layer in dict.fromkeys(r["layer"] for r in rows):
            mine = sorted((r for r in rows if r["layer"] == layer and r.get(key) is not None),
                          key=lambda r: r["N"])
            if not mine:
                continue
            ns = [r["N"] for r in mine]
            values = np.array([r[key] for r in mine])
            bars = None if metric == "memory" else [
                values - [_low(r) for r in mine], [_high(r) for r in mine] - values]
            fitted = slopes.get(layer, {})
            legend = layer if fitted.get(metric) is None else (
                f"{layer}: slope {fitted[metric]:.2f} over N in "
                f"[{fitted['range'][0]}, {fitted['range'][1]}]")
            ax.errorbar(ns, values, yerr=bars, marker="o", capsize=3, label=legend)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted({r["N"] for r in rows})
        ax.set_xticks(sizes, [str(n) for n in sizes], rotation=45 * (len(sizes) > 6))
        ax.minorticks_off()
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("N (patches)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        ax.set_title(textwrap.fill(label, 60), fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _row(name: str, n: int, measured: list[dict]) -> dict:
    """One configuration's row from its rounds: the median of the rounds' medians, and as the
    spread their lowest and highest (with one round: the fastest and slowest step)."""
    medians = [m["time_ms"] for m in measured]
    spread = medians if len(measured) > 1 else measured[0]["steps_ms"]
    return {"layer": name, "N": n, "time_ms": statistics.median(medians),
            "time_ms_low": min(spread), "time_ms_high": max(spread), "time_ms_runs": medians,
            "peak_mb": statistics.median(m["peak_mb"] for m in measured)}


def run(
    quick: bool = False, out_dir: str | Path | None = None, *, plan: Plan | None = None,
    save: bool = False, ship: bool = False,
) -> dict:
    """Measure, print progress and a table, save ``attention.json`` and ``attention.png``.

    Args:
        quick: the :data:`QUICK` plan (under two minutes on two cores) instead of :data:`FULL`.
        out_dir: where the files go; default ``eanet_home() / "bench"``.
        plan: measure this :class:`Plan` instead (``quick`` is then only recorded).
        save: also write the record ``attention`` (:func:`eanet_course.results.save`) to
            ``$EANET_HOME/results`` (the CLI's ``--save``).
        ship: write the record into the package instead (``--ship``, for maintainers).

    It starts processes: from a script of your own, call it under ``if __name__ == "__main__":``.

    Returns:
        ``{"machine", "quick", "embed_dim", "batch_size", "num_heads", "repeats", "warmup",
        "runs", "spread", "load_average", "rows", "slopes"}``; ``rows`` holds one ``{"layer",
        "N", "time_ms", "time_ms_low", "time_ms_high", "time_ms_runs", "peak_mb"}`` per
        configuration (``spread`` says what low and high are), ``slopes`` is
        :func:`fit_slopes` from ``plan.fit_from`` and ``load_average`` the 1-minute load average
        before each measurement (``{"min", "median", "max"}``: other programs on the machine).
    """
    if plan is None:
        plan, label = (QUICK, "quick") if quick else (FULL, "full")
    elif isinstance(plan, Plan):
        label = "custom plan"
    else:
        raise TypeError(f"plan must be an eanet_course.bench.attention.Plan, "
                        f"not {type(plan).__name__}.")
    out = out_dir_for(out_dir)
    started = time.perf_counter()
    configs = [(name, n) for name in LAYERS for n in plan.sizes.get(name, ())]
    rounds = f" in {plan.runs} rounds" if plan.runs > 1 else ""
    print(f"Attention benchmark ({label}): {len(configs)} configurations{rounds}, "
          f"forward + backward, batch {plan.batch_size}, width {plan.embed_dim}, "
          f"{plan.num_heads} heads, median of {plan.repeats}+ steps.", flush=True)
    measured: dict[tuple[str, int], list[dict]] = {config: [] for config in configs}
    loads = []
    total = len(configs) * plan.runs
    with fresh_processes(["tensorflow", "keras", "eanet_course.bench.attention"]) as call:
        for round_ in range(plan.runs):
            for i, (name, n) in enumerate(configs, 1 + round_ * len(configs)):
                loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
                found = call(_measure, name, n, plan)
                measured[name, n].append(found)
                print(f"[{i:>2}/{total}] {name:<9} N={n:>5}  {found['time_ms']:9.2f} ms  "
                      f"{found['peak_mb']:8.1f} MB", flush=True)
    rows = [_row(name, n, measured[name, n]) for name, n in configs]
    results = {
        "machine": machine(), "quick": quick, "embed_dim": plan.embed_dim,
        "batch_size": plan.batch_size, "num_heads": plan.num_heads, "repeats": plan.repeats,
        "warmup": plan.warmup, "runs": plan.runs,
        "spread": (f"lowest and highest of the {plan.runs} rounds' medians" if plan.runs > 1
                   else "fastest and slowest timed step"),
        "load_average": {"min": min(loads), "median": statistics.median(loads),
                         "max": max(loads)},
        "rows": rows, "slopes": fit_slopes(rows, plan.fit_from),
    }
    print(summary(results), flush=True)
    with atomic_write(out / "attention.json") as file:
        json.dump(results, file, indent=2)
    figure = viz.plot_scaling(results)
    figure.savefig(out / "attention.png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"Saved {out / 'attention.json'} and {out / 'attention.png'}", flush=True)
    if save or ship:
        command = (f"python -m eanet_course bench attention{' --quick' * quick}"
                   if label != "custom plan" else f"eanet_course.bench.attention.run(plan={plan})")
        path = records.save("attention", results, command=command,
                            wall_time_s=time.perf_counter() - started, ship=ship)
        print(f"Saved the record {path}", flush=True)
    return results


def load(out_dir: str | Path | None = None) -> dict | None:
    """The results saved by the last :func:`run` in ``out_dir`` (default as ``run``), or None."""
    path = out_dir_for(out_dir) / "attention.json"
    return json.loads(path.read_text()) if path.exists() else None


def ratios(results: dict, baseline: str = "self") -> dict[int, dict[str, float | None]]:
    """How many times more ``baseline`` costs than external attention, at every N both measured.

    Returns ``{N: {"time": t_baseline / t_external, "time_range": [low, high],
    "memory": m_baseline / m_external}}``; a ratio below 1 means the baseline is the cheaper one
    there, and None means a cost is missing or external attention's is 0 (no ratio to give).
    ``time_range`` is the ratio the spreads allow, from the baseline's fastest over external
    attention's slowest to the baseline's slowest over external attention's fastest.
    """
    if baseline not in LAYERS or baseline == "external":
        raise ValueError(f"baseline={baseline!r} must be one of {LAYERS[1:]}.")
    by_key = {(r["layer"], r["N"]): r for r in results["rows"]}
    out = {}
    for (name, n), base in sorted(by_key.items(), key=lambda item: item[0][1]):
        ext = by_key.get(("external", n))
        if name != baseline or ext is None:
            continue
        low, high = _ratio(_low(base), _high(ext)), _ratio(_high(base), _low(ext))
        out[n] = {"time": _ratio(base["time_ms"], ext["time_ms"]),
                  "time_range": None if low is None or high is None else [low, high],
                  "memory": _ratio(base["peak_mb"], ext["peak_mb"])}
    return out


def _ratio(cost: float | None, external: float | None) -> float | None:
    """``cost / external``, or None when either is missing or ``external`` is not positive."""
    return cost / external if cost is not None and external is not None and external > 0 else None


def _cell(value: float | None, width: int, fmt: str) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def summary(results: dict) -> str:
    """The results as text: a table by N, the fitted slopes, and the ratios at the largest N."""
    present = [name for name in LAYERS if any(r["layer"] == name for r in results["rows"])]
    by_key = {(r["layer"], r["N"]): r for r in results["rows"]}
    header = f"{'N':>6} " + "".join(f"{name + ' ms':>14}" for name in present) \
        + "".join(f"{name + ' MB':>14}" for name in present)
    lines = [f"Forward + backward, batch {results['batch_size']}, width {results['embed_dim']}, "
             f"{results['num_heads']} heads; {results['machine']}", header]
    for n in sorted({r["N"] for r in results["rows"]}):
        cells = [by_key.get((name, n)) for name in present]
        lines.append(f"{n:>6} "
                     + "".join(_cell(c and c["time_ms"], 14, ".2f") for c in cells)
                     + "".join(_cell(c and c["peak_mb"], 14, ".1f") for c in cells))
    if results.get("spread"):
        lines.append(f"Times are medians; spread: {results['spread']}.")
    if results.get("load_average"):
        load = results["load_average"]
        lines.append(f"1-minute load average during the run (other programs included): "
                     f"{load['min']:.1f} to {load['max']:.1f}, median {load['median']:.1f}.")
    lines.append("Fitted log-log slopes (cost ~ N^slope):")
    for name, s in results["slopes"].items():
        memory = "-" if s["memory"] is None else f"{s['memory']:.2f}"
        spread = ("" if s.get("time_range") is None
                  else f" ({s['time_range'][0]:.2f} to {s['time_range'][1]:.2f} in the spread)")
        lines.append(f"  {name:<9} time {s['time']:.2f}{spread}  memory {memory:>5}  "
                     f"over N in [{s['range'][0]}, {s['range'][1]}]")
    if "self" in present and "external" in present and ratios(results):
        n, ratio = max(ratios(results).items())
        time_, memory = ("-" if ratio[key] is None else f"{ratio[key]:.1f}x"
                         for key in ("time", "memory"))
        lines.append(f"At N = {n}: self-attention takes {time_} the time and "
                     f"{memory} the peak memory of external attention.")
    return "\n".join(lines)
