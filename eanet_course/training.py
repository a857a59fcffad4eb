"""Train an EANet from a config: logs, checkpoints, resuming, test metrics, distribution.

One run lives in one folder (by default ``EANET_HOME/runs/<dataset>-<digest of the config>``)::

    best.keras       the model with the best validation accuracy so far (replaced atomically)
    history.csv      one row per finished epoch, each epoch once
    tensorboard/     TensorBoard logs: ``tensorboard --logdir <run_dir>/tensorboard``
    backup/          the training state after each of the last two epochs (weights, optimizer)
    metrics.json     written last: the test metrics of best.keras, the history and the config
    config.json      the config the folder belongs to (``epochs`` aside)
    .lock            held while a run is training here

The rules (tested by ``tests/test_kill_matrix.py``):

* ``metrics.json`` marks a finished run. Calling :func:`train` again with as many epochs or
  fewer reports it and changes nothing; a larger ``epochs`` trains on from the last backup.
* Otherwise :func:`train` resumes from the newest readable backup (the one before it when the
  newest cannot be read; a message naming the folder to delete when none can). Rows of
  ``history.csv`` that the backup does not cover are dropped before training resumes: the epoch
  rows are written before the backup, so a resumed run logs every epoch exactly once.
* ``best.keras`` is replaced only by a checkpoint that this call wrote, that reads back whole,
  and whose validation accuracy beats the one of the ``best.keras`` already there (measured
  when the call starts). Leftover partial files from a crash or a full disk are deleted unread.
* One run at a time per folder: a second call is refused at once while the lock is held. The
  operating system releases the lock of a process that dies, so a crash never blocks a rerun.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import re
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import filelock
import keras
import tensorflow as tf

from eanet_course.config import EANetConfig
from eanet_course.data import make_datasets
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write, eanet_home
from eanet_course.validation import is_integer

__all__ = ["STRATEGIES", "RunFolderBusy", "TrainResult", "default_run_dir", "load_or_train",
           "make_strategy", "train"]

STRATEGIES = ("none", "mirrored", "multiworker")


class RunFolderBusy(OSError):
    """Another process is training in this run folder (it holds the folder's lock)."""


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` returns.

    ``history`` maps each metric (``loss``, ``accuracy``, ``top5_accuracy`` and their ``val_``
    twins) to one value per epoch, the epochs of earlier interrupted calls included;
    ``test_metrics`` holds the same metrics of ``model`` (the best checkpoint) on the test set.
    ``resumed_from`` is the number of epochs done before this call; ``already_finished`` is
    True when the run had finished before and this call changed nothing (``wall_time_s`` is
    then the finished run's).
    """

    model: keras.Model
    history: dict[str, list[float]]
    test_metrics: dict[str, float]
    run_dir: Path
    wall_time_s: float
    resumed_from: int = 0
    already_finished: bool = False


def _identity(config: EANetConfig) -> dict:
    """``config`` as a run folder records it. ``precision`` is left out when it is the default,
    ``"float32"``, so a float32 run keeps the folder and ``config.json`` it had before the field
    existed; a ``mixed_bfloat16`` run gets a folder of its own."""
    fields = dataclasses.asdict(config)
    if fields["precision"] == "float32":
        del fields["precision"]
    return fields


def default_run_dir(config: EANetConfig) -> Path:
    """The run folder of ``config``: the same config always maps to the same folder."""
    digest = hashlib.sha256(
        json.dumps(_identity(config), sort_keys=True).encode()).hexdigest()[:10]
    return eanet_home() / "runs" / f"{config.dataset}-{digest}"


def _fsync(path: Path) -> None:
    """Push ``path``'s bytes to the disk, so that a rename after it publishes a whole file."""
    with path.open("rb") as f:
        os.fsync(f.fileno())


class _Publish(keras.callbacks.Callback):
    """Moves the checkpoint that ``ModelCheckpoint`` has just finished writing into place.

    ``ModelCheckpoint`` writes ``partial``; once it has returned, the file is synced, read back
    as a whole zip archive, and ``os.replace`` swaps it in for ``final`` in one step, so an
    interruption mid-save leaves ``final`` as it was. Put it after the ``ModelCheckpoint``.
    :func:`train` deletes any ``partial`` left by an earlier process before training, so the
    one found here was written in this run.
    """

    def __init__(self, partial: Path, final: Path) -> None:
        super().__init__()
        self.partial, self.final = partial, final

    def on_epoch_end(self, epoch, logs=None):
        if not self.partial.exists():
            return
        _fsync(self.partial)
        try:
            with zipfile.ZipFile(self.partial) as archive:
                damaged = archive.testzip()
        except zipfile.BadZipFile as e:
            damaged = str(e)
        if damaged is not None:
            raise OSError(f"The checkpoint {self.partial} is damaged ({damaged}); "
                          f"{self.final} was kept. Is the disk full?")
        os.replace(self.partial, self.final)


class _Backup(keras.callbacks.Callback):
    """The training state (weights and optimizer) after each epoch, one file per epoch.

    ``epoch-0003.weights.h5`` is the state after 3 epochs. It is written to a hidden partial
    file, synced, then renamed, so a file under its final name is whole and its name is its
    epoch. The newest two are kept. (Keras's ``BackupAndRestore`` writes its weights and then
    its epoch counter in place: a kill during or between the two writes leaves files that
    cannot be read or that disagree.)
    """

    KEEP = 2
    _NAME = re.compile(r"epoch-(\d+)\.weights\.h5")

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder

    def states(self) -> list[tuple[int, Path]]:
        """``(epochs done, file)`` of every committed state, oldest first."""
        found = ((self._NAME.fullmatch(p.name), p) for p in self.folder.glob("epoch-*.weights.h5"))
        return sorted((int(m.group(1)), p) for m, p in found if m)

    def restore(self, model: keras.Model) -> int:
        """Load the newest readable state into ``model``; returns its epoch (0: none)."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        failures = []
        for epoch, path in reversed(self.states()):
            try:
                model.load_weights(path)
            except Exception as e:  # noqa: BLE001 - h5py raises OSError, KeyError or ValueError
                failures.append(f"{path.name}: {' '.join(str(e).split())[:200]}")
                warnings.warn(f"Cannot read the backup {path} ({failures[-1]}); "
                              "trying the one before it.", stacklevel=2)
                continue
            return epoch
        if failures:
            raise ValueError(
                f"No backup in {self.folder} can be read ({'; '.join(failures)}). Delete the "
                f"folder {self.folder} to train this run again from epoch 0 (best.keras is kept "
                "and replaced only by a better model).")
        return 0

    def on_epoch_end(self, epoch, logs=None):
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".epoch-{epoch + 1:04d}.partial.weights.h5"
        self.model.save_weights(partial, overwrite=True)
        _fsync(partial)
        os.replace(partial, self.folder / f"epoch-{epoch + 1:04d}.weights.h5")
        for _, old in self.states()[:-self.KEEP]:
            old.unlink()


class _SyncedCSVLogger(keras.callbacks.CSVLogger):
    """``CSVLogger`` whose rows reach the disk before the backup of the same epoch is written."""

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        os.fsync(self.csv_file.fileno())


def _read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as ``{metric: [one value per epoch]}`` (the ``epoch`` column dropped)."""
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    keys = [k for k in (rows[0] if rows else {}) if k != "epoch"]
    return {k: [float(row[k]) for row in rows] for k in keys}


def _whole(row: dict, fields: list[str]) -> bool:
    """Whether a ``csv.DictReader`` row has every field, numbers only, and an integer epoch."""
    if None in row or "epoch" not in fields:
        return False
    try:
        int(row["epoch"])
        for k in fields:
            float(row[k])
    except (TypeError, ValueError):
        return False
    return True


def _reconcile_history(path: Path, epochs_done: int) -> None:
    """Keep the whole rows of ``history.csv`` for epochs ``0 .. epochs_done - 1``, once each.

    Rows of later epochs (written before a crash stopped their backup), torn rows (a full disk)
    and repeats are dropped; the file is rewritten atomically, or removed when nothing is left.
    """
    if not path.exists():
        return
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = {int(row["epoch"]): row for row in rows
            if _whole(row, fields) and 0 <= int(row["epoch"]) < epochs_done}
    if not kept:
        path.unlink()
        return
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept[e] for e in sorted(kept))


def _finished(run_dir: Path, epochs: int) -> dict | None:
    """``metrics.json`` of a run that finished at least ``epochs`` epochs, else None."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or not {"epochs", "test", "wall_time_s"} <= metrics.keys():
        return None
    done = metrics["epochs"]
    if isinstance(done, int) and done >= epochs and (run_dir / "best.keras").is_file():
        return metrics
    return None


def _load_best(path: Path) -> keras.Model:
    """``best.keras``, or an error that says what to do when it is missing or unreadable."""
    if not path.exists():
        raise ValueError(f"{path} is missing although the backup covers every epoch; delete "
                         f"{path.parent / 'backup'} to train the run again.")
    try:
        return keras.saving.load_model(path)
    except Exception as e:  # noqa: BLE001 - a damaged zip fails in many ways inside Keras
        raise ValueError(f"{path} cannot be read ({' '.join(str(e).split())[:200]}); move it "
                         "away or delete it, then run again.") from e


def _claim(run_dir: Path, config: EANetConfig) -> None:
    """Refuse a folder that holds another config's run; record ``config`` in a new one."""
    mine = {k: v for k, v in _identity(config).items() if k != "epochs"}
    path = run_dir / "config.json"
    try:
        theirs = json.loads(path.read_text())
    except FileNotFoundError:
        with atomic_write(path) as f:
            json.dump(mine, f, indent=2)
        return
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        raise ValueError(f"{path} cannot be read; delete it if {run_dir} holds a run of this "
                         "config, or pass another logdir.")
    differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
    if differ:
        raise ValueError(f"{run_dir} holds a run of another config (it differs in "
                         f"{', '.join(differ)}). Pass another logdir, or delete {run_dir}.")


@contextlib.contextmanager
def _locked(run_dir: Path):
    """Create ``run_dir`` and hold its lock; raise :class:`RunFolderBusy` at once if taken."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(run_dir / ".lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunFolderBusy(
            f"{run_dir} is busy: another training holds its lock ({run_dir / '.lock'}). Wait "
            "for it to finish, or pass another logdir.") from None
    try:
        yield
    finally:
        lock.release()


def _remove_leftovers(run_dir: Path) -> None:
    """Delete the partial files of earlier processes (they are never read)."""
    for path in [run_dir / ".partial-best.keras", *run_dir.glob(".*.tmp"),
                 *(run_dir / "backup").glob(".*.partial.weights.h5")]:
        path.unlink(missing_ok=True)


def _worker_dir(run_dir: Path, strategy: tf.distribute.Strategy | None) -> Path:
    """The folder of this process: ``run_dir``, or a subfolder for a non-chief worker."""
    if strategy is None or strategy.extended.should_checkpoint:
        return run_dir
    resolver = strategy.cluster_resolver
    return run_dir / "workers" / f"{resolver.task_type}-{resolver.task_id}"


def _validate(config, epochs, strategy, callbacks, verbose, run_dir: Path | None) -> None:
    """Every argument of :func:`train` checked before anything is created."""
    if not isinstance(config, EANetConfig):
        raise ValueError(f"config must be an EANetConfig (see get_profile), got {type(config)}.")
    if epochs is not None and (not is_integer(epochs) or epochs < 1):
        raise ValueError(f"epochs={epochs!r} must be a positive integer.")
    if strategy is not None and not isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy must be a tf.distribute.Strategy or None, got {strategy!r}; "
                         "make_strategy(name) builds one.")
    if any(not isinstance(c, keras.callbacks.Callback) for c in callbacks or []):
        raise ValueError("callbacks must be a list of keras.callbacks.Callback.")
    if verbose not in ("auto", 0, 1, 2):
        raise ValueError(f"verbose={verbose!r} must be 'auto', 0, 1 or 2.")
    if run_dir is not None and run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"logdir {run_dir} is a file; pass a folder.")


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
        strategy: a ``tf.distribute`` strategy (see :func:`make_strategy`). Under
            ``MultiWorkerMirroredStrategy`` the chief uses ``logdir`` and every other worker
            ``logdir/workers/<task>-<index>``.
        epochs: overrides ``config.epochs``; more than a finished run's trains it on.
        verbose: passed to ``fit`` (``"auto"`` shows Keras's progress bars).
        callbacks: more Keras callbacks, called after the course's own.

    Returns:
        A :class:`TrainResult`; the test metrics are also written to ``metrics.json``.

    Raises:
        ValueError: a bad argument, a folder of another config, or no readable backup.
        RunFolderBusy: another process is training in the folder.
    """
    run_dir = Path(logdir).expanduser() if logdir else None
    _validate(config, epochs, strategy, callbacks, verbose, run_dir)
    epochs = config.epochs if epochs is None else epochs
    run_dir = _worker_dir(run_dir or default_run_dir(config), strategy)
    best_path, csv_path = run_dir / "best.keras", run_dir / "history.csv"
    partial_best = run_dir / ".partial-best.keras"

    with _locked(run_dir):
        _claim(run_dir, config)
        if finished := _finished(run_dir, epochs):
            return TrainResult(_load_best(best_path), _read_history(csv_path),
                               finished["test"], run_dir, finished["wall_time_s"],
                               finished["epochs"], already_finished=True)
        _remove_leftovers(run_dir)
        # From here the folder changes: it is unfinished until a new metrics.json is written.
        (run_dir / "metrics.json").unlink(missing_ok=True)
        start = time.perf_counter()
        keras.utils.set_random_seed(config.seed)
        data = make_datasets(config)
        backup = _Backup(run_dir / "backup")
        with strategy.scope() if strategy else contextlib.nullcontext():
            model = compile_model(build_eanet(config), config)
            done = backup.restore(model)  # builds the optimizer: its variables are mirrored too
        _reconcile_history(csv_path, done)
        if done < epochs:
            threshold = None
            if best_path.exists():  # the best so far, measured, is what a new one must beat
                threshold = _load_best(best_path).evaluate(
                    data.validation, verbose=0, return_dict=True)["accuracy"]
            model.fit(
                data.train,
                validation_data=data.validation,
                initial_epoch=done,
                epochs=epochs,
                shuffle=False,  # the pipeline shuffles, with the config's seed
                verbose=verbose,
                callbacks=[
                    keras.callbacks.ModelCheckpoint(
                        str(partial_best), monitor="val_accuracy", mode="max",
                        save_best_only=True, initial_value_threshold=threshold),
                    _Publish(partial_best, best_path),
                    _SyncedCSVLogger(str(csv_path), append=True),  # the row, then the backup
                    backup,
                    keras.callbacks.TensorBoard(str(run_dir / "tensorboard")),
                    *(callbacks or []),
                ],
            )
        best = _load_best(best_path)
        test_metrics = {k: float(v) for k, v in
                        best.evaluate(data.test, verbose=0, return_dict=True).items()}
        history = _read_history(csv_path)
        wall = time.perf_counter() - start
        with atomic_write(run_dir / "metrics.json") as f:
            json.dump({"test": test_metrics, "history": history,
                       "epochs": len(history.get("loss", [])), "wall_time_s": wall,
                       "config": dataclasses.asdict(config)}, f, indent=2)
    return TrainResult(best, history, test_metrics, run_dir, wall, done)


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
