"""Where does external attention's global channel run out? A map against self-attention.

Inside one external-attention layer the only path between patches is the softmax over N: each
memory unit's column is normalized over all patches of the image, so a patch's output depends on
the others through ``S`` sums per head. With a plain softmax over S (``normalization="softmax"``)
that path is gone and the only global step left in the model is its final average pooling.
Self-attention lets every pair of patches meet.

This benchmark trains small models of the three kinds on the digit-tile tasks of
:mod:`eanet_course.tasks` (``count``, ``repeat``, ``lookup``, ``relation``) over a few grid sizes
``N`` and memory sizes ``S``, three seeds each, and reports test accuracy:

* ``external``: EANet blocks, double normalization, ``S`` memory units per head;
* ``external_softmax``: the same blocks with a plain softmax over S;
* ``self``: the same skeleton with self-attention (standard heads, ``key_dim = d / heads``).
  Self-attention has no ``S``: its runs are made once per task and ``N`` and shown on every ``S``
  row of that task and ``N``.

Every model has the same skeleton (patch embedding with learned positions, pre-norm blocks,
average pooling, linear classifier; :func:`eanet_course.models.build_eanet` and
:func:`~eanet_course.models.build_vit`) and the same data, optimizer and budget for a given seed.
Run it with ``python -m eanet_course bench limits [--quick] [--out DIR]``; it writes
``limits.json``, ``limits.txt`` and ``limits.png``. Accuracies are measured, never tuned: the
tasks and the budget were fixed before the numbers came in.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import matplotlib.pyplot as plt

from eanet_course.config import EANetConfig
from eanet_course.bench._report import out_dir as out_dir_for
from eanet_course.paths import atomic_write
from eanet_course.tasks import TASKS, TILE, TaskData, make_task

__all__ = ["FULL", "MODELS", "QUICK", "Plan", "gaps", "load", "plot", "run", "summary", "sweep"]

#: The three models compared, in the order of the json and the table.
MODELS = ("external", "external_softmax", "self")


@dataclass(frozen=True)
class Plan:
    """What to train: tasks and their grid sizes, memory sizes, seeds, data and model budget.

    ``grids`` maps each task to the grid sides ``g`` (``N = g * g``) it runs at. Every
    ``(task, g, seed)`` gets its own data (``train_size`` and ``test_size`` images); every model
    of that triple sees the same data in the same order.
    """

    grids: Mapping[str, tuple[int, ...]]
    memory_units: tuple[int, ...] = (4, 16, 64)
    seeds: tuple[int, ...] = (0, 1, 2)
    train_size: int = 4096
    test_size: int = 1000
    epochs: int = 20
    batch_size: int = 64
    embed_dim: int = 32
    mlp_dim: int = 64
    num_heads: int = 2
    dim_coefficient: int = 2
    num_blocks: int = 2
    learning_rate: float = 3e-3
    weight_decay: float = 0.01
    models: tuple[str, ...] = field(default=MODELS)

    def __post_init__(self) -> None:
        if not self.grids:
            raise ValueError("grids is empty; give at least one task, e.g. {'repeat': (3,)}.")
        for task, grids in self.grids.items():
            if task not in TASKS:
                raise ValueError(f"Unknown task {task!r}; choose among {sorted(TASKS)}.")
            if not grids or len(set(grids)) != len(grids):
                raise ValueError(f"grids[{task!r}]={grids!r} must list each grid side once.")
            for g in grids:
                limit = TASKS[task].max_patches
                if not isinstance(g, int) or g < 2 or (limit is not None and g * g > limit):
                    raise ValueError(f"grids[{task!r}] holds {g!r}: sides are integers >= 2"
                                     + (f" with g*g <= {limit}" if limit else "") + ".")
        unknown = set(self.models) - set(MODELS)
        if unknown or not self.models:
            raise ValueError(f"models={self.models!r}; choose some of {MODELS}.")
        for name in ("memory_units", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values) or not all(
                    isinstance(v, int) and v >= (0 if name == "seeds" else 1) for v in values):
                raise ValueError(f"{name}={values!r} must be distinct "
                                 + ("integers >= 0." if name == "seeds" else "integers >= 1."))
        for name in ("train_size", "test_size", "epochs", "batch_size", "num_blocks"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r} must be a positive integer.")
        if self.train_size % self.batch_size:
            raise ValueError(f"train_size={self.train_size} is not a multiple of batch_size="
                             f"{self.batch_size}; a last, smaller batch would trace the training "
                             "step twice. Round train_size to a multiple.")
        self.config(2, 2, 4, "external", "double")  # the model fields are EANetConfig's checks

    def config(self, grid: int, num_classes: int, memory_units: int, model: str,
               normalization: str) -> EANetConfig:
        """The :class:`EANetConfig` of one model: one 8x8 tile per patch, two channels."""
        return EANetConfig(
            dataset="digits", image_size=grid * TILE, channels=2, patch_size=TILE,
            num_classes=num_classes, embed_dim=self.embed_dim, mlp_dim=self.mlp_dim,
            num_heads=self.num_heads, dim_coefficient=self.dim_coefficient,
            memory_units=memory_units if model != "self" else None,
            attention_normalization=normalization, num_blocks=self.num_blocks,
            attention_dropout=0.0, projection_dropout=0.0, mlp_dropout=0.0,
            batch_size=self.batch_size, epochs=self.epochs, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, label_smoothing=0.0, seed=0,
        )

    @classmethod
    def for_profile(cls, config: EANetConfig, grids: Mapping[str, tuple[int, ...]],
                    batches: int = 16) -> "Plan":
        """A one-seed plan with a profile's model and budget: its width, heads, blocks,
        optimizer, batch size and epochs, ``batches`` batches of training images per epoch, and
        its memory size (``S`` per head) as the only ``S``.
        """
        return cls(grids=grids, seeds=(config.seed,),
                   memory_units=(config.memory_units or config.embed_dim // config.dim_coefficient,),
                   train_size=batches * config.batch_size, test_size=512, epochs=config.epochs,
                   batch_size=config.batch_size, embed_dim=config.embed_dim,
                   mlp_dim=config.mlp_dim, num_heads=config.num_heads,
                   dim_coefficient=config.dim_coefficient, num_blocks=config.num_blocks,
                   learning_rate=config.learning_rate, weight_decay=config.weight_decay)

    @property
    def trainings(self) -> int:
        """How many models the plan trains."""
        per_row = sum(len(self.memory_units) if m != "self" else 1 for m in self.models)
        return sum(len(g) for g in self.grids.values()) * per_row * len(self.seeds)


#: The map: every task at every grid it accepts up to N = 16, S in {4, 16, 64}, three seeds.
FULL = Plan(grids={"count": (2, 3, 4), "repeat": (2, 3), "lookup": (2, 3),
                   "relation": (2, 3, 4)})

#: Under 150 s on two idle cores: the relation task at N = 4, S = 16, three seeds, a small budget.
QUICK = Plan(grids={"relation": (2,)}, memory_units=(16,), train_size=2048, test_size=512,
             epochs=8)


def _build(plan: Plan, data: TaskData, model: str, memory_units: int) -> keras.Model:
    from eanet_course.models import build_eanet, build_vit

    normalization = "softmax" if model == "external_softmax" else "double"
    config = plan.config(data.grid, data.task.num_classes, memory_units, model, normalization)
    if model == "self":
        return build_vit(config, key_dim=plan.embed_dim // plan.num_heads)
    return build_eanet(config)


@contextlib.contextmanager
def _fast_tracing() -> Iterator[None]:
    """Skip TensorFlow's graph optimizer (grappler) while small models are traced, then restore.

    On these tiny models the optimizer costs seconds per model and saves little per step.
    """
    import tensorflow as tf

    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def _train(plan: Plan, data: TaskData, model: str, memory_units: int, seed: int) -> float:
    """Test accuracy of one model trained from scratch with ``seed`` (weights, batch order)."""
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    net = _build(plan, data, model, memory_units)
    net.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=plan.learning_rate,
                                         weight_decay=plan.weight_decay),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"], jit_compile=False)
    net.fit(data.x_train, data.y_train, batch_size=plan.batch_size, epochs=plan.epochs,
            shuffle=True, verbose=0)
    return float(net.evaluate(data.x_test, data.y_test, batch_size=len(data.y_test), verbose=0,
                              return_dict=True)["accuracy"])


def sweep(plan: Plan, progress: Callable[[str], None] | None = print) -> dict:
    """Train every model of ``plan``; return ``{"tasks": [row, ...]}`` (no files written).

    Each row is ``{"task", "N", "S", "chance", "external": {"accuracy": [...]},
    "external_softmax": {...}, "self": {...}}`` with one accuracy per seed, in seed order; only
    the plan's models appear. ``progress`` gets one line per trained model (None: silent).
    """
    rows: list[dict] = []
    with _fast_tracing():
        _sweep(plan, progress, rows)
    return {"tasks": rows}


def _sweep(plan: Plan, progress: Callable[[str], None] | None, rows: list[dict]) -> None:
    done, start = 0, time.perf_counter()
    for task, grids in plan.grids.items():
        for grid in grids:
            accuracy: dict[tuple[str, int], list[float]] = {}
            for seed in plan.seeds:
                data = make_task(task, grid, plan.train_size, plan.test_size, seed=seed)
                for model in plan.models:
                    for s in (plan.memory_units if model != "self" else (0,)):
                        acc = _train(plan, data, model, s, seed)
                        accuracy.setdefault((model, s), []).append(acc)
                        done += 1
                        if progress:
                            where = "" if model == "self" else f" S={s}"
                            progress(f"[{done:>3}/{plan.trainings}] {task:<8} N={grid * grid:<2}"
                                     f" {model:<16}{where:<5} seed {seed}: accuracy {acc:.3f}"
                                     f"  ({time.perf_counter() - start:.0f} s)")
            for s in plan.memory_units:
                row = {"task": task, "N": grid * grid, "S": s, "chance": TASKS[task].chance}
                for model in plan.models:
                    row[model] = {"accuracy": accuracy[(model, 0 if model == "self" else s)]}
                rows.append(row)


def gaps(results: dict, threshold: float = 0.15) -> list[dict]:
    """Rows where external attention and self-attention differ by ``threshold`` or more.

    Compares the mean accuracies over seeds; returns ``{"task", "N", "S", "external", "self",
    "difference"}`` (``external - self``), largest difference in size first.
    """
    found = []
    for row in results["tasks"]:
        if "external" not in row or "self" not in row:
            continue
        ext, self_ = (statistics.fmean(row[m]["accuracy"]) for m in ("external", "self"))
        if abs(ext - self_) >= threshold:
            found.append({"task": row["task"], "N": row["N"], "S": row["S"], "external": ext,
                          "self": self_, "difference": ext - self_})
    return sorted(found, key=lambda g: -abs(g["difference"]))


def _cell(accuracies: list[float]) -> str:
    mean = statistics.fmean(accuracies)
    spread = statistics.pstdev(accuracies) if len(accuracies) > 1 else 0.0
    return f"{mean:.3f} ± {spread:.3f}"


def summary(results: dict) -> str:
    """The results as a text table: mean ± standard deviation over seeds, and the large gaps."""
    models = [m for m in MODELS if any(m in row for row in results["tasks"])]
    lines = ["Test accuracy, mean ± std over seeds (self-attention has no S: same runs on each "
             "S row)",
             f"{'task':<9}{'N':>3}{'S':>4}{'chance':>8}" + "".join(f"{m:>18}" for m in models)]
    for row in results["tasks"]:
        lines.append(f"{row['task']:<9}{row['N']:>3}{row['S']:>4}{row['chance']:>8.2f}"
                     + "".join(f"{_cell(row[m]['accuracy']):>18}" for m in models))
    found = gaps(results)
    if "external" in models and "self" in models:
        lines.append("Rows where external and self-attention differ by 15 points or more: "
                     + (", ".join(f"{g['task']} N={g['N']} S={g['S']} ({g['difference']:+.3f})"
                                  for g in found) or "none."))
    return "\n".join(lines)


def plot(results: dict) -> plt.Figure:
    """One panel per task: accuracy against N (mean, bars: std over seeds), a line per model and
    S, chance dashed."""
    tasks = list(dict.fromkeys(row["task"] for row in results["tasks"]))
    all_s = sorted({row["S"] for row in results["tasks"]})
    lines = [(m, s) for m in MODELS for s in (all_s if m != "self" else [None])]
    colours = {line: f"C{i % 10}" for i, line in enumerate(lines)}  # the same in every panel
    figure, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = sorted((r for r in results["tasks"] if r["task"] == task), key=lambda r: r["N"])
        for model, style in zip(MODELS, ("-o", "--s", ":^")):
            if model not in rows[0]:
                continue
            # self-attention's runs are the same on every S row: one line, from any row
            for s in sorted({r["S"] for r in rows}) if model != "self" else [None]:
                runs = {r["N"]: r[model]["accuracy"] for r in rows if s in (None, r["S"])}
                label = model if s is None else f"{model} S={s}"
                ax.errorbar(list(runs), [statistics.fmean(a) for a in runs.values()], fmt=style,
                            yerr=[statistics.pstdev(a) for a in runs.values()], capsize=3,
                            color=colours[(model, s)], label=label, alpha=0.85)
        ax.axhline(rows[0]["chance"], color="grey", linestyle="--", linewidth=1, label="chance")
        ax.set(title=task, xlabel="N (patches)", ylabel="test accuracy", ylim=(0, 1.02),
               xticks=sorted({r["N"] for r in rows}))
    legend = {}
    for ax in axes[0]:
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    axes[0][-1].legend(legend.values(), legend.keys(), fontsize=7, loc="center left",
                       bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    return figure


def run(quick: bool = False, out_dir: str | Path | None = None, *,
        plan: Plan | None = None) -> dict:
    """Train the map, print progress and the table, save ``limits.json/.txt/.png``.

    Args:
        quick: the :data:`QUICK` plan (under 150 s on two cores) instead of :data:`FULL`.
        out_dir: where the files go; default ``eanet_home() / "bench"``.
        plan: train this :class:`Plan` instead (``quick`` is then only recorded).

    Returns:
        ``{"quick", "plan", "wall_time_s", "tasks": [...]}``, ``tasks`` as :func:`sweep`.
    """
    if plan is not None and not isinstance(plan, Plan):
        raise TypeError(f"plan must be an eanet_course.bench.limits.Plan, "
                        f"not {type(plan).__name__}.")
    label = "custom plan" if plan is not None else "quick" if quick else "full"
    plan = plan or (QUICK if quick else FULL)
    out = out_dir_for(out_dir)
    print(f"Limits benchmark ({label}): {plan.trainings} models to train, tasks "
          f"{', '.join(plan.grids)}; {plan.train_size} training images, {plan.epochs} epochs, "
          f"width {plan.embed_dim}, {plan.num_blocks} blocks.", flush=True)
    start = time.perf_counter()
    results = sweep(plan, progress=lambda line: print(line, flush=True))
    results = {"quick": quick, "plan": _describe(plan),
               "wall_time_s": round(time.perf_counter() - start, 1), **results}
    table = summary(results)
    print(table, flush=True)
    with atomic_write(out / "limits.json") as file:
        json.dump(results, file, indent=2)
    with atomic_write(out / "limits.txt") as file:
        file.write(table + "\n")
    figure = plot(results)
    figure.savefig(out / "limits.png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"Saved {out / 'limits.json'}, {out / 'limits.txt'} and {out / 'limits.png'}",
          flush=True)
    return results


def _describe(plan: Plan) -> dict:
    described = {name: getattr(plan, name) for name in plan.__dataclass_fields__}
    described["grids"] = {task: list(g) for task, g in plan.grids.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in described.items()}


def load(out_dir: str | Path | None = None) -> dict | None:
    """The results saved by the last :func:`run` in ``out_dir`` (default as ``run``), or None."""
    path = out_dir_for(out_dir) / "limits.json"
    return json.loads(path.read_text()) if path.exists() else None
