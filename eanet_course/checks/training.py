"""Checkers for exercise 07: a learning-rate schedule and a training step with ``GradientTape``.

The schedule is read at every step, with the step as an int64 tensor inside a ``tf.function``
(the way an optimizer asks for it), and compared with warm-up plus cosine at each step. The
training step is run on two copies of one small model (with BatchNormalization, so that a
missing ``training=True`` shows), the learner's and the reference's, and the weights compared.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from eanet_course.checks._core import Mistake, call, checker, preview


def _warmup_cosine(peak: float, total: int, warmup: int, steps: np.ndarray) -> np.ndarray:
    """Linear warm-up from 0 to ``peak`` over ``warmup`` steps, then a cosine to 0 at ``total``."""
    steps = steps.astype(np.float64)
    rising = peak * steps / warmup
    progress = np.clip((steps - warmup) / (total - warmup), 0.0, 1.0)
    falling = peak * 0.5 * (1.0 + np.cos(math.pi * progress))
    return np.where(steps < warmup, rising, falling)


def _schedule_variants(peak, total, warmup, steps) -> dict[str, np.ndarray]:
    s = steps.astype(np.float64)
    right = _warmup_cosine(peak, total, warmup, steps)
    cosine_over_total = np.where(s < warmup, s * peak / warmup,
                                 peak * 0.5 * (1 + np.cos(math.pi * np.clip(s / total, 0, 1))))
    return {
        "no warm-up: the rate starts at the peak.": peak * 0.5 * (
            1 + np.cos(math.pi * np.clip(s / total, 0, 1))),
        "the cosine's length: yours lasts total_steps after the warm-up (it ends at "
        "total_steps + warmup_steps); it should end at total_steps.":
            _warmup_cosine(peak, total + warmup, warmup, steps),
        "the cosine runs over the whole run from step 0 (its phase ignores the warm-up): after "
        "the warm-up it should start at its top.": cosine_over_total,
        "the decay is linear; it should follow half a cosine.": np.where(
            s < warmup, s * peak / warmup, peak * np.clip((total - s) / (total - warmup), 0, 1)),
        "no decay: the rate stays at the peak after the warm-up.":
            np.where(s < warmup, s * peak / warmup, peak),
        "the schedule is off by one step: yours gives step s the rate of step s + 1.":
            _warmup_cosine(peak, total, warmup, steps + 1),
        "the warm-up is off by one step: yours reaches the peak one step early (step + 1).":
            np.where(s < warmup, (s + 1) * peak / warmup, right),
        "the warm-up is off by one step: yours divides by warmup_steps - 1.":
            np.where(s < warmup, s * peak / max(warmup - 1, 1), right),
    }


@checker("warmup_cosine", limit_factor=3.0)
def check_learning_rate_schedule(fn: Callable) -> str:
    """Check ``fn(peak_learning_rate, total_steps, warmup_steps) -> LearningRateSchedule``.

    At every step from 0 to ``total_steps``, asked with the step as an int64 tensor inside a
    ``tf.function``, the rate must be ``peak * step / warmup_steps`` during the warm-up, then
    ``peak * (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps))) / 2``.
    """
    import keras
    import tensorflow as tf

    cases = [(1e-3, 200, 20), (3e-3, 90, 9), (5e-4, 1000, 50)]
    for peak, total, warmup in cases:
        what = f"peak_learning_rate={peak}, total_steps={total}, warmup_steps={warmup}"
        schedule = call(fn, peak, total, warmup, what=what)
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise Mistake(f"Called with {what}, expected a keras.optimizers.schedules."
                          f"LearningRateSchedule (optimizers call it with the step number); "
                          f"your function returned {type(schedule).__name__}: "
                          f"{schedule!r:.80}")
        steps = np.arange(total + 1)
        compiled = tf.function(lambda step: tf.cast(schedule(step), tf.float64))
        try:
            rates = np.array([float(call(compiled, tf.constant(s, tf.int64), what=what))
                              for s in steps])
        except Mistake as error:
            try:
                call(schedule, 1, what=what)
                works_with_int = True
            except Mistake:
                works_with_int = False
            if works_with_int:
                last = [line for line in str(error).splitlines() if line.strip()][-1].strip()
                raise Mistake(f"Called with {what}, your schedule works with a Python int step "
                              "but fails when the optimizer asks: the step is then an int64 "
                              "tensor inside a compiled tf.function. Cast it to a float before "
                              "any arithmetic, and use tensor operations (keras.ops) on it, not "
                              f"Python's math functions.\nThe error: {last}") from None
            raise
        expected = _warmup_cosine(peak, total, warmup, steps)
        atol = 1e-4 * peak
        if np.all(np.isfinite(rates)) and np.allclose(rates, expected, rtol=1e-4, atol=atol):
            continue
        wrong = np.flatnonzero(~np.isclose(rates, expected, rtol=1e-4, atol=atol))
        first = int(wrong[0]) if wrong.size else 0
        lines = [f"Called with {what}, your schedule differs at {wrong.size} of {steps.size} "
                 f"steps; the first is step {first}: expected {expected[first]:.4e}, got "
                 f"{rates[first]:.4e}.",
                 "  steps    " + "  ".join(f"{s:>9d}" for s in steps[::max(1, total // 5)]),
                 "  expected " + "  ".join(f"{r:9.2e}" for r in expected[::max(1, total // 5)]),
                 "  yours    " + "  ".join(f"{r:9.2e}" for r in rates[::max(1, total // 5)])]
        variants = _schedule_variants(peak, total, warmup, steps)
        floor = rates[-1] if np.isfinite(rates[-1]) else 0.0
        variants[f"the decay does not reach 0: yours ends at a floor of {floor:.2e} (an alpha "
                 "above 0?)."] = np.where(steps < warmup, expected,
                                          floor + (peak - floor) / peak * expected)
        for explanation, variant in variants.items():
            if np.allclose(rates, variant, rtol=1e-3, atol=atol):
                lines.append(f"Likely mistake: {explanation}")
                break
        else:
            if not np.all(np.isfinite(rates)) or np.any(rates < 0):
                lines.append("Every learning rate must be a finite number >= 0.")
            elif np.max(rates) > peak * (1 + 1e-3):
                lines.append(f"The rate goes above the peak ({np.max(rates):.2e}).")
        raise Mistake("\n".join(lines))
    return (f"Every step matches warm-up plus cosine on {len(cases)} step budgets, the step "
            "asked as a tensor inside tf.function.")


# ----------------------------------------------------------------------------------------------
# 07 a training step with GradientTape


def _tiny_model(seed: int):
    """A small classifier with BatchNormalization, weights fixed by ``seed``."""
    import keras

    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") if i % 2 == 0
                       or w.ndim > 1 else np.abs(rng.normal(size=w.shape)).astype("float32")
                       for i, w in enumerate(model.get_weights())])
    return model


def _reference_step(model, optimizer, loss_fn, x, y, *, training=True, swap=False, sign=1.0,
                    apply=True):
    import tensorflow as tf

    with tf.GradientTape() as tape:
        predictions = model(x, training=training)
        loss = loss_fn(predictions, y) if swap else loss_fn(y, predictions)
    grads = tape.gradient(loss, model.trainable_variables)
    if apply:
        optimizer.apply_gradients([(sign * g, v) for g, v in zip(grads, model.trainable_variables)])
    return float(loss)


STEP_VARIANTS = {
    "the model runs in inference mode: call it with training=True inside the tape "
    "(BatchNormalization and Dropout behave differently when training).": {"training": False},
    "the loss's arguments are swapped: Keras losses take (y_true, y_pred).": {"swap": True},
    "the weights move up the gradient: the optimizer subtracts the gradient itself; do not "
    "negate it.": {"sign": -1.0},
    "the weights did not change: the gradients are never applied to the model's trainable "
    "variables.": {"apply": False},
}


@checker("train_step", limit_factor=3.0)
def check_train_step(fn: Callable) -> str:
    """Check ``fn(model, optimizer, loss_fn, images, labels) -> loss``: one optimization step.

    The learner's step and the reference step run on two copies of the same small model with
    BatchNormalization and plain SGD; after two steps on different batches, the trainable
    weights, BatchNormalization's moving statistics and the returned losses must agree.
    """
    import keras

    rng = np.random.default_rng(13)
    batches = [(rng.normal(size=(16, 6)).astype("float32"),
                np.eye(3, dtype="float32")[rng.integers(0, 3, size=16)]) for _ in range(2)]
    loss_fn = keras.losses.CategoricalCrossentropy()

    def run(step):
        model, optimizer = _tiny_model(5), keras.optimizers.SGD(learning_rate=0.5)
        losses = [step(model, optimizer, loss_fn, x, y) for x, y in batches]
        return model, losses

    what = "a small Dense/BatchNormalization classifier, SGD(0.5) and two batches of 16"
    mine, losses = run(lambda *args: call(fn, *args, what=what))
    expected, expected_losses = run(_reference_step)
    for i, loss in enumerate(losses):
        if loss is None:
            raise Mistake(f"Called with {what}, your step returned None; return the loss.")
        try:
            losses[i] = float(np.asarray(loss.numpy() if hasattr(loss, "numpy") else loss))
        except (TypeError, ValueError):
            raise Mistake(f"Called with {what}, your step returned {type(loss).__name__}: "
                          f"{loss!r:.80}; return the loss, a scalar.") from None
    got = [w.numpy() for w in mine.weights]
    want = [w.numpy() for w in expected.weights]

    def same(a, b):
        return all(np.allclose(u, v, rtol=1e-4, atol=1e-5) for u, v in zip(a, b))

    if same(got, want) and np.allclose(losses, expected_losses, rtol=1e-4, atol=1e-5):
        return ("Weights, BatchNormalization statistics and losses match the reference after "
                "two steps.")
    for explanation, change in STEP_VARIANTS.items():
        variant, _ = run(lambda *args, change=change: _reference_step(*args, **change))
        if same(got, [w.numpy() for w in variant.weights]):
            raise Mistake(f"Called with {what}, your step is a classic wrong answer.\n"
                          f"Likely mistake: {explanation}")
    if same(got, want):
        raise Mistake(f"Called with {what}, the weights are right but the returned losses are "
                      f"{np.round(losses, 5).tolist()} instead of "
                      f"{np.round(expected_losses, 5).tolist()}: return the loss computed on the "
                      "batch before the update, as a scalar.")
    names = [w.path for w in mine.weights]
    worst = int(np.argmax([np.max(np.abs(a - b)) for a, b in zip(got, want)]))
    raise Mistake(f"Called with {what}, after two steps your weights differ from the "
                  f"reference's; the most in {names[worst]}: expected starting "
                  f"{preview(want[worst])}, got {preview(got[worst])}.")
