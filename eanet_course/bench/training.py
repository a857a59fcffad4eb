"""Training throughput: the course's step against the Keras example's own, side by side.

``python -m eanet_course bench train`` runs, on the CPU, with the ``paper`` profile's
architecture and batch (N = 256 patches, 8 blocks, batch 128):

* **the Keras example (Keras 3 port)**: its model as the example builds it
  (:mod:`eanet_course.bench.keras_example`), its ``data_augmentation`` (``Normalization`` and the
  four random layers) *inside* the model, ``model.fit(x, y, batch_size=128)`` on NumPy arrays;
* **the course**: :func:`build_eanet` without those layers, fed by :func:`make_datasets`'s
  ``tf.data`` pipeline (augmentation outside the model, on raw pixels, prefetched).

Each is timed per step with a Keras callback, the two in alternating rounds on the same
models: in each round the median step (the first of every ``fit`` left out) and the ratio of
the two, side by side; the figures are the medians over the rounds, with the lowest and highest
round as their spread (``"spread"`` in the JSON), and the load average seen before each round
(other programs on the same cores).

Then the step against the machine's limit (:mod:`eanet_course.bench.flops`): the FLOPs of one
training step counted from the model's matrix products, the machine's float32 matmul rate
measured in every round, and ``matmul_share``, the fraction of that rate the course's step
reaches. ``--trace DIR`` adds a TensorBoard profiler trace of two course steps and a table of
their op time by op type (:func:`op_time_by_type`).

The images are random ``uint8`` arrays of CIFAR's shape: a timing benchmark, not data.
Then it trains the ``ci`` profile from scratch on digits and prints its test accuracy and wall
time. Results go to ``training.json``. These are benchmark figures, not tests.

``--precision mixed_bfloat16`` adds the course's step in that precision to every round (same
architecture, batch and pipeline), prints both throughputs and their ratio, trains the ``ci``
profile in both precisions and prints both test accuracies (``"precision"`` in the JSON).

``--save`` also keeps the results as the record ``train`` in ``$EANET_HOME/results``
(:mod:`eanet_course.results`), beside the course's shipped one (``--ship``, for maintainers).

``python -m eanet_course bench epoch`` (:func:`run_epoch`) times one whole training epoch of a
profile, fitted as :func:`~eanet_course.training.train` fits it, on 50,000 random CIFAR-sized
images: the learner's wait per epoch (``epoch.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eanet_course import results as records
from eanet_course.bench._report import machine, out_dir as bench_dir
from eanet_course.bench.flops import matmul_rate, training_step_flops
from eanet_course.bench.keras_example import build_keras_example
from eanet_course.config import PRECISIONS, EANetConfig, get_profile
from eanet_course.data import keras_example_augmentation, make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write
from eanet_course.training import train

__all__ = ["run", "run_epoch", "op_time_by_type"]


class _StepTimes(keras.callbacks.Callback):
    """Wall time and process CPU time (all threads) of every training step of a ``fit``, in s.

    On a shared machine the wall time moves with the other processes' load; the CPU time the
    step itself spends moves much less, so a ratio of CPU times is the steadier comparison.
    """

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.cpu_seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.cpu_seconds.append(time.process_time() - self._cpu_start)

    def medians(self) -> tuple[float, float]:
        """The median step: ``(wall seconds, CPU seconds)``."""
        return statistics.median(self.seconds), statistics.median(self.cpu_seconds)


class _Profile(keras.callbacks.Callback):
    """A TensorBoard profiler trace of the training steps ``first`` to ``last`` of a ``fit``."""

    def __init__(self, logdir: str | Path, first: int, last: int) -> None:
        super().__init__()
        self.logdir, self.first, self.last = str(logdir), first, last

    def on_train_batch_begin(self, batch, logs=None):
        if batch == self.first:
            tf.profiler.experimental.start(self.logdir)

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.last:
            tf.profiler.experimental.stop()


@dataclass
class _Recipe:
    """A compiled model and how to ``fit`` it for some steps; :meth:`time` gives step seconds."""

    model: keras.Model
    fit: Callable[[int, list], None]

    def time(self, steps: int, callbacks: Sequence[keras.callbacks.Callback] = ()) -> _StepTimes:
        """Times of ``steps`` training steps, after one more that is left out."""
        times = _StepTimes()
        self.fit(steps + 1, [times, *callbacks])
        del times.seconds[0], times.cpu_seconds[0]
        return times


def _course(config, x: np.ndarray, y: np.ndarray) -> _Recipe:
    train_ds = make_datasets(config, arrays=((x, y), (x[:1], y[:1]))).train.repeat()
    model = compile_model(build_eanet(config), config)
    return _Recipe(model, lambda steps, callbacks: model.fit(
        train_ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0, callbacks=callbacks))


def _keras_example(config, x: np.ndarray, y: np.ndarray) -> _Recipe:
    augment = keras_example_augmentation(x, config.dataset, config.seed)
    model = compile_model(build_keras_example(config, augment), config)
    labels = keras.utils.to_categorical(y, config.num_classes)
    return _Recipe(model, lambda steps, callbacks: model.fit(
        x[:steps * config.batch_size], labels[:steps * config.batch_size],
        batch_size=config.batch_size, epochs=1, verbose=0, callbacks=callbacks))


def op_time_by_type(trace_dir: str | Path) -> dict[str, float]:
    """Seconds spent in each TensorFlow op type in the newest profiler trace under ``trace_dir``.

    Reads ``plugins/profile/<run>/*.xplane.pb`` (what :func:`tf.profiler.experimental.start`
    writes) and adds up the *self* time of every op event (an op's time minus that of ops that
    ran inside it, such as a function call's), on every thread: compute threads and ``tf.data``'s.
    Ops of two threads can overlap, so the total can exceed the wall time.

    Returns:
        ``{op type: seconds}``, largest first.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # the trace's protobuf schema

    files = sorted(Path(trace_dir).glob("plugins/profile/*/*.xplane.pb"))
    if not files:
        raise FileNotFoundError(f"No profiler trace (plugins/profile/*/*.xplane.pb) under "
                                f"{trace_dir}; run `bench train --trace {trace_dir}` first.")
    space = xplane_pb2.XSpace()
    space.ParseFromString(files[-1].read_bytes())
    seconds: dict[str, float] = {}
    for plane in space.planes:
        for line in plane.lines:
            ops = []
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                # Op events are named "scope/op_name:OpType" and displayed as "OpType".
                if meta.display_name and meta.name.endswith(":" + meta.display_name):
                    ops.append((event.offset_ps, event.offset_ps + event.duration_ps,
                                meta.display_name))
            open_ops: list[tuple[int, int, str]] = []
            for start, end, kind in sorted(ops, key=lambda op: (op[0], -op[1])):
                while open_ops and open_ops[-1][1] <= start:
                    open_ops.pop()
                seconds[kind] = seconds.get(kind, 0.0) + (end - start) * 1e-12
                if open_ops:  # the enclosing op's self time excludes this one
                    parent = open_ops[-1][2]
                    seconds[parent] -= (end - start) * 1e-12
                open_ops.append((start, end, kind))
    return dict(sorted(seconds.items(), key=lambda item: -item[1]))


def _op_table(seconds: dict[str, float], rows: int = 12) -> str:
    total = sum(seconds.values())
    lines = [f"  {'op type':<28} {'ms':>9} {'share':>7}"]
    for kind, value in list(seconds.items())[:rows]:
        lines.append(f"  {kind:<28} {value * 1e3:9.1f} {value / total:7.1%}")
    rest = sum(list(seconds.values())[rows:])
    lines.append(f"  {'(other op types)':<28} {rest * 1e3:9.1f} {rest / total:7.1%}")
    return "\n".join(lines)


def _bf16_flags() -> list[str]:
    """The bfloat16 instruction sets ``/proc/cpuinfo`` lists (empty elsewhere or without)."""
    cpuinfo = Path("/proc/cpuinfo")
    flags = set()
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                flags.update(line.split(":", 1)[1].split())
    return sorted(flags & {"avx512_bf16", "amx_bf16"})


def _check_precision(precision: str | None) -> None:
    if precision is not None and precision not in PRECISIONS[1:]:
        raise ValueError(f"precision={precision!r}: bench train always times float32; pass one "
                         f"of {list(PRECISIONS[1:])} to time it beside float32.")


def _spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "low": min(values), "high": max(values)}


def run(quick: bool = False, out_dir: str | Path | None = None,
        trace_dir: str | Path | None = None, precision: str | None = None,
        save: bool = False, ship: bool = False) -> dict:
    """Measure and print both throughputs, against the machine's limit, and the ``ci`` result.

    The recipes are timed in alternating rounds (example, course, the course in ``precision``
    when given, matmul rate, ...), so that a change in the machine's load falls on all of them;
    each round gives each recipe's median step and their ratios, and each figure is the median
    over the rounds (``"spread"``: median, lowest and highest round).

    Args:
        quick: one round of 3 steps per recipe instead of 4 rounds of 6 (a paper-size step
            takes about a second on two CPU cores); the ``ci`` training is the same.
        out_dir: where ``training.json`` goes; default ``eanet_home() / "bench"``.
        trace_dir: if given, a TensorBoard profiler trace of 2 more course steps goes there
            (``tensorboard --logdir DIR``, Profile tab, with ``tensorboard-plugin-profile``), and
            the time by op type is printed and saved.
        precision: if given (``"mixed_bfloat16"``), the course's step in that precision joins
            every round after the float32 one, and the ``ci`` profile is trained in it too.
        save: also write the record ``train`` (:func:`eanet_course.results.save`) to
            ``$EANET_HOME/results`` (the CLI's ``--save``).
        ship: write the record into the package instead (``--ship``, for maintainers).

    Returns:
        ``{"machine", "quick", "batch_size", "steps", "rounds", "course_images_per_s",
        "example_images_per_s", "ratio", "example_cpu_s_per_step", "course_cpu_s_per_step",
        "cpu_ratio", "step_flops", "example_step_flops", "matmul_flops_per_s",
        "course_flops_per_s", "matmul_share", "spread", "load_average", "ci": {"test_accuracy",
        "wall_time_s", "epochs"}}``; ``spread`` holds ``{"median", "low", "high"}`` over the
        rounds of ``course_images_per_s``, ``example_images_per_s``, ``ratio``, ``cpu_ratio``,
        ``matmul_flops_per_s`` and ``matmul_share``,
        plus ``"trace": {"dir", "op_seconds_by_type"}`` with ``trace_dir``, and with
        ``precision`` ``"precision": {"name", "cpu_bf16_flags", "images_per_s",
        "float32_images_per_s", "ratio", "s_per_step", "float32_s_per_step", "cpu_s_per_step",
        "float32_cpu_s_per_step", "cpu_ratio", "ci": {"test_accuracy", "float32_test_accuracy",
        "wall_time_s", "float32_wall_time_s", "epochs"}}`` (``ratio`` and ``cpu_ratio`` > 1:
        that precision is faster than float32).
        ``matmul_share`` is the course step's FLOP/s (its own graph's FLOPs per step, times steps
        per second) over the matmul rate: the fraction of the machine's matrix-product limit the
        step reaches.
    """
    _check_precision(precision)
    started = time.perf_counter()
    config = get_profile("paper")
    steps, rounds = (3, 1) if quick else (6, 4)
    n = (steps + 1) * config.batch_size
    rng = np.random.default_rng(0)
    # Enough images that 80% (the training split) still fills every timed batch.
    x = rng.integers(0, 256, size=(int(n / (1 - config.validation_split)) + 1,
                                   *config.input_shape), dtype=np.uint8)
    y = rng.integers(0, config.num_classes, size=len(x))
    print(f"Training throughput on the CPU, paper architecture (N={config.num_patches}, "
          f"{config.num_blocks} blocks), batch {config.batch_size}: {rounds} round(s) of "
          f"{steps} steps, each recipe in turn; in each round the median step; the median of "
          "the rounds (lowest to highest); random CIFAR-shaped images (timing only).")
    with tf.device("/CPU:0"):
        recipes = {"example": _keras_example(config, x, y), "course": _course(config, x, y)}
        if precision is not None:
            recipes[precision] = _course(config.replace(precision=precision), x, y)
        course = recipes["course"]
        step_flops = training_step_flops(course.model, config.batch_size)
        example_flops = training_step_flops(recipes["example"].model, config.batch_size)
        # {recipe: [(wall, cpu) median step of each round]}, the matmul rate of each round
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in recipes}
        rates, loads = [], []
        for _ in range(rounds):
            loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"))
            for name, recipe in recipes.items():
                times[name].append(recipe.time(steps).medians())
            rates.append(matmul_rate())
    per_round = {
        "example_images_per_s": [config.batch_size / wall for wall, _ in times["example"]],
        "course_images_per_s": [config.batch_size / wall for wall, _ in times["course"]],
        "ratio": [e[0] / c[0] for e, c in zip(times["example"], times["course"])],
        "cpu_ratio": [e[1] / c[1] for e, c in zip(times["example"], times["course"])],
        "matmul_flops_per_s": rates,
        "matmul_share": [step_flops / wall / rate
                         for (wall, _), rate in zip(times["course"], rates)],
    }
    spread = {key: _spread(values) for key, values in per_round.items()}
    example_wall, example_cpu = (statistics.median(t) for t in zip(*times["example"]))
    course_wall, course_cpu = (statistics.median(t) for t in zip(*times["course"]))
    example_ips = config.batch_size / example_wall
    course_ips = config.batch_size / course_wall
    rate = statistics.median(rates)
    course_rate = step_flops * course_ips / config.batch_size
    share = spread["matmul_share"]["median"]
    ratio = spread["ratio"]["median"]

    def between(key: str, fmt: str, scale: float = 1.0) -> str:
        found = spread[key]
        return ("" if rounds == 1
                else f" ({found['low'] / scale:{fmt}} to {found['high'] / scale:{fmt}})")

    print(f"  Keras example (augmentation in the model, fit on NumPy): {example_ips:8.1f} images/s"
          + between("example_images_per_s", ".1f"))
    print(f"  course (tf.data augmentation, model alone):              {course_ips:8.1f} images/s"
          + between("course_images_per_s", ".1f"))
    print(f"  ratio course / example, side by side in each round: {ratio:.2f}x"
          f"{between('ratio', '.2f')} (target >= 1.3x); in CPU seconds per step (steadier "
          f"under load): {spread['cpu_ratio']['median']:.2f}x{between('cpu_ratio', '.2f')}")
    per_image = step_flops / config.batch_size
    print(f"  one training step: {step_flops / 1e9:.1f} GFLOP ({per_image / 1e9:.2f} GFLOP per "
          "image: 3 x the matrix products of the forward pass); the example's: "
          f"{example_flops / 1e9:.1f} GFLOP")
    print(f"  the machine's fp32 matmul (2048 x 2048): {rate / 1e9:.1f} GFLOP/s"
          + between("matmul_flops_per_s", ".1f", 1e9))
    print(f"  the course's step: {course_rate / 1e9:.1f} GFLOP/s, {share:.1%}"
          f"{between('matmul_share', '.1%')} of the matmul rate (target >= 30%)")
    print(f"  1-minute load average before each round (other programs included): "
          + ", ".join(f"{load:.1f}" for load in loads))

    results = {
        "machine": machine(), "quick": quick, "batch_size": config.batch_size, "steps": steps,
        "rounds": rounds, "course_images_per_s": course_ips, "example_images_per_s": example_ips,
        "ratio": ratio, "example_cpu_s_per_step": example_cpu,
        "course_cpu_s_per_step": course_cpu, "cpu_ratio": spread["cpu_ratio"]["median"],
        "step_flops": step_flops, "example_step_flops": example_flops,
        "matmul_flops_per_s": rate,
        "course_flops_per_s": course_rate, "matmul_share": share,
        "spread": spread, "load_average": _spread(loads),
    }
    if precision is not None:
        wall, cpu = (statistics.median(t) for t in zip(*times[precision]))
        flags = _bf16_flags()
        print(f"\nThe course's step in {precision} (blocks in bfloat16 on float32 weights, "
              "classifier in float32), in the same rounds; bfloat16 instructions listed in "
              f"/proc/cpuinfo: {', '.join(flags) or 'none'}.")
        print(f"  {precision}: {config.batch_size / wall:8.1f} images/s against "
              f"{course_ips:.1f} in float32: {course_wall / wall:.2f}x")
        print(f"  seconds per step, float32 / {precision}: wall {course_wall:.3f} / {wall:.3f}, "
              f"CPU {course_cpu:.3f} / {cpu:.3f} = {course_cpu / cpu:.2f}x")
        results["precision"] = {
            "name": precision, "cpu_bf16_flags": flags,
            "images_per_s": config.batch_size / wall, "float32_images_per_s": course_ips,
            "ratio": course_wall / wall, "s_per_step": wall, "float32_s_per_step": course_wall,
            "cpu_s_per_step": cpu, "float32_cpu_s_per_step": course_cpu,
            "cpu_ratio": course_cpu / cpu,
        }
    if trace_dir is not None:
        with tf.device("/CPU:0"):
            course.time(2, [_Profile(trace_dir, 1, 2)])
        seconds = op_time_by_type(trace_dir)
        print(f"\nWhere 2 course steps' op time goes (profiler trace in {trace_dir}):")
        print(_op_table(seconds))
        results["trace"] = {"dir": str(trace_dir), "op_seconds_by_type": seconds}

    ci = get_profile("ci")
    print(f"\nThe ci profile: EANet on digits, {ci.epochs} epochs, from scratch.")
    result = _train_ci(ci)
    accuracy = result.test_metrics["accuracy"]
    print(f"  test accuracy {accuracy:.4f} (target >= 0.95) in {result.wall_time_s:.1f} s "
          "(target <= 60 s)")
    results["ci"] = {"test_accuracy": accuracy, "wall_time_s": result.wall_time_s,
                     "epochs": len(result.history.get("loss", []))}
    if precision is not None:
        other = _train_ci(ci.replace(precision=precision))
        other_accuracy = other.test_metrics["accuracy"]
        print(f"  in {precision}: test accuracy {other_accuracy:.4f} "
              f"({other_accuracy - accuracy:+.4f} against float32) in {other.wall_time_s:.1f} s")
        results["precision"]["ci"] = {
            "test_accuracy": other_accuracy, "float32_test_accuracy": accuracy,
            "wall_time_s": other.wall_time_s, "float32_wall_time_s": result.wall_time_s,
            "epochs": len(other.history.get("loss", []))}
    _save(results, out_dir, "training.json")
    if save or ship:
        command = ("python -m eanet_course bench train" + " --quick" * quick
                   + f" --precision {precision}" * (precision is not None))
        path = records.save("train", results, command=command,
                            wall_time_s=time.perf_counter() - started, ship=ship)
        print(f"Saved the record {path}")
    return results


def _train_ci(config: EANetConfig):
    """:func:`train` of ``config`` in a temporary folder, from scratch, quietly."""
    with tempfile.TemporaryDirectory() as logdir:
        return train(config, logdir=logdir, verbose=0)


def _save(results: dict, out_dir: str | Path | None, name: str) -> dict:
    """Write ``results`` to ``out_dir / name`` (default folder: ``$EANET_HOME/bench``)."""
    path = bench_dir(out_dir) / name
    with atomic_write(path) as f:
        json.dump(results, f, indent=2)
    print(f"\nWrote {path}")
    return results


#: CIFAR-100's training set: 50,000 images of 32 x 32 x 3 in 100 classes.
_CIFAR_TRAIN = 50_000


def run_epoch(config: EANetConfig, quick: bool = False,
              out_dir: str | Path | None = None) -> dict:
    """Time one training epoch of ``config``'s model on CIFAR-sized data; print and save it.

    The epoch is fitted as :func:`~eanet_course.training.train` fits one: ``make_datasets``'s
    pipeline (shuffle, augmentation, the validation split), :func:`compile_model`'s recipe,
    the config's batch, ``fit`` for one epoch with validation, without a device scope. The
    run folder's callbacks (checkpoint, CSV, backup, TensorBoard) are left out. The images are
    50,000 random ``uint8`` arrays of shape (32, 32, 3) in 100 classes: a timing benchmark,
    not data (``config.dataset`` becomes ``"cifar100"``, which sets that shape).

    Args:
        config: the model, batch, recipe and precision (e.g. ``get_profile("laptop")``).
        quick: 2,000 images instead of 50,000.
        out_dir: where ``epoch.json`` goes; default ``eanet_home() / "bench"``.

    Returns:
        ``{"machine", "quick", "config", "images", "train_images", "validation_images",
        "batch_size", "steps", "epoch_s", "first_step_s", "median_step_s",
        "median_step_cpu_s", "epochs", "estimated_run_s"}``: ``epoch_s`` is the wall time
        of the whole ``fit`` (the first step traces the graph; validation included), ``steps``
        the training steps it ran, ``estimated_run_s`` is ``epochs * epoch_s``.
    """
    config = config.replace(dataset="cifar100")
    images = 2_000 if quick else _CIFAR_TRAIN
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(images, *config.input_shape), dtype=np.uint8)
    y = rng.integers(0, config.num_classes, size=images)
    validation_images = int(round(images * config.validation_split))
    train_images = images - validation_images
    print(f"One training epoch, as `train` fits it (run-folder callbacks aside): N="
          f"{config.num_patches} patches, {config.num_blocks} blocks, width {config.embed_dim}, "
          f"batch {config.batch_size}, {config.precision}; {images:,} random uint8 images of "
          f"32 x 32 x 3 in 100 classes (CIFAR-sized: a timing benchmark, not data), "
          f"{train_images:,} to train, {validation_images:,} to validate.")
    keras.utils.set_random_seed(config.seed)
    data = make_datasets(config, arrays=((x, y), (x[:1], y[:1])))
    model = compile_model(build_eanet(config), config)
    times = _StepTimes()
    start = time.perf_counter()
    model.fit(data.train, validation_data=data.validation, epochs=1, shuffle=False, verbose=0,
              callbacks=[times])
    epoch = time.perf_counter() - start
    step, step_cpu = times.medians()
    steps = len(times.seconds)
    print(f"  epoch: {epoch:.1f} s wall for {steps} training steps and the validation "
          f"(the first step, {times.seconds[0]:.2f} s, traces the graph)")
    print(f"  median step: {step:.3f} s wall, {step_cpu:.3f} s CPU; "
          f"{config.batch_size / step:.1f} images/s")
    print(f"  {config.epochs} epochs (the config's) of these {images:,} images at this pace: "
          f"about {config.epochs * epoch / 60:.1f} min (this epoch's time x {config.epochs})")
    return _save({
        "machine": machine(), "quick": quick, "config": dataclasses.asdict(config),
        "images": images, "train_images": train_images, "validation_images": validation_images,
        "batch_size": config.batch_size, "steps": steps, "epoch_s": epoch,
        "first_step_s": times.seconds[0], "median_step_s": step, "median_step_cpu_s": step_cpu,
        "epochs": config.epochs, "estimated_run_s": config.epochs * epoch,
    }, out_dir, "epoch.json")
