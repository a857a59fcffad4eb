"""Training throughput: the course's step against the Keras example's own, side by side.

``python -m eanet_course bench train`` runs, on the CPU, with the ``paper`` profile's
architecture and batch (N = 256 patches, 8 blocks, batch 128):

* **the Keras example (Keras 3 port)**: its model as the example builds it
  (:mod:`eanet_course.bench.keras_example`), its ``data_augmentation`` (``Normalization`` and the
  four random layers) *inside* the model, ``model.fit(x, y, batch_size=128)`` on NumPy arrays;
* **the course**: :func:`build_eanet` without those layers, fed by :func:`make_datasets`'s
  ``tf.data`` pipeline (augmentation outside the model, on raw pixels, prefetched).

Each is timed per step with a Keras callback: the median step after the first (which traces the
graph), as images per second, and the ratio of the two.

The images are random ``uint8`` arrays of CIFAR's shape: a timing benchmark, not data.
Then it trains the ``ci`` profile from scratch on digits and prints its test accuracy and wall
time. Results go to ``training.json``. These are benchmark figures, not tests.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eanet_course.bench.attention import _machine
from eanet_course.bench.keras_example import build_keras_example
from eanet_course.config import get_profile
from eanet_course.data import keras_example_augmentation, make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write, eanet_home
from eanet_course.training import train

__all__ = ["run"]


class _StepTimes(keras.callbacks.Callback):
    """Wall time of every training step of a ``fit``, in seconds."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)

    def images_per_second(self, batch_size: int) -> float:
        """Images per second of the median step, the first one (tracing) left out."""
        return batch_size / statistics.median(self.seconds[1:])


def _course(config, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    train_ds = make_datasets(config, arrays=((x, y), (x[:1], y[:1]))).train.repeat()
    model = compile_model(build_eanet(config), config)
    times = _StepTimes()
    model.fit(train_ds, steps_per_epoch=steps + 1, epochs=1, shuffle=False, verbose=0,
              callbacks=[times])
    return times.images_per_second(config.batch_size)


def _keras_example(config, x: np.ndarray, y: np.ndarray, steps: int) -> float:
    augment = keras_example_augmentation(x, config.dataset, config.seed)
    model = compile_model(build_keras_example(config, augment), config)
    labels = keras.utils.to_categorical(y, config.num_classes)
    times = _StepTimes()
    n = (steps + 1) * config.batch_size
    model.fit(x[:n], labels[:n], batch_size=config.batch_size, epochs=1, verbose=0,
              callbacks=[times])
    return times.images_per_second(config.batch_size)


def run(quick: bool = False, out_dir: str | Path | None = None) -> dict:
    """Measure and print both throughputs and the ``ci`` profile's result; save JSON.

    Args:
        quick: time 3 steps per recipe instead of 8 (a paper-size step takes about a second on
            two CPU cores); the ``ci`` training is the same.
        out_dir: where ``training.json`` goes; default ``eanet_home() / "bench"``.

    Returns:
        ``{"machine", "quick", "batch_size", "steps", "course_images_per_s",
        "example_images_per_s", "ratio", "ci": {"test_accuracy", "wall_time_s", "epochs"}}``.
    """
    config = get_profile("paper")
    steps = 3 if quick else 8
    n = (steps + 1) * config.batch_size
    rng = np.random.default_rng(0)
    # Enough images that 80% (the training split) still fills every timed batch.
    x = rng.integers(0, 256, size=(int(n / (1 - config.validation_split)) + 1,
                                   *config.input_shape), dtype=np.uint8)
    y = rng.integers(0, config.num_classes, size=len(x))
    print(f"Training throughput on the CPU, paper architecture (N={config.num_patches}, "
          f"{config.num_blocks} blocks), batch {config.batch_size}: the median of {steps} "
          "steps after one warm-up; random CIFAR-shaped images (timing only).")
    with tf.device("/CPU:0"):
        example = _keras_example(config, x, y, steps)
        print(f"  Keras example (augmentation in the model, fit on NumPy): {example:8.1f} images/s")
        course = _course(config, x, y, steps)
        print(f"  course (tf.data augmentation, model alone):              {course:8.1f} images/s")
    ratio = course / example
    print(f"  ratio course / example: {ratio:.2f}x (target >= 1.5x)")

    ci = get_profile("ci")
    print(f"\nThe ci profile: EANet on digits, {ci.epochs} epochs, from scratch.")
    with tempfile.TemporaryDirectory() as logdir:
        result = train(ci, logdir=logdir, verbose=0)
    accuracy = result.test_metrics["accuracy"]
    print(f"  test accuracy {accuracy:.4f} (target >= 0.95) in {result.wall_time_s:.1f} s "
          "(target <= 60 s)")

    results = {
        "machine": _machine(), "quick": quick, "batch_size": config.batch_size, "steps": steps,
        "course_images_per_s": course, "example_images_per_s": example, "ratio": ratio,
        "ci": {"test_accuracy": accuracy, "wall_time_s": result.wall_time_s,
               "epochs": len(result.history.get("loss", []))},
    }
    out = Path(out_dir) if out_dir else eanet_home() / "bench"
    with atomic_write(out / "training.json") as f:
        json.dump(results, f, indent=2)
    print(f"\nWrote {out / 'training.json'}")
    return results
