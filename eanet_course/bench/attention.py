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
  ``repeats`` timed runs.
* **Slopes**: a line fitted to ``log(cost)`` against ``log(N)``; ~1 is linear, ~2 quadratic.

Run it with ``python -m eanet_course bench attention [--quick] [--out DIR]``. Everything runs on
the CPU (a GPU, if there is one, is left alone). Other programs busy on the same cores slow the
steps unevenly: time slopes are only as steady as the machine, memory is exact.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from eanet_course import layers, viz
from eanet_course.bench._memory import fresh_processes, peak_tensor_mb, use_pooling_allocator
from eanet_course.bench._report import machine
from eanet_course.bench._report import out_dir as out_dir_for
from eanet_course.paths import atomic_write

__all__ = ["FULL", "LAYERS", "QUICK", "Plan", "fit_slope", "load", "ratios", "run", "summary"]

#: The layers compared: the course's external and self-attention, and Keras' own attention.
LAYERS = ("external", "self", "keras_mha")

_DEVICE = "/CPU:0"


def _powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    return tuple(2**k for k in range(lo.bit_length() - 1, hi.bit_length()))


@dataclass(frozen=True)
class Plan:
    """What to measure: the sizes N per layer, the repeats, and the shared layer shape.

    Each configuration is timed ``repeats`` times, and more until the timed steps add up to
    ``min_seconds`` (fast steps are the noisiest). ``fit_from`` is the smallest N of the fitted
    slopes (small N measure overheads, not growth); when a layer has fewer than two sizes from
    there, its two largest sizes are used.
    """

    sizes: Mapping[str, tuple[int, ...]]
    repeats: int
    warmup: int = 2
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
        for name in ("repeats", "warmup", "batch_size", "embed_dim", "num_heads", "fit_from"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "warmup" else 1):
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if not isinstance(self.min_seconds, (int, float)) or self.min_seconds < 0:
            raise ValueError(f"min_seconds={self.min_seconds!r} must be a number >= 0.")
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}."
            )


#: The issue's benchmark: N = 64 .. 4096 for every layer, up to 16384 for external attention.
FULL = Plan(
    sizes={
        "external": _powers_of_two(64, 16384),
        "self": _powers_of_two(64, 4096),
        "keras_mha": _powers_of_two(64, 4096),
    },
    repeats=7,
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


def _measure(name: str, n: int, plan: Plan) -> dict[str, float]:
    """``{"time_ms", "peak_mb"}`` of one forward + backward step; run it in a fresh process.

    The peak is what the first step's tensors add once the layer is built and the step traced;
    the time is the median of ``plan.repeats`` or more steps (see :class:`Plan`) after
    ``plan.warmup`` more.
    """
    use_pooling_allocator()
    step, x = _make_step(name, n, plan)
    step.get_concrete_function(x)  # trace without running
    peak_mb = peak_tensor_mb(step, x)
    for _ in range(plan.warmup):
        step(x)
    times = []
    while len(times) < plan.repeats or sum(times) < plan.min_seconds:
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    return {"time_ms": 1000 * statistics.median(times), "peak_mb": peak_mb}


def fit_slope(ns: list[int] | np.ndarray, costs: list[float] | np.ndarray) -> float:
    """The exponent ``k`` of ``cost ~ N**k``: the slope of a line fitted to the log-log points."""
    ns, costs = np.asarray(ns, dtype=float), np.asarray(costs, dtype=float)
    if (np.unique(ns).size < 2 or not np.all(np.isfinite(ns) & (ns > 0))
            or not np.all(np.isfinite(costs) & (costs > 0))):
        raise ValueError("fit_slope needs at least two points, at two different N, with positive "
                         "finite N and cost.")
    return float(np.polyfit(np.log(ns), np.log(costs), 1)[0])


def _slopes(rows: list[dict], fit_from: int) -> dict[str, dict]:
    slopes = {}
    for name in LAYERS:
        mine = sorted((r for r in rows if r["layer"] == name), key=lambda r: r["N"])
        if len(mine) < 2:
            continue
        lo = min(fit_from, mine[-2]["N"])
        fitted = [r for r in mine if r["N"] >= lo]
        ns = [r["N"] for r in fitted]
        peaks = [r["peak_mb"] for r in fitted]
        memory_ok = all(p is not None and p > 0 for p in peaks)
        slopes[name] = {
            "time": fit_slope(ns, [r["time_ms"] for r in fitted]),
            "memory": fit_slope(ns, peaks) if memory_ok else None,
            "range": [ns[0], ns[-1]],
        }
    return slopes


def run(
    quick: bool = False, out_dir: str | Path | None = None, *, plan: Plan | None = None
) -> dict:
    """Measure, print progress and a table, save ``attention.json`` and ``attention.png``.

    Args:
        quick: the :data:`QUICK` plan (under two minutes on two cores) instead of :data:`FULL`.
        out_dir: where the files go; default ``eanet_home() / "bench"``.
        plan: measure this :class:`Plan` instead (``quick`` is then only recorded).

    It starts processes: from a script of your own, call it under ``if __name__ == "__main__":``.

    Returns:
        ``{"machine", "quick", "embed_dim", "batch_size", "num_heads", "rows", "slopes"}``;
        ``rows`` holds one ``{"layer", "N", "time_ms", "peak_mb"}`` per configuration and
        ``slopes[layer]`` the fitted ``{"time", "memory", "range": [lo, hi]}``.
    """
    if plan is None:
        plan, label = (QUICK, "quick") if quick else (FULL, "full")
    elif isinstance(plan, Plan):
        label = "custom plan"
    else:
        raise TypeError(f"plan must be an eanet_course.bench.attention.Plan, "
                        f"not {type(plan).__name__}.")
    out = out_dir_for(out_dir)
    configs = [(name, n) for name in LAYERS for n in plan.sizes.get(name, ())]
    print(f"Attention benchmark ({label}): {len(configs)} configurations, "
          f"forward + backward, batch {plan.batch_size}, width {plan.embed_dim}, "
          f"{plan.num_heads} heads, median of {plan.repeats}+ steps.", flush=True)
    rows = []
    with fresh_processes(["tensorflow", "keras", "eanet_course.bench.attention"]) as call:
        for i, (name, n) in enumerate(configs, 1):
            row = {"layer": name, "N": n, **call(_measure, name, n, plan)}
            rows.append(row)
            print(f"[{i:>2}/{len(configs)}] {name:<9} N={n:>5}  {row['time_ms']:9.2f} ms  "
                  f"{row['peak_mb']:8.1f} MB", flush=True)
    results = {
        "machine": machine(), "quick": quick, "embed_dim": plan.embed_dim,
        "batch_size": plan.batch_size, "num_heads": plan.num_heads,
        "rows": rows, "slopes": _slopes(rows, plan.fit_from),
    }
    print(summary(results), flush=True)
    with atomic_write(out / "attention.json") as file:
        json.dump(results, file, indent=2)
    figure = viz.plot_scaling(results)
    figure.savefig(out / "attention.png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"Saved {out / 'attention.json'} and {out / 'attention.png'}", flush=True)
    return results


def load(out_dir: str | Path | None = None) -> dict | None:
    """The results saved by the last :func:`run` in ``out_dir`` (default as ``run``), or None."""
    path = out_dir_for(out_dir) / "attention.json"
    return json.loads(path.read_text()) if path.exists() else None


def ratios(results: dict, baseline: str = "self") -> dict[int, dict[str, float | None]]:
    """How many times more ``baseline`` costs than external attention, at every N both measured.

    Returns ``{N: {"time": t_baseline / t_external, "memory": m_baseline / m_external}}``;
    a ratio below 1 means the baseline is the cheaper one there, and None means a cost is
    missing or external attention's is 0 (no ratio to give).
    """
    if baseline not in LAYERS or baseline == "external":
        raise ValueError(f"baseline={baseline!r} must be one of {LAYERS[1:]}.")
    by_key = {(r["layer"], r["N"]): r for r in results["rows"]}
    out = {}
    for (name, n), base in sorted(by_key.items(), key=lambda item: item[0][1]):
        ext = by_key.get(("external", n))
        if name != baseline or ext is None:
            continue
        out[n] = {"time": _ratio(base["time_ms"], ext["time_ms"]),
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
    lines.append("Fitted log-log slopes (cost ~ N^slope):")
    for name, s in results["slopes"].items():
        memory = "-" if s["memory"] is None else f"{s['memory']:.2f}"
        lines.append(f"  {name:<9} time {s['time']:.2f}  memory {memory:>5}  "
                     f"over N in [{s['range'][0]}, {s['range'][1]}]")
    if "self" in present and "external" in present and ratios(results):
        n, ratio = max(ratios(results).items())
        time_, memory = ("-" if ratio[key] is None else f"{ratio[key]:.1f}x"
                         for key in ("time", "memory"))
        lines.append(f"At N = {n}: self-attention takes {time_} the time and "
                     f"{memory} the peak memory of external attention.")
    return "\n".join(lines)
