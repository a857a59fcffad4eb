"""Where does external attention's global channel run out? A map against self-attention.

Inside one external-attention layer the only path between patches is the softmax over N: each
memory unit's column is normalized over all patches of the image, so a patch's output depends on
the others through ``S`` sums per head. With a plain softmax over S (``normalization="softmax"``)
that path is gone and the only global step left in the model is its final average pooling.
Self-attention lets every pair of patches meet.

This benchmark trains small models of four kinds on the digit-tile tasks of
:mod:`eanet_course.tasks` (``count``, ``repeat``, ``lookup``, ``relation``) over a few grid sizes
``N`` and memory sizes ``S``, three seeds each, and reports test accuracy:

* ``external``: EANet blocks, double normalization, ``S`` memory units per head;
* ``external_softmax``: the same blocks with a plain softmax over S;
* ``self``: the same skeleton with self-attention (standard heads, ``key_dim = d / heads``).
  Self-attention has no ``S``: its runs are made once per task and ``N`` and shown on every ``S``
  row of that task and ``N``;
* ``self_matched``: self-attention *widened* (a larger ``key_dim``) so that its attention layer
  holds about as many weights as the external one at that row's ``S``
  (:func:`matched_key_dim`; the table says how many each has).

Every model has the same skeleton (patch embedding with learned positions, pre-norm blocks,
average pooling, linear classifier; :func:`eanet_course.models.build_eanet` and
:func:`~eanet_course.models.build_vit`) and the same data, optimizer and budget for a given seed.
Run it with ``python -m eanet_course bench limits [--quick] [--out DIR]``; it writes
``limits.json``, ``limits.txt`` and ``limits.png``. It is resumable: each training's result is
saved as it finishes (``limits-runs-<plan>/`` next to them), and a rerun of the same plan skips
what is done; ``--shard i/k`` splits the trainings between ``k`` processes or machines.
Accuracies are measured, never tuned: the tasks and the budget were fixed before the numbers came
in. The full map ships with the course (:mod:`eanet_course.results`, ``"limits"``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import keras
import matplotlib.pyplot as plt

from eanet_course import runs as run_folders
from eanet_course.bench._report import out_dir as out_dir_for
from eanet_course.config import EANetConfig
from eanet_course.paths import atomic_write
from eanet_course.tasks import TASKS, TILE, TaskData, make_task

__all__ = ["FULL", "MODELS", "QUICK", "Plan", "attention_weights", "gaps", "load",
           "matched_key_dim", "plot", "regimes", "run", "summary", "sweep"]

#: The four models compared, in the order of the json and the table.
MODELS = ("external", "external_softmax", "self", "self_matched")
#: Models whose runs depend on S (``self`` has no memory: one run serves every S row).
_WITH_S = ("external", "external_softmax", "self_matched")


@dataclass(frozen=True)
class Plan:
    """What to train: tasks and their grid sizes, memory sizes, seeds, data and model budget.

    ``grids`` maps each task to the grid sides ``g`` (``N = g * g``) it runs at, each at every
    ``memory_units``; ``extra`` adds ``(task, g, S)`` rows beyond that product. Every
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
    extra: tuple[tuple[str, int, int], ...] = ()

    def __post_init__(self) -> None:
        if not self.grids:
            raise ValueError("grids is empty; give at least one task, e.g. {'repeat': (3,)}.")
        for task, grids in self.grids.items():
            if task not in TASKS:
                raise ValueError(f"Unknown task {task!r}; choose among {sorted(TASKS)}.")
            if not grids or len(set(grids)) != len(grids):
                raise ValueError(f"grids[{task!r}]={grids!r} must list each grid side once.")
            for g in grids:
                _check_grid(task, g, f"grids[{task!r}]")
        unknown = set(self.models) - set(MODELS)
        if unknown or not self.models:
            raise ValueError(f"models={self.models!r}; choose some of {MODELS}.")
        for name in ("memory_units", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values) or not all(
                    isinstance(v, int) and v >= (0 if name == "seeds" else 1) for v in values):
                raise ValueError(f"{name}={values!r} must be distinct "
                                 + ("integers >= 0." if name == "seeds" else "integers >= 1."))
        for cell in self.extra:
            if not (isinstance(cell, tuple) and len(cell) == 3 and cell[0] in self.grids
                    and isinstance(cell[2], int) and cell[2] >= 1):
                raise ValueError(f"extra holds {cell!r}: each is (task, grid side, S) with a task "
                                 f"of grids ({sorted(self.grids)}) and S >= 1.")
            _check_grid(cell[0], cell[1], "extra")
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

    def rows(self) -> list[tuple[str, int, int]]:
        """Every ``(task, grid, S)`` row of the table, in the plan's order."""
        found = [(task, g, s) for task, grids in self.grids.items() for g in grids
                 for s in self.memory_units]
        found += [cell for cell in self.extra if cell not in found]
        order = {task: i for i, task in enumerate(self.grids)}
        return sorted(found, key=lambda r: (order[r[0]], r[1], r[2]))

    def trainings(self) -> list[tuple[int, str, int, str, int]]:
        """Every training ``(seed, task, grid, model, S)`` (``S = 0`` for ``self``), seed by seed:
        the whole map with one seed comes before the second seed starts."""
        found: list[tuple[int, str, int, str, int]] = []
        for seed in self.seeds:
            for task, grid, s in self.rows():
                for model in self.models:
                    key = (seed, task, grid, model, s if model in _WITH_S else 0)
                    if key not in found:
                        found.append(key)
        return found

    def fingerprint(self) -> str:
        """Ten hex digits naming what a training depends on (not which rows or seeds run)."""
        fields = {name: getattr(self, name) for name in (
            "train_size", "test_size", "epochs", "batch_size", "embed_dim", "mlp_dim",
            "num_heads", "dim_coefficient", "num_blocks", "learning_rate", "weight_decay")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]

    def not_possible(self) -> list[dict]:
        """Grid sizes the plan runs for some task that another of its tasks cannot have."""
        sides = sorted({g for grids in self.grids.values() for g in grids})
        found = []
        for task in self.grids:
            limit = TASKS[task].max_patches
            for g in sides:
                if limit is not None and g * g > limit:
                    found.append({"task": task, "N": g * g, "why": (
                        f"{task} needs N <= {limit}: with {g * g} tiles of 10 digits some digit "
                        "always repeats")})
        return found


def _check_grid(task: str, grid: object, where: str) -> None:
    limit = TASKS[task].max_patches
    if not isinstance(grid, int) or grid < 2 or (limit is not None and grid * grid > limit):
        raise ValueError(f"{where} holds {grid!r} for {task!r}: sides are integers >= 2"
                         + (f" with g*g <= {limit}" if limit else "") + ".")


#: The map: every task at N = 4, 9 and 16 with S = 16 (``repeat`` stops at 9: 16 tiles of 10
#: digits always repeat one), plus S = 4 and 64 for ``repeat`` and ``lookup`` at N = 9; three
#: seeds, 4096 training images, 20 epochs. About 170 trainings: hours on two cores.
FULL = Plan(grids={"count": (2, 3, 4), "repeat": (2, 3), "lookup": (2, 3, 4),
                   "relation": (2, 3, 4)},
            memory_units=(16,),
            extra=(("repeat", 3, 4), ("repeat", 3, 64), ("lookup", 3, 4), ("lookup", 3, 64)))

#: Under 150 s on two idle cores: the relation task at N = 4, S = 16, three seeds, a small budget.
QUICK = Plan(grids={"relation": (2,)}, memory_units=(16,), train_size=2048, test_size=512,
             epochs=8)


def attention_weights(plan: Plan, model: str, memory_units: int, key_dim: int | None = None
                      ) -> int:
    """How many weights one attention layer of ``model`` holds (``key_dim``: self-attention's
    per-head width, default ``embed_dim // num_heads``)."""
    from eanet_course.layers import ExternalAttention, SelfAttention

    if model.startswith("external"):
        layer = ExternalAttention(plan.embed_dim, num_heads=plan.num_heads,
                                  dim_coefficient=plan.dim_coefficient,
                                  memory_units=memory_units)
    else:
        layer = SelfAttention(plan.embed_dim, num_heads=plan.num_heads, key_dim=key_dim)
    layer.build((None, 4, plan.embed_dim))
    return int(layer.count_params())


def matched_key_dim(plan: Plan, memory_units: int) -> int:
    """Self-attention's ``key_dim`` whose layer holds the nearest number of weights to an external
    layer with ``memory_units`` (self-attention's weights grow linearly with ``key_dim``)."""
    target = attention_weights(plan, "external", memory_units)
    one, two = (attention_weights(plan, "self", memory_units, k) for k in (1, 2))
    slope = two - one
    guess = max(1, round((target - (one - slope)) / slope))
    return min((k for k in (guess - 1, guess, guess + 1) if k >= 1),
               key=lambda k: abs(one + slope * (k - 1) - target))


def _key_dim(plan: Plan, model: str, memory_units: int) -> int | None:
    if model == "self":
        return plan.embed_dim // plan.num_heads
    return matched_key_dim(plan, memory_units) if model == "self_matched" else None


def _build(plan: Plan, data: TaskData, model: str, memory_units: int) -> keras.Model:
    from eanet_course.models import build_eanet, build_vit

    normalization = "softmax" if model == "external_softmax" else "double"
    config = plan.config(data.grid, data.task.num_classes, memory_units, model, normalization)
    if model.startswith("self"):
        return build_vit(config, key_dim=_key_dim(plan, model, memory_units))
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


def _run_name(seed: int, task: str, grid: int, model: str, s: int) -> str:
    return f"{task}-N{grid * grid}-{model}" + (f"-S{s}" if model in _WITH_S else "") + \
        f"-seed{seed}.json"


def _read_run(path: Path) -> float | None:
    """A saved training's accuracy, or None for a file that is not one (it is then redone)."""
    try:
        if not path.is_file() or path.stat().st_size > 4096:
            return None
        accuracy = json.loads(path.read_text())["accuracy"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(accuracy) if isinstance(accuracy, (int, float)) and 0 <= accuracy <= 1 else None


def sweep(plan: Plan, progress: Callable[[str], None] | None = print,
          runs_dir: str | Path | None = None, shard: tuple[int, int] = (0, 1),
          train: bool = True) -> dict:
    """Train every model of ``plan``; return ``{"tasks": [row, ...], "not_possible": [...]}``.

    Each row is ``{"task", "N", "S", "chance", <model>: {"accuracy": [...], "seeds": [...]}}``
    for each of the plan's models, with one accuracy per seed that has run, in seed order (a
    model whose seeds lists fewer than the plan's has runs missing). ``progress`` gets one line
    per trained model (None: silent).

    ``runs_dir``: keep each training's result there as it finishes and skip those already
    there (a rerun resumes); None keeps nothing. ``shard=(i, k)``: train only every ``k``-th
    training starting at ``i`` (the others are read from ``runs_dir`` if they are there).
    ``train=False`` trains nothing: the table of what ``runs_dir`` holds.
    """
    index, count = shard
    if not (isinstance(count, int) and isinstance(index, int) and 0 <= index < count):
        raise ValueError(f"shard={shard!r}: use (i, k) with 0 <= i < k, e.g. (0, 2).")
    runs = Path(runs_dir) if runs_dir is not None else None
    accuracy: dict[tuple[int, str, int, str, int], float] = {}
    todo = plan.trainings()
    mine = [t for i, t in enumerate(todo) if i % count == index]
    if runs is not None:
        runs.mkdir(parents=True, exist_ok=True)
        for key in todo:
            found = _read_run(runs / _run_name(*key))
            if found is not None:
                accuracy[key] = found
    pending = [key for key in mine if key not in accuracy] if train else []
    start, data, done = time.perf_counter(), None, len(mine) - len(pending)
    with _fast_tracing():
        for key in pending:
            seed, task, grid, model, s = key
            if data is None or (data.task.name, data.grid, data_seed) != (task, grid, seed):
                data, data_seed = make_task(task, grid, plan.train_size, plan.test_size,
                                            seed=seed), seed
            began = time.perf_counter()
            accuracy[key] = _train(plan, data, model, s, seed)
            if runs is not None:
                with atomic_write(runs / _run_name(*key)) as file:
                    json.dump({"task": task, "N": grid * grid, "model": model, "S": s,
                               "seed": seed, "accuracy": accuracy[key],
                               "wall_time_s": round(time.perf_counter() - began, 1),
                               "plan": plan.fingerprint()}, file)
            done += 1
            if progress:
                where = "" if model == "self" else f" S={s}"
                progress(f"[{done:>3}/{len(mine)}] {task:<8} N={grid * grid:<2}"
                         f" {model:<16}{where:<5} seed {seed}: accuracy {accuracy[key]:.3f}"
                         f"  ({time.perf_counter() - start:.0f} s)")
    return {"tasks": _rows(plan, accuracy), "not_possible": plan.not_possible()}


def _rows(plan: Plan, accuracy: Mapping[tuple[int, str, int, str, int], float]) -> list[dict]:
    rows = []
    for task, grid, s in plan.rows():
        row = {"task": task, "N": grid * grid, "S": s, "chance": TASKS[task].chance}
        for model in plan.models:
            key_s = s if model in _WITH_S else 0
            seeds = [seed for seed in plan.seeds if (seed, task, grid, model, key_s) in accuracy]
            row[model] = {"accuracy": [accuracy[(seed, task, grid, model, key_s)]
                                       for seed in seeds], "seeds": seeds}
        rows.append(row)
    return rows


def _mean(row: dict, model: str) -> float | None:
    runs = row.get(model, {}).get("accuracy", [])
    return statistics.fmean(runs) if runs else None


def _spread(row: dict, model: str) -> float:
    runs = row.get(model, {}).get("accuracy", [])
    return statistics.stdev(runs) if len(runs) > 1 else 0.0


def gaps(results: dict, threshold: float = 0.15, against: str = "self") -> list[dict]:
    """Rows where external attention and ``against`` differ by ``threshold`` or more.

    Compares the mean accuracies over the seeds that ran; returns ``{"task", "N", "S",
    "external", "self", "difference"}`` (``external - self``, ``self`` being ``against``'s mean),
    largest difference in size first. Rows where either model has not run are left out.
    """
    found = []
    for row in results["tasks"]:
        ext, other = _mean(row, "external"), _mean(row, against)
        if ext is None or other is None:
            continue
        if abs(ext - other) >= threshold:
            found.append({"task": row["task"], "N": row["N"], "S": row["S"], "external": ext,
                          "self": other, "difference": ext - other})
    return sorted(found, key=lambda g: -abs(g["difference"]))


def _verdict(row: dict, other: str, margin: float) -> str:
    """External attention against ``other`` on one row (see :func:`regimes`)."""
    ext, rival = _mean(row, "external"), _mean(row, other)
    if ext is None or rival is None:
        return "not run"
    noise = 2 * max(_spread(row, "external"), _spread(row, other))
    if max(ext, rival) - row["chance"] < margin:
        return "neither learned"
    if abs(ext - rival) > max(margin, noise):
        return "external ahead" if ext > rival else "self ahead"
    return "level"


def regimes(results: dict, margin: float = 0.05) -> list[dict]:
    """What each row supports, computed from its runs: a verdict and its reason per row.

    A model *learned* a row when its mean is ``margin`` or more above chance. External attention
    (double normalization) and self-attention (the parameter-matched one where it ran, else the
    standard one) are *apart* when their means differ by more than ``margin`` and by more than
    twice the larger spread over seeds. Verdicts: ``"not run"``, ``"neither learned"``,
    ``"external ahead"``, ``"self ahead"``, ``"level"``; each with ``"seeds"`` (how many runs
    the verdict rests on, the smaller of the two models'). Where the parameter-matched one is
    the rival, ``"standard"`` holds the verdict against the standard self-attention too, and
    ``"standard_self"`` its mean (``None`` where it did not run).
    """
    found = []
    for row in results["tasks"]:
        other = "self_matched" if _mean(row, "self_matched") is not None else "self"
        ext, rival = _mean(row, "external"), _mean(row, other)
        entry = {"task": row["task"], "N": row["N"], "S": row["S"], "against": other,
                 "verdict": _verdict(row, other, margin), "external": ext, "self": rival}
        if other == "self_matched":
            entry.update(standard=_verdict(row, "self", margin), standard_self=_mean(row, "self"))
        if entry["verdict"] == "not run":
            found.append({**entry, "seeds": 0})
            continue
        seeds = min(len(row["external"]["accuracy"]), len(row[other]["accuracy"]))
        found.append({**entry, "seeds": seeds, "difference": ext - rival})
    return found


def _cell(row: dict, model: str) -> str:
    runs = row.get(model, {}).get("accuracy", [])
    if not runs:
        return "not run"
    if len(runs) == 1:
        return f"{runs[0]:.3f} (1 run)"
    return f"{statistics.fmean(runs):.3f} ± {statistics.stdev(runs):.3f} ({len(runs)})"


def summary(results: dict) -> str:
    """The results as a text table: mean ± standard deviation over seeds (and how many seeds
    ran), rows not run marked, the rows the plan could not have, and the large gaps."""
    models = [m for m in MODELS if any(m in row for row in results["tasks"])]
    lines = ["Test accuracy, mean ± std over seeds (runs); self-attention has no S: the same "
             "runs on each S row",
             f"{'task':<9}{'N':>3}{'S':>4}{'chance':>8}" + "".join(f"{m:>20}" for m in models)]
    for row in results["tasks"]:
        lines.append(f"{row['task']:<9}{row['N']:>3}{row['S']:>4}{row['chance']:>8.2f}"
                     + "".join(f"{_cell(row, m):>20}" for m in models))
    for cell in results.get("not_possible", []):
        lines.append(f"{cell['task']:<9}{cell['N']:>3}   not possible: {cell['why']}")
    if "external" in models and "self" in models:
        found = gaps(results)
        lines.append("Rows where external and self-attention differ by 15 points or more: "
                     + (", ".join(f"{g['task']} N={g['N']} S={g['S']} ({g['difference']:+.3f})"
                                  for g in found) or "none."))
    return "\n".join(lines)


def plot(results: dict) -> plt.Figure:
    """One panel per task: test accuracy against N, every seed's run as a small point and the
    mean as a line (bars: std over seeds), a colour per model and S, chance dashed."""
    tasks = list(dict.fromkeys(row["task"] for row in results["tasks"]))
    all_s = sorted({row["S"] for row in results["tasks"]})
    lines = [(m, s) for m in MODELS for s in (all_s if m in _WITH_S else [None])]
    colours = {line: f"C{i % 10}" for i, line in enumerate(lines)}  # the same in every panel
    figure, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.4), squeeze=False)
    styles = dict(zip(MODELS, ("-o", "--s", ":^", "-.v")))
    for ax, task in zip(axes[0], tasks):
        rows = sorted((r for r in results["tasks"] if r["task"] == task), key=lambda r: r["N"])
        for model in MODELS:
            if model not in rows[0]:
                continue
            # self-attention's runs are the same on every S row: one line, from any row
            for s in sorted({r["S"] for r in rows}) if model in _WITH_S else [None]:
                runs = {r["N"]: r[model]["accuracy"] for r in rows
                        if s in (None, r["S"]) and r[model]["accuracy"]}
                if not runs:
                    continue
                label = model if s is None else f"{model} S={s}"
                for n, accuracies in runs.items():
                    ax.scatter([n] * len(accuracies), accuracies, s=9, alpha=0.5,
                               color=colours[(model, s)])
                ax.errorbar(list(runs), [statistics.fmean(a) for a in runs.values()],
                            fmt=styles[model], capsize=3, color=colours[(model, s)], label=label,
                            yerr=[statistics.stdev(a) if len(a) > 1 else 0 for a in
                                  runs.values()], alpha=0.85)
        if not any(r[m]["accuracy"] for r in rows for m in MODELS if m in r):
            ax.text(0.5, 0.5, "not run", transform=ax.transAxes, ha="center", color="grey")
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
        plan: Plan | None = None, shard: tuple[int, int] = (0, 1), train: bool = True,
        save: bool = False, ship: bool = False, overwrite: bool = False) -> dict:
    """Train the map (resuming), print progress and the table, save ``limits.json/.txt/.png``.

    Args:
        quick: the :data:`QUICK` plan (under 150 s on two cores) instead of :data:`FULL`.
        out_dir: where the files go; default ``eanet_home() / "bench"``. Each training's result
            is kept in ``out_dir / "limits-runs-<plan fingerprint>"`` as it finishes, and a rerun
            skips those.
        plan: train this :class:`Plan` instead (``quick`` is then only recorded).
        shard: ``(i, k)``: this process trains every ``k``-th training from ``i``.
        train: False trains nothing and gathers the trainings already kept (e.g. those of
            several shards, or of a run still going) into the table and the files.
        save: also keep the map as the learner's own ``"limits"`` record (EANET_HOME/results),
            which notebook 10 shows beside the shipped one.
        ship: write the record into the package instead (maintainers).
        overwrite: replace a ``limits.json`` of another plan in ``out_dir``; without it that
            is refused before anything is trained. (A ``limits.json`` of the same plan is
            replaced: a rerun gathers the same trainings, and more.) ``out_dir`` must be a
            folder that is new, empty or the course's.

    Returns:
        ``{"quick", "plan", "wall_time_s", "tasks": [...], "not_possible": [...]}``, ``tasks``
        as :func:`sweep`; ``wall_time_s`` adds up the saved trainings' times.
    """
    if plan is not None and not isinstance(plan, Plan):
        raise TypeError(f"plan must be an eanet_course.bench.limits.Plan, "
                        f"not {type(plan).__name__}.")
    label = "custom plan" if plan is not None else "quick" if quick else "full"
    plan = plan or (QUICK if quick else FULL)
    out = run_folders.prepare(out_dir_for(out_dir), "--out")
    identity = {"quick": quick, "plan": _describe(plan)}
    run_folders.keep_results(out / "limits.json", identity, overwrite)  # before any training
    runs = out / f"limits-runs-{plan.fingerprint()}"
    print(f"Limits benchmark ({label}): {len(plan.trainings())} models to train, tasks "
          f"{', '.join(plan.grids)}; {plan.train_size} training images, {plan.epochs} epochs, "
          f"width {plan.embed_dim}, {plan.num_blocks} blocks. Results of each training: {runs}",
          flush=True)
    results = sweep(plan, progress=lambda line: print(line, flush=True), runs_dir=runs,
                    shard=shard, train=train)
    wall = sum(_run_time(path) for path in runs.glob("*.json"))
    results = {**identity, "wall_time_s": round(wall, 1), **results}
    table = summary(results)
    print(table, flush=True)
    figure = plot(results)
    with run_folders.hold(out, "--out"):  # another shard may be writing its files
        run_folders.keep_results(out / "limits.json", identity, overwrite)
        with atomic_write(out / "limits.json") as file:
            json.dump(results, file, indent=2)
        with atomic_write(out / "limits.txt") as file:
            file.write(table + "\n")
        with atomic_write(out / "limits.png", "wb") as file:
            figure.savefig(file, format="png", dpi=120, bbox_inches="tight")
    plt.close(figure)
    print(f"Saved {out / 'limits.json'}, {out / 'limits.txt'} and {out / 'limits.png'}",
          flush=True)
    if save or ship:
        from eanet_course import results as shipped

        command = "python -m eanet_course bench limits" + (" --quick" if quick else "")
        where = shipped.save("limits", results, command=command, wall_time_s=wall, ship=ship)
        print(f"Saved the record {where}", flush=True)
    return results


def _run_time(path: Path) -> float:
    try:
        return float(run_folders.read_json(path, "a training's result", "", limit=4096)
                     .get("wall_time_s", 0.0))
    except (OSError, ValueError, AttributeError, TypeError):
        return 0.0


def _describe(plan: Plan) -> dict:
    described = {name: getattr(plan, name) for name in plan.__dataclass_fields__}
    described["grids"] = {task: list(g) for task, g in plan.grids.items()}
    described["extra"] = [list(cell) for cell in plan.extra]
    described["attention_weights"] = {
        f"{model}{'' if model == 'self' else f' S={s}'}":
            attention_weights(plan, model, s, _key_dim(plan, model, s))
        for s in sorted({row[2] for row in plan.rows()}) for model in plan.models
        if model in _WITH_S or s == min(row[2] for row in plan.rows())}
    described["self_matched_key_dim"] = {
        str(s): matched_key_dim(plan, s) for s in sorted({row[2] for row in plan.rows()})}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in described.items()}


def load(out_dir: str | Path | None = None) -> dict | None:
    """The results saved by the last :func:`run` in ``out_dir`` (default as ``run``), or None."""
    path = out_dir_for(out_dir) / "limits.json"
    try:
        return run_folders.read_json(path, "the limits benchmark's results",
                                     "run `python -m eanet_course bench limits` again.")
    except FileNotFoundError:
        return None
