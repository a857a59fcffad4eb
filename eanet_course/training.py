"""Train an EANet from a config: logs, checkpoints, resuming, test metrics, distribution.

One run lives in one folder, by default ``EANET_HOME/runs/<profile>-<dataset>-...`` (see
:func:`eanet_course.runs.run_name`): ``best.keras``, ``history.csv``, ``tensorboard/``,
``backup/``, ``metrics.json`` and ``config.json``. Everything about that folder (checked before
anything is made, the lock, atomic writes, backups, publishing the best model, reconciling the
history, reporting a finished run) is :mod:`eanet_course.runs`; this module keeps the training.

* A finished run is reported and changes nothing; a larger ``epochs`` trains it on.
* An interrupted run resumes from its newest readable backup, each epoch logged once.
* ``best.keras`` is only ever replaced by a better model; one process at a time per folder.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path

import keras
import tensorflow as tf

from eanet_course import runs
from eanet_course.config import EANetConfig
from eanet_course.data import Datasets, make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.runs import RunFolderBusy, default_run_dir
from eanet_course.runs import RunResult as TrainResult
from eanet_course.validation import is_integer

__all__ = ["STRATEGIES", "RunFolderBusy", "TrainResult", "default_run_dir", "load_or_train",
           "make_strategy", "train"]

STRATEGIES = ("none", "mirrored", "multiworker")

#: Seeds that ``keras.utils.set_random_seed`` accepts (NumPy's legacy seeding: 32 bits).
SEED_LIMIT = 2**32


def _claim(run_dir: Path, config: EANetConfig) -> None:
    """Refuse a folder that holds another config's run; record ``config`` in a new one."""
    runs.claim(run_dir, runs.identity(config))


class _CourseRecipe(runs.Recipe):
    """The course's recipe: ``build_eanet`` on ``make_datasets`` (augmentation in ``tf.data``)."""

    data: Datasets  # made by build, after the seed is set

    def __init__(self, config: EANetConfig, strategy, verbose) -> None:
        self.config, self.strategy, self.verbose = config, strategy, verbose

    def scope(self):
        return self.strategy.scope() if self.strategy else contextlib.nullcontext()

    def build(self) -> keras.Model:
        keras.utils.set_random_seed(self.config.seed)
        self.data = make_datasets(self.config)
        return compile_model(build_eanet(self.config), self.config)

    def fit(self, model, initial_epoch, epochs, callbacks) -> None:
        model.fit(self.data.train, validation_data=self.data.validation,
                  initial_epoch=initial_epoch, epochs=epochs,
                  shuffle=False,  # the pipeline shuffles, with the config's seed
                  verbose=self.verbose, callbacks=callbacks)

    def evaluate(self, model, split) -> dict[str, float]:
        return model.evaluate(getattr(self.data, split), verbose=0, return_dict=True)


def _worker_dir(run_dir: Path, strategy: tf.distribute.Strategy | None) -> Path:
    """The folder of this process: ``run_dir``, or a subfolder for a non-chief worker."""
    if strategy is None or strategy.extended.should_checkpoint:
        return run_dir
    resolver = strategy.cluster_resolver
    return run_dir / "workers" / f"{resolver.task_type}-{resolver.task_id}"


def _validate(config, epochs, strategy, callbacks, verbose, logdir) -> Path | None:
    """Every argument of :func:`train` checked before anything is created; the run folder."""
    if not isinstance(config, EANetConfig):
        raise ValueError(f"config must be an EANetConfig (see get_profile), got {type(config)}.")
    if not config.seed < SEED_LIMIT:
        raise ValueError(f"seed={config.seed} must be below 2**32 = {SEED_LIMIT} (NumPy's "
                         "seeds are 32-bit); pass a smaller seed.")
    if epochs is not None and (not is_integer(epochs) or epochs < 1):
        raise ValueError(f"epochs={epochs!r} must be a positive integer.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy or None, got {strategy!r}; "
                         "make_strategy(name) builds one.")
    if any(not isinstance(c, keras.callbacks.Callback) for c in callbacks or []):
        raise ValueError("callbacks must be a list of keras.callbacks.Callback.")
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose={verbose!r} must be 'auto', 0, 1 or 2.")
    return runs.check_folder(logdir, "logdir") if logdir else None


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
        logdir: the run folder; default :func:`default_run_dir`. An existing folder must be
            empty or the course's.
        strategy: a ``tf.distribute`` strategy (see :func:`make_strategy`). Under
            ``MultiWorkerMirroredStrategy`` the chief uses ``logdir`` and every other worker
            ``logdir/workers/<task>-<index>``.
        epochs: overrides ``config.epochs``; more than a finished run's trains it on.
        verbose: passed to ``fit`` (``"auto"`` shows Keras's progress bars).
        callbacks: more Keras callbacks, called after the course's own.

    Returns:
        A :class:`TrainResult`; the test metrics are also written to ``metrics.json``.

    Raises:
        ValueError: a bad argument, a folder that is not the course's or holds another config,
            a damaged file in it (named, with the fix), or no readable backup.
        RunFolderBusy: another process is training in the folder.
    """
    run_dir = _validate(config, epochs, strategy, callbacks, verbose, logdir)
    epochs = config.epochs if epochs is None else epochs
    shared = run_dir or default_run_dir(config)
    run_dir = _worker_dir(shared, strategy)
    if run_dir != shared:  # a worker marks the shared folder before it makes its own inside
        runs.prepare(shared, "logdir")
    with runs.hold(run_dir, "logdir") as folder:
        _claim(folder, config)
        return runs.train_in(folder, _CourseRecipe(config, strategy, verbose), epochs,
                             record=dataclasses.asdict(config), callbacks=callbacks or [])


def load_or_train(config: EANetConfig) -> keras.Model:
    """The best model of ``config``'s default run, training (or finishing) it first if needed."""
    return train(config).model


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras 3's ``fit`` gives it.

    Keras 3.15's TensorFlow trainer reduces a nested batch at once when it builds the model, and
    scalar metrics with ``axis=0`` after each step; the collective strategy accepts neither
    (keras-team/keras#20585). This reduces each value on its own, over replicas only for
    scalars, which is what Keras means.
    """

    def reduce(self, reduce_op, value, axis):
        def one(v):
            rank = self.experimental_local_results(v)[0].shape.rank
            return super(_MultiWorkerStrategy, self).reduce(reduce_op, v, axis if rank else None)

        return tf.nest.map_structure(one, value)


def make_strategy(name: str, replicas: int | None = None) -> tf.distribute.Strategy | None:
    """The ``tf.distribute`` strategy called ``name`` (one of :data:`STRATEGIES`).

    ``"none"``: None (TensorFlow's default, one device). ``"mirrored"``: synchronous data
    parallelism over ``replicas`` local GPUs (default: all of them), or, on a machine without a
    GPU, over the CPU split into ``replicas`` logical devices (default 2; useful to learn and
    test the distributed path, not for speed). ``"multiworker"``: one worker of the cluster
    that ``$TF_CONFIG`` describes; start the same command on every worker.

    Call it before anything else uses TensorFlow: logical devices and the cluster are set when
    TensorFlow starts.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {list(STRATEGIES)}.")
    if replicas is not None and (name != "mirrored" or not is_integer(replicas) or replicas < 1):
        raise ValueError(f"replicas={replicas!r}: a positive integer, for strategy 'mirrored' "
                         "only.")
    if name == "none":
        return None
    if name == "multiworker":
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
        except KeyError:
            raise ValueError("strategy 'multiworker' reads the cluster from $TF_CONFIG, which "
                             "is not set or has no 'cluster'; see the README's run folders "
                             "section for an example.") from None
        except ValueError as e:
            raise ValueError(f"$TF_CONFIG is not valid JSON ({e}).") from None
        if not isinstance(cluster, dict) or not cluster:
            raise ValueError("$TF_CONFIG's 'cluster' must map job names to address lists.")
        return _MultiWorkerStrategy()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        count = replicas or len(gpus)
        if count > len(gpus):
            raise ValueError(f"replicas={count} but this machine has {len(gpus)} GPU(s).")
        return tf.distribute.MirroredStrategy([f"/gpu:{i}" for i in range(count)])
    count = replicas or 2
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or [None]) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count)
        except RuntimeError:
            raise ValueError("TensorFlow has already started, so the CPU can no longer be split "
                             "into logical devices: call make_strategy first.") from None
    return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(count)])
