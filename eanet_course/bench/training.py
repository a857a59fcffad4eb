"""Training throughput: the course's step against the Keras example's own, side by side.

``python -m eanet_course bench train`` runs, on the CPU, with the ``paper`` profile's
architecture and batch (N = 256 patches, 8 blocks, batch 128):

* **the Keras example (Keras 3 port)**: its ``data_augmentation`` (``Normalization`` and the four
  random layers) *inside* the model, ``model.fit(x, y, batch_size=128)`` on NumPy arrays;
* **the course**: the same EANet without those layers, fed by :func:`make_datasets`'s
  ``tf.data`` pipeline (augmentation outside the model, prefetched), so the model can compile
  with XLA.

The images are random ``uint8`` arrays of CIFAR's shape: a timing benchmark, not data.
Then it trains the ``ci`` profile from scratch on digits and prints its test accuracy and wall
time. Results go to ``training.json``. These are benchmark figures, not tests.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from eanet_course.bench.attention import _machine
from eanet_course.config import get_profile
from eanet_course.data import keras_example_augmentation, make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write, eanet_home
from eanet_course.training import train

__all__ = ["run"]

WARMUP_STEPS = 1  # tracing and compiling happen here, outside the timed part


def _images_per_second(fit, steps: int, batch_size: int) -> float:
    """Time ``fit(steps)`` after a warm-up of :data:`WARMUP_STEPS`; images per second."""
    fit(WARMUP_STEPS)
    start = time.perf_counter()
    fit(steps)
    return steps * batch_size / (time.perf_counter() - start)


def _course(config, x: np.ndarray, y: np.ndarray, steps: int) -> tuple[float, object]:
    train_ds = make_datasets(config, arrays=((x, y), (x[:1], y[:1]))).train.repeat()
    model = compile_model(build_eanet(config), config)
    rate = _images_per_second(
        lambda n: model.fit(train_ds, steps_per_epoch=n, epochs=1, shuffle=False,
                            verbose=0),
        steps, config.batch_size)
    return rate, model.jit_compile


def _keras_example(config, x: np.ndarray, y: np.ndarray, steps: int) -> tuple[float, object]:
    inputs = keras.Input(config.input_shape)
    augment = keras_example_augmentation(x, config.dataset, config.seed)
    model = compile_model(keras.Model(inputs, build_eanet(config)(augment(inputs))), config)
    labels = keras.utils.to_categorical(y, config.num_classes)
    batch = config.batch_size
    rate = _images_per_second(
        lambda n: model.fit(x[: n * batch], labels[: n * batch], batch_size=batch, epochs=1,
                            verbose=0),
        steps, batch)
    return rate, model.jit_compile


def run(quick: bool = False, out_dir: str | Path | None = None) -> dict:
    """Measure and print both throughputs and the ``ci`` profile's result; save JSON.

    Args:
        quick: time 2 steps per recipe instead of 3 (a paper-size step takes seconds on a CPU) (the ``ci`` training is the same).
        out_dir: where ``training.json`` goes; default ``eanet_home() / "bench"``.

    Returns:
        ``{"machine", "quick", "batch_size", "steps", "course_images_per_s",
        "example_images_per_s", "ratio", "ci": {"test_accuracy", "wall_time_s", "epochs"}}``.
    """
    config = get_profile("paper")
    steps = 2 if quick else 3
    n = (steps + WARMUP_STEPS) * config.batch_size
    rng = np.random.default_rng(0)
    # Enough images that 80% (the training split) still fills every timed batch.
    x = rng.integers(0, 256, size=(int(n / (1 - config.validation_split)) + 1,
                                   *config.input_shape), dtype=np.uint8)
    y = rng.integers(0, config.num_classes, size=len(x))
    print(f"Training throughput on the CPU, paper architecture (N={config.num_patches}, "
          f"{config.num_blocks} blocks), batch {config.batch_size}, {steps} timed steps; "
          "random CIFAR-shaped images (timing only).")
    with tf.device("/CPU:0"):
        example, example_jit = _keras_example(config, x, y, steps)
        print(f"  Keras example (augmentation in the model, fit on NumPy): "
              f"{example:8.1f} images/s  (jit_compile={example_jit})")
        course, course_jit = _course(config, x, y, steps)
        print(f"  course (tf.data augmentation, model alone):              "
              f"{course:8.1f} images/s  (jit_compile={course_jit})")
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
