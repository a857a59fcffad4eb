"""Train an EANet from a config: logs, checkpoints, resuming, test metrics.

One run lives in one folder (by default ``EANET_HOME/runs/<dataset>-<digest of the config>``)::

    best.keras       the model with the best validation accuracy so far (replaced atomically)
    history.csv      one row per finished epoch (CSVLogger)
    tensorboard/     TensorBoard logs: ``tensorboard --logdir <run_dir>/tensorboard``
    backup/          BackupAndRestore's state while a run is unfinished
    metrics.json     the test metrics of best.keras, the history and the config

Calling :func:`train` again on an interrupted run resumes at its last finished epoch.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from eanet_course.config import EANetConfig
from eanet_course.data import make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write, eanet_home

__all__ = ["TrainResult", "default_run_dir", "load_or_train", "train"]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    ``history`` maps each metric (``loss``, ``accuracy``, ``top5_accuracy`` and their ``val_``
    twins) to one value per epoch, the epochs of earlier interrupted calls included;
    ``test_metrics`` holds the same metrics of ``model`` (the best checkpoint) on the test set.
    """

    model: keras.Model
    history: dict[str, list[float]]
    test_metrics: dict[str, float]
    run_dir: Path
    wall_time_s: float


def default_run_dir(config: EANetConfig) -> Path:
    """The run folder of ``config``: the same config always maps to the same folder."""
    digest = hashlib.sha256(
        json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:10]
    return eanet_home() / "runs" / f"{config.dataset}-{digest}"


class _Publish(keras.callbacks.Callback):
    """Moves the checkpoint that ``ModelCheckpoint`` has just finished writing into place.

    ``ModelCheckpoint`` writes ``partial``; once it has returned, ``os.replace`` swaps the whole
    file in for ``final`` in one step, so an interruption mid-save leaves ``final`` as it was.
    Put it after the ``ModelCheckpoint`` in the callback list.
    """

    def __init__(self, partial: Path, final: Path) -> None:
        super().__init__()
        self.partial, self.final = partial, final

    def on_epoch_end(self, epoch, logs=None):
        if self.partial.exists():
            os.replace(self.partial, self.final)


def _read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as ``{metric: [one value per epoch]}`` (the ``epoch`` column dropped)."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(row[k]) for row in rows] for k in keys}


def train(
    config: EANetConfig,
    *,
    logdir: str | Path | None = None,
    strategy: tf.distribute.Strategy | None = None,
    epochs: int | None = None,
    verbose: str | int = "auto",
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainResult:
    """Train ``build_eanet(config)`` on ``make_datasets(config)``, resuming an unfinished run.

    Args:
        config: data, model and recipe (AdamW, weight decay, label smoothing).
        logdir: the run folder; default :func:`default_run_dir`.
        strategy: a ``tf.distribute`` strategy to build and train the model under.
        epochs: overrides ``config.epochs``.
        verbose: passed to ``fit`` (``"auto"`` shows Keras's progress bars).
        callbacks: more Keras callbacks, called after the course's own.

    Returns:
        A :class:`TrainResult`; the test metrics are also written to ``metrics.json``.
    """
    epochs = config.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be a positive integer.")
    run_dir = Path(logdir).expanduser() if logdir else default_run_dir(config)
    run_dir.mkdir(parents=True, exist_ok=True)
    best_path, csv_path = run_dir / "best.keras", run_dir / "history.csv"
    partial_best = run_dir / ".partial-best.keras"
    backup = keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True)
    resuming = (run_dir / "backup").exists()
    earlier = _read_history(csv_path) if resuming else {}

    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    data = make_datasets(config)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = compile_model(build_eanet(config), config)
    model.fit(
        data.train,
        validation_data=data.validation,
        epochs=epochs,
        shuffle=False,  # the pipeline shuffles, with the config's seed
        verbose=verbose,
        callbacks=[
            backup,
            keras.callbacks.CSVLogger(str(csv_path), append=resuming),
            keras.callbacks.ModelCheckpoint(
                str(partial_best), monitor="val_accuracy", mode="max", save_best_only=True,
                # On resume, only a model better than the best so far replaces best.keras.
                initial_value_threshold=max(earlier.get("val_accuracy") or [None]),
            ),
            _Publish(partial_best, best_path),
            keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
            *(callbacks or []),
        ],
    )
    best = keras.saving.load_model(best_path)
    test_metrics = {k: float(v) for k, v in
                    best.evaluate(data.test, verbose=0, return_dict=True).items()}
    history = _read_history(csv_path)
    wall = time.perf_counter() - start
    with atomic_write(run_dir / "metrics.json") as f:
        json.dump({"test": test_metrics, "history": history, "epochs": len(history.get("loss", [])),
                   "wall_time_s": wall, "config": dataclasses.asdict(config)}, f, indent=2)
    return TrainResult(best, history, test_metrics, run_dir, wall)


def load_or_train(config: EANetConfig) -> keras.Model:
    """The best model of ``config``'s finished default run, training it first if there is none."""
    run_dir = default_run_dir(config)
    best = run_dir / "best.keras"
    if best.exists() and not (run_dir / "backup").exists():
        return keras.saving.load_model(best)
    return train(config).model
