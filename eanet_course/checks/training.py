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

from eanet_course.checks._core import Mistake, call, checker, convert, fresh_rng, preview


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
        "the warm-up starts at the peak (initial_learning_rate=peak?): it rises from 0.":
            np.where(s < warmup, peak, right),
        "the decay runs up instead of down: the cosine starts at the peak after the warm-up "
        "and falls to 0.": np.where(s < warmup, right, peak - right),
        "the schedule is off by one step: yours gives step s the rate of step s + 1.":
            _warmup_cosine(peak, total, warmup, steps + 1),
        "the warm-up is off by one step: yours reaches the peak one step early (step + 1).":
            np.where(s < warmup, (s + 1) * peak / warmup, right),
        "the warm-up is off by one step: yours divides by warmup_steps - 1.":
            np.where(s < warmup, s * peak / max(warmup - 1, 1), right),
        "a full cosine period (2 * pi): the rate falls to 0 halfway and rises again; the decay "
        "is half a period, cos(pi * (s - warmup_steps) / (total_steps - warmup_steps)).":
            np.where(s < warmup, right, peak * 0.5 * (1 + np.cos(2 * math.pi * (s - warmup)
                                                                 / (total - warmup)))),
        "the factor 1/2 is missing: peak * (1 + cos(...)) starts at twice the peak; the cosine "
        "decay is peak / 2 * (1 + cos(...)).": np.where(s < warmup, right, 2 * right),
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
        try:
            schedule = call(fn, peak, total, warmup, what=what)
        except Mistake as error:
            swapped = _swapped_parameters(fn)
            if not swapped:
                raise
            raise Mistake(str(error).split("\nLikely mistake:")[0]
                          + f"\nLikely mistake: {swapped}") from None
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise Mistake(f"Called with {what}, expected a keras.optimizers.schedules."
                          f"LearningRateSchedule (optimizers call it with the step number); "
                          f"your function returned {type(schedule).__name__}: "
                          f"{schedule!r:.80}\nLikely mistake: " + (
                              "the class itself, not an instance of it: return "
                              "YourSchedule(peak_learning_rate, total_steps, warmup_steps)."
                              if isinstance(schedule, type) else
                              f"more than the schedule is returned (a {type(schedule).__name__} "
                              f"of {len(schedule)}): return the schedule alone."
                              if isinstance(schedule, (tuple, list)) else
                              "a plain function (or lambda) of the step; subclass "
                              "keras.optimizers.schedules.LearningRateSchedule, or return a "
                              "Keras schedule such as CosineDecay." if callable(schedule) else
                              "a number where a schedule belongs: the rate must change with "
                              "the step, so return a LearningRateSchedule."))
        steps = np.arange(total + 1)
        compiled = tf.function(lambda step: tf.cast(schedule(step), tf.float64))
        # Every step in one compiled map (fast); where that fails, step by step, the way an
        # optimizer asks, which gives the error its own message.
        every = tf.function(lambda all_steps: tf.map_fn(
            lambda step: tf.cast(schedule(step), tf.float64), all_steps,
            fn_output_signature=tf.float64))
        try:
            try:
                rates = convert(lambda v: np.array(v, dtype=np.float64).reshape(steps.shape),
                                call(every, tf.constant(steps, tf.int64), what=what), what,
                                "rates")
            except Mistake:
                rates = np.array([float(call(compiled, tf.constant(s, tf.int64), what=what))
                                  for s in steps])
        except Mistake as error:
            try:
                call(schedule, 1, what=what)
                works_with_int = True
            except Mistake:
                works_with_int = False
            if works_with_int:
                first = str(error).splitlines()[0]
                raise Mistake(f"{first}\nYour schedule works with a Python int step but fails "
                              "when the optimizer asks.\nLikely mistake: Python arithmetic, "
                              "`math` functions or comparisons on the step, which is an int64 "
                              "tensor inside a compiled tf.function: cast it to a float before "
                              "any arithmetic, and use tensor operations (keras.ops) on it.") \
                    from None
            raise
        expected = _warmup_cosine(peak, total, warmup, steps)
        atol = 1e-4 * peak
        if _swapped_parameters(fn) and not np.allclose(rates, expected, rtol=1e-4, atol=atol):
            raise Mistake(f"Called with {what}, your schedule differs from warm-up plus cosine."
                          f"\nLikely mistake: {_swapped_parameters(fn)}")
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
            phase = "warm-up" if first < warmup else "cosine decay"
            if not np.all(np.isfinite(rates)) or np.any(rates < 0):
                cause = ("a rate that is NaN, inf or negative: every learning rate is a finite "
                         "number >= 0 (a division by 0, or a cosine past total_steps?).")
            elif np.max(rates) > peak * (1 + 1e-3):
                cause = (f"the rate goes above the peak ({np.max(rates):.2e} at step "
                         f"{int(np.argmax(rates))}): check the {phase}'s formula.")
            elif wrong.size and wrong.min() >= warmup:
                cause = ("the warm-up is right, the cosine decay is not (from step "
                         f"{first}): check its phase (s - warmup_steps) and its length "
                         "(total_steps - warmup_steps).")
            elif wrong.size and wrong.max() < warmup:
                cause = (f"the decay is right, the warm-up is not (steps {first} to "
                         f"{int(wrong.max())}): it rises linearly from 0 at step 0 to the peak "
                         "at warmup_steps.")
            else:
                cause = (f"the rate differs in both phases, first in the {phase} at step "
                         f"{first}: compare each phase's formula with the contract.")
            lines.append(f"Likely mistake: {cause}")
        raise Mistake("\n".join(lines))
    return (f"Every step matches warm-up plus cosine on {len(cases)} step budgets, the step "
            "asked as a tensor inside tf.function.")


def _swapped_parameters(fn: Callable) -> str | None:
    """The explanation when ``fn``'s parameter names put warmup before total, else None."""
    import inspect

    try:
        names = [p.name.lower() for p in inspect.signature(fn).parameters.values()]
    except (TypeError, ValueError):
        return None
    if len(names) == 3 and "warm" in names[1] and "total" in names[2]:
        return ("your parameters are (peak_learning_rate, warmup_steps, total_steps): "
                "total_steps and warmup_steps swapped. The contract's order is "
                "warmup_cosine(peak_learning_rate, total_steps, warmup_steps), and callers pass "
                "them by position.")
    return None


# ----------------------------------------------------------------------------------------------
# 07 a training step with GradientTape


def _tiny_model(seed: int, log: list):
    """A small classifier with BatchNormalization, weights fixed by ``seed``; a probe layer
    appends ``(training, a tape is recording)`` to ``log`` each time the model runs."""
    import keras
    from tensorflow.python.eager import record

    class Probe(keras.layers.Layer):
        def call(self, x, training=None):
            log.append((bool(training), record.could_possibly_record()))
            return x

    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8),
        keras.layers.BatchNormalization(),
        Probe(),
        keras.layers.Activation("relu"),
        keras.layers.Dense(3, activation="softmax"),
    ])
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") if i % 2 == 0
                       or w.ndim > 1 else np.abs(rng.normal(size=w.shape)).astype("float32")
                       for i, w in enumerate(model.get_weights())])
    return model


def _loss(log: list):
    """A fresh CategoricalCrossentropy that appends ``(first argument is the labels, a tape is
    recording)`` to ``log`` at each call (one per run: nothing shared with the reference)."""
    import keras
    from tensorflow.python.eager import record

    class Loss(keras.losses.CategoricalCrossentropy):
        def __call__(self, y_true, y_pred, sample_weight=None):
            width = getattr(y_true, "shape", (None,))[-1]
            labels_first = bool(np.all(np.isin(np.asarray(y_true), (0.0, 1.0)))) \
                if width == 3 and not hasattr(y_true, "graph") else None
            log.append((labels_first, record.could_possibly_record()))
            return super().__call__(y_true, y_pred, sample_weight)

    # Label smoothing: a loss written by hand instead of loss_fn gives other numbers.
    return Loss(label_smoothing=0.1)


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
    "the loss's arguments are swapped: Keras losses take (y_true, y_pred).": {"swap": True},
    "the weights move up the gradient: the optimizer subtracts the gradient itself; do not "
    "negate it.": {"sign": -1.0},
}


def _scalar(loss, what: str) -> float:
    if loss is None:
        raise Mistake(f"Called with {what}, your step returned None.\nLikely mistake: the "
                      "`return loss` is missing.")
    try:
        value = np.asarray(loss.numpy() if hasattr(loss, "numpy") else loss, dtype=np.float64)
    except (TypeError, ValueError):
        value = None
    if isinstance(loss, (list, tuple)) and value is not None and value.size == 1:
        raise Mistake(f"Called with {what}, your step returned a {type(loss).__name__} holding "
                      f"the loss: {loss!r:.80}.\nLikely mistake: the loss wrapped in a "
                      f"{type(loss).__name__}; return the loss itself, a scalar.")
    if value is None or value.size != 1:
        raise Mistake(f"Called with {what}, your step returned {type(loss).__name__}: "
                      f"{loss!r:.80}.\nLikely mistake: something other than the loss is "
                      "returned (the gradients, the predictions?); return the loss, a scalar.")
    return float(value.reshape(()))


@checker("train_step", limit_factor=3.0)
def check_train_step(fn: Callable) -> str:
    """Check ``fn(model, optimizer, loss_fn, images, labels) -> loss``: one optimization step.

    The learner's step and the reference step run on two copies of the same small model with
    BatchNormalization and SGD with momentum, each with its own loss and optimizer; after two
    steps on different batches, the trainable weights, BatchNormalization's moving statistics,
    the optimizer's step count and the returned losses must agree. A probe inside the model and
    the loss records how they were called (in training mode? inside the tape?), which names the
    mistake.
    """
    import keras

    rng = fresh_rng()
    batches = [(rng.normal(size=(16, 6)).astype("float32"),
                np.eye(3, dtype="float32")[rng.integers(0, 3, size=16)]) for _ in range(2)]

    def run(step, model_log=None, loss_log=None):
        model_log = [] if model_log is None else model_log
        loss_log = [] if loss_log is None else loss_log
        model = _tiny_model(5, model_log)
        optimizer = keras.optimizers.SGD(learning_rate=0.5, momentum=0.5)
        losses = [step(model, optimizer, _loss(loss_log), x.copy(), y.copy()) for x, y in batches]
        return model, optimizer, losses, model_log, loss_log

    what = ("a small Dense/BatchNormalization classifier, SGD(0.5, momentum=0.5) and two "
            "batches of 16")

    def learner(*args):
        return call(fn, *args, what=what)

    model_log, loss_log = [], []
    try:
        mine, optimizer, losses, model_log, loss_log = run(learner, model_log, loss_log)
    except Mistake as error:
        if "compile()" in str(error) or "must call `compile" in str(error).lower():
            raise Mistake(f"{str(error).splitlines()[0]}\nLikely mistake: model.fit (or "
                          "train_on_batch) where the exercise writes the step itself: run the "
                          "model inside a tf.GradientTape, take the gradient of loss_fn, and "
                          "apply it with the optimizer you are given.") from None
        if "apply_gradients" in str(error) and "unpack" in str(error):
            raise Mistake(f"{str(error).splitlines()[0]}\nLikely mistake: apply_gradients "
                          "takes (gradient, variable) pairs, not the gradients alone: "
                          "optimizer.apply_gradients(zip(gradients, "
                          "model.trainable_variables)).") from None
        if "_unique_id" in str(error) or "has no attribute 'assign" in str(error):
            raise Mistake(f"{str(error).splitlines()[0]}\nLikely mistake: apply_gradients "
                          "takes (gradient, variable) pairs: zip(gradients, "
                          "model.trainable_variables), in that order.") from None
        if "No gradients provided" not in str(error) and "None values not supported" not in \
                str(error) and "NoneType" not in str(error):
            raise
        raise Mistake(f"{str(error).splitlines()[0]}\nThe tape found no path from the "
                      "weights to the loss.\nLikely mistake: "
                      + _no_path(model_log, loss_log)) from None
    losses = [convert(lambda v: _scalar(v, what), loss, what, "loss") for loss in losses]
    expected, _, expected_losses, _, _ = run(_reference_step)
    got = [w.numpy() for w in mine.weights]
    want = [w.numpy() for w in expected.weights]

    def same(a, b):
        return all(np.allclose(u, v, rtol=1e-4, atol=1e-5) for u, v in zip(a, b))

    start = [w.numpy() for w in _tiny_model(5, []).trainable_weights]
    right_weights = same(got, want)
    if right_weights and int(optimizer.iterations.numpy()) == 2 and np.allclose(
            losses, expected_losses, rtol=1e-4, atol=1e-5):
        return ("Weights, BatchNormalization statistics, the optimizer's steps and losses match "
                "the reference after two steps.")
    diagnosis = _diagnose_step([w.numpy() for w in mine.trainable_weights], start, optimizer,
                               model_log, loss_log, same)
    if diagnosis:
        raise Mistake(f"Called with {what}, your step is not one optimization step.\n"
                      f"Likely mistake: {diagnosis}")
    for explanation, change in STEP_VARIANTS.items():
        variant = run(lambda *args, change=change: _reference_step(*args, **change))[0]
        if same(got, [w.numpy() for w in variant.weights]):
            raise Mistake(f"Called with {what}, your step is a classic wrong answer.\n"
                          f"Likely mistake: {explanation}")
    if right_weights:
        raise Mistake(f"Called with {what}, the weights are right but the returned losses are "
                      f"{np.round(losses, 5).tolist()} instead of "
                      f"{np.round(expected_losses, 5).tolist()}.\nLikely mistake: the loss "
                      "returned is not the batch's loss before the update (computed again "
                      "after it, or on another batch?).")
    moved = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(mine.trainable_weights,
                                                                     start)])
    right_move = np.concatenate([(w.numpy() - s).ravel() for w, s in zip(
        expected.trainable_weights, start)])
    cosine = float(moved @ right_move / (np.linalg.norm(moved) * np.linalg.norm(right_move)
                                         + 1e-30))
    if cosine > 0.9:
        ratio = float(np.linalg.norm(moved) / np.linalg.norm(right_move))
        raise Mistake(f"Called with {what}, your weights move the optimizer's way, but "
                      f"{ratio:.3g} times as far.\nLikely mistake: the step is scaled: the "
                      "gradients changed before apply_gradients (clipped, averaged, "
                      "multiplied) or the optimizer's learning rate set by hand; apply the "
                      "tape's gradients as they are, with the optimizer as given.")
    names = [w.path for w in mine.weights]
    worst = int(np.argmax([np.max(np.abs(a - b)) for a, b in zip(got, want)]))
    raise Mistake(f"Called with {what}, after two steps your weights differ from the "
                  f"reference's; the most in {names[worst]}: expected starting "
                  f"{preview(want[worst])}, got {preview(got[worst])}.\nLikely mistake: the "
                  "update is not the optimizer's step on the gradient of loss_fn(labels, "
                  "model(images, training=True)) (a different loss, gradient or scale?).")


def _no_path(model_log: list, loss_log: list) -> str:
    """Which break in the chain from the weights to the loss the probes show ("No gradients
    provided" is the same error for all of them)."""
    if not model_log:
        return ("the model is never called inside your step (model(images, training=True)), so "
                "the loss does not depend on its weights.")
    if not any(training for training, _ in model_log):
        return ("the predictions come from model.predict (or the model in inference mode "
                "outside the tape): model.predict returns NumPy, which the tape cannot follow. "
                "Call model(images, training=True) inside the `with tf.GradientTape()` block.")
    if not any(recording for _, recording in model_log):
        return ("the forward pass, model(images, training=True), runs outside the `with "
                "tf.GradientTape()` block, so the tape never saw it: move it inside.")
    if loss_log and not any(recording for _, recording in loss_log):
        return ("the loss is computed outside the `with tf.GradientTape()` block: compute it "
                "inside, from the predictions.")
    return ("the loss leaves TensorFlow (.numpy(), float(), np.*) before tape.gradient, so the "
            "tape cannot follow it back to the weights: keep it a tensor until the gradient is "
            "taken.")


def _diagnose_step(got, start, optimizer, model_log, loss_log, same) -> str | None:
    """The mistake that the probes and the optimizer's step count show, or None."""
    steps = int(optimizer.iterations.numpy())
    if same(got, start) and steps == 2:
        return ("the optimizer ran, but the weights did not move: the gradients are zero. Is "
                "it the gradient of the predictions (a softmax sums to 1, so its sum has no "
                "gradient) instead of the loss? tape.gradient(loss, "
                "model.trainable_variables).")
    if same(got, start):
        return ("the weights did not change: the gradients are never applied to the model's "
                "trainable variables (optimizer.apply_gradients).")
    if steps == 0:
        return ("the weights changed, but the optimizer you were given never ran (its step "
                "count is 0): update through it, optimizer.apply_gradients(zip(grads, "
                "model.trainable_variables)), not by hand (assign_sub) or with a new "
                "optimizer.")
    if steps != 2:
        return (f"the optimizer ran {steps} times in two calls: one step per call, one "
                "apply_gradients.")
    if not model_log:
        return "the model is never called on the images inside your step."
    if not any(training for training, _ in model_log):
        return ("the model runs in inference mode: call it with training=True inside the tape "
                "(BatchNormalization and Dropout behave differently when training).")
    if sum(training for training, _ in model_log) > steps:
        return ("the model runs more than once per step in training mode: each run moves "
                "BatchNormalization's statistics. Run model(images, training=True) once, "
                "inside the tape, and reuse its predictions (not twice).")
    if any(labels_first is False for labels_first, _ in loss_log):
        return "the loss's arguments are swapped: Keras losses take (y_true, y_pred)."
    if not loss_log:
        return ("the loss is not computed with the loss_fn you were given: call "
                "loss_fn(labels, predictions).")
    return None
