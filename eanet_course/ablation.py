"""The 2x2 ablation behind the Keras 3 port's 17.26%: clipping augmentation x weight decay.

``python -m eanet_course ablation --profile paper`` trains four EANets with one profile's model
and budget and prints their test top-1 and top-5 accuracy beside the published numbers:

* **augmentation**: ``"keras3-port"``, the port's order (``Normalization`` then the random
  layers, inside the model; ``RandomContrast`` clips the normalized values to ``[0, 255]`` in
  training only, :func:`eanet_course.data.keras_example_augmentation`), fit on NumPy arrays
  as the example does; or ``"course"``, the course's pipeline (augmentation on raw pixels,
  then normalization, in ``tf.data``: :func:`eanet_course.training.train`);
* **weight decay** (Keras 3 ``AdamW`` multiplies it by the learning rate): ``1e-4`` as the
  port kept it, or ``1e-4 / learning_rate`` (``0.1`` at ``1e-3``), the 2021 recipe's decay of
  ``1e-4`` per step.

Both arms keep the model with the best validation accuracy and report its test metrics. The
port arm holds out the last ``validation_split`` of the training images, as the example's
``fit(validation_split=...)`` does; the course arm a seeded random share of the same size.
Each run has its own folder under ``--out``, kept by :mod:`eanet_course.runs` (atomic backups,
the best model replaced only by a better one, resumed after a crash); a finished run is
reported from its ``result.json``, not retrained, so an interrupted ablation continues with the
run it was in.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import keras

from eanet_course import runs
from eanet_course.bench.keras_example import build_keras_example
from eanet_course.config import EANetConfig
from eanet_course.data import keras_example_augmentation, load_dataset
from eanet_course.models import compile_model
from eanet_course.paths import atomic_write, eanet_home
from eanet_course.training import train
from eanet_course.validation import is_integer

__all__ = ["AUGMENTATIONS", "PUBLISHED", "Arm", "arms", "run", "format_table"]

#: The two augmentation pipelines compared.
AUGMENTATIONS: tuple[str, ...] = ("keras3-port", "course")

#: The decay per step of the 2021 recipe (TensorFlow Addons' AdamW, not scaled by the rate).
DECAY_PER_STEP_2021 = 1e-4

#: Published test accuracy on CIFAR-100 (keras.io's EANet example, its two versions), in %.
PUBLISHED: dict[str, dict[str, float | None]] = {
    "Keras example 2021 (keras.io)": {"top1": 43.91, "top5": 74.71},
    "Keras example, Keras 3 port (keras.io)": {"top1": 17.26, "top5": 38.94},
}


@dataclass(frozen=True)
class Arm:
    """One of the four runs: an augmentation pipeline and an ``AdamW`` weight decay."""

    augmentation: str
    weight_decay: float
    label: str

    @property
    def name(self) -> str:
        """The run's folder name, e.g. ``keras3-port_wd0.0001``."""
        return f"{self.augmentation}_wd{self.weight_decay:g}"


def arms(config: EANetConfig) -> list[Arm]:
    """The four runs for ``config``: both pipelines x both weight decays, the port's first."""
    decays = [(DECAY_PER_STEP_2021, "1e-4 as the port kept it"),
              (DECAY_PER_STEP_2021 / config.learning_rate,
               f"{DECAY_PER_STEP_2021 / config.learning_rate:.3g} = 1e-4 per step, as in 2021")]
    return [Arm(augmentation, decay, f"{augmentation}, weight_decay {label}")
            for augmentation in AUGMENTATIONS for decay, label in decays]


class _PortRecipe(runs.Recipe):
    """The Keras 3 example's recipe: augmentation inside the model, ``fit`` on NumPy arrays.

    The example's model, data and ``fit`` call (``validation_split``: the last share of the
    training images) are kept; its ``BackupAndRestore`` and ``ModelCheckpoint`` are replaced by
    the run folder's atomic backups and best-model publishing (:mod:`eanet_course.runs`).
    """

    def __init__(self, config: EANetConfig, verbose) -> None:
        self.config, self.verbose = config, verbose

    def build(self) -> keras.Model:
        config = self.config
        (x_train, y_train), (x_test, y_test) = load_dataset(config.dataset)
        self.n_fit = len(x_train) - int(round(len(x_train) * config.validation_split))
        self.x_train, self.x_test = x_train.astype("float32"), x_test.astype("float32")
        self.y_train, self.y_test = (keras.utils.to_categorical(y, config.num_classes)
                                     for y in (y_train, y_test))
        keras.utils.set_random_seed(config.seed)
        augment = keras_example_augmentation(x_train[:self.n_fit], config.dataset, config.seed)
        return compile_model(build_keras_example(config, augment), config)

    def fit(self, model, initial_epoch, epochs, callbacks) -> None:
        model.fit(self.x_train, self.y_train, batch_size=self.config.batch_size,
                  initial_epoch=initial_epoch, epochs=epochs,
                  validation_split=self.config.validation_split, verbose=self.verbose,
                  callbacks=callbacks)

    def evaluate(self, model, split) -> dict[str, float]:
        x, y = ((self.x_train[self.n_fit:], self.y_train[self.n_fit:]) if split == "validation"
                else (self.x_test, self.y_test))
        return model.evaluate(x, y, batch_size=self.config.batch_size, verbose=0,
                              return_dict=True)


def _train_port(config: EANetConfig, run_dir: Path, epochs: int, verbose) -> dict[str, float]:
    """The port arm in its run folder; the test metrics of its best-validation model."""
    with runs.hold(run_dir, "--out") as folder:
        runs.claim(folder, {**runs.identity(config), "recipe": "keras-example"})
        return runs.train_in(folder, _PortRecipe(config, verbose), epochs,
                             record=dataclasses.asdict(config)).test_metrics


def _read_result(path: Path, epochs: int) -> dict | None:
    """A finished arm's ``result.json`` (checked), None if there is none yet."""
    fix = f"delete it to measure that run again from its folder {path.parent}."
    try:
        result = runs.read_json(path, "an ablation run's result.json", fix)
    except FileNotFoundError:
        return None
    if not (isinstance(result, dict) and isinstance(result.get("arm"), dict)
            and type(result.get("epochs")) is int
            and all(type(result.get(k)) is float and 0 <= result[k] <= 1
                    for k in ("top1", "top5")) and type(result.get("loss")) is float):
        raise ValueError(f"{path} is not an ablation run's result (it needs 'arm', 'epochs', "
                         f"'top1', 'top5' and 'loss'); {fix}")
    if result["epochs"] != epochs:
        raise ValueError(f"{path.parent} holds a finished run of {result['epochs']} epochs, "
                         f"not {epochs}; pass another --out folder (or delete that one).")
    return result


def _run_arm(config: EANetConfig, arm: Arm, out: Path, epochs: int, verbose) -> dict:
    run_dir = out / arm.name
    done = run_dir / "result.json"
    if result := _read_result(done, epochs):
        return result
    arm_config = config.replace(weight_decay=arm.weight_decay)
    if arm.augmentation == "course":
        metrics = train(arm_config, logdir=run_dir, epochs=epochs, verbose=verbose).test_metrics
    else:
        metrics = _train_port(arm_config, run_dir, epochs, verbose)
    result = {"arm": dataclasses.asdict(arm), "epochs": epochs,
              "top1": float(metrics["accuracy"]), "top5": float(metrics["top5_accuracy"]),
              "loss": float(metrics["loss"])}
    with atomic_write(done) as f:
        json.dump(result, f, indent=2)
    return result


def format_table(config: EANetConfig, results: list[dict]) -> str:
    """The four runs' test accuracy, then the published numbers, as a text table."""
    epochs = results[0]['epochs']
    title = f"this ablation ({config.dataset}, {epochs} epoch{'s' if epochs != 1 else ''}):"
    lines = [f"{title:62s}{'top-1':>8s}{'top-5':>8s}"]
    for result in results:
        lines.append(f"{result['arm']['label']:62s}{result['top1']:>8.2%}{result['top5']:>8.2%}")
    lines.append("published, CIFAR-100, 50 epochs:")
    for name, numbers in PUBLISHED.items():
        lines.append(f"{name:62s}{numbers['top1']:>7.2f}%{numbers['top5']:>7.2f}%")
    return "\n".join(lines)


def run(
    config: EANetConfig,
    epochs: int | None = None,
    out_dir: str | Path | None = None,
    verbose: str | int = 2,
) -> list[dict]:
    """Train (or read back) the four runs, print the table, write ``ablation.json``.

    Args:
        config: the model, data and budget (``get_profile("paper")`` is the Keras example's).
        epochs: overrides ``config.epochs`` for every run.
        out_dir: the runs' folder; default
            ``EANET_HOME/ablation/<dataset>-<N>patches-<epochs>epochs``.
        verbose: passed to ``fit``.

    Returns:
        One dict per run, in :func:`arms` order: ``arm``, ``epochs``, ``top1``, ``top5``,
        ``loss`` (test metrics of the best-validation model).
    """
    if not isinstance(config, EANetConfig):
        raise ValueError(f"config must be an EANetConfig (see get_profile), got {type(config)}.")
    if epochs is not None and (not is_integer(epochs) or epochs < 1):
        raise ValueError(f"epochs={epochs!r} must be a positive integer.")
    epochs = config.epochs if epochs is None else epochs
    out = (runs.check_folder(out_dir, "--out") if out_dir else
           eanet_home() / "ablation" /
           f"{config.dataset}-{config.num_patches}patches-{epochs}epochs")
    results = []
    with runs.hold(out, "--out"):
        for arm in arms(config):
            print(f"\n== {arm.label} ({out / arm.name})")
            results.append(_run_arm(config, arm, out, epochs, verbose))
        table = format_table(config, results)
        print("\n" + table)
        with atomic_write(out / "ablation.json") as f:
            json.dump({"config": dataclasses.asdict(config), "runs": results,
                       "published": PUBLISHED}, f, indent=2)
    print(f"\nWrote {out / 'ablation.json'}")
    return results
