"""Run folders: everything about the folder a training (or a benchmark) writes into.

Used by :func:`eanet_course.training.train`, both arms of :mod:`eanet_course.ablation` and
``bench limits``. A training's folder holds::

    best.keras       the model with the best validation accuracy so far (replaced atomically)
    history.csv      one row per finished epoch, each epoch once
    tensorboard/     TensorBoard logs: ``tensorboard --logdir <run_dir>/tensorboard``
    backup/          the training state after each of the last two epochs (weights, optimizer)
    metrics.json     written last: the test metrics of best.keras, the history and the config
    config.json      what the folder belongs to (the config, ``epochs`` aside)
    .eanet-course    marks a folder the course made
    .lock            held while a process writes here

The rules (tested by ``tests/test_kill_matrix.py`` and ``tests/test_ablation_kill_matrix.py``):

* **Checked before anything is made.** A folder path that is not valid UTF-8, that is a file,
  or that exists, holds files and was not made by the course is refused (:func:`check_folder`)
  before a file is written.
* **Finished is reported, not redone.** ``metrics.json`` marks a finished run; a call with as
  many epochs or fewer reports it and changes nothing; more epochs train on from the backup.
* **Resumed from the newest readable backup** (the one before it when the newest cannot be
  read; a message naming the folder to delete when none can). ``history.csv`` is reconciled
  with it: rows the backup does not cover are dropped, and a history that lacks a row the
  backup covers is refused with the fix, never silently shortened.
* **best.keras is replaced only by better.** Only by a checkpoint that this call wrote, that
  reads back whole, and whose validation accuracy beats the one of the ``best.keras`` already
  there (measured when the call starts). Partial files of a crash are deleted unread.
* **One process at a time per folder:** a second is refused at once while the lock is held.
  The operating system releases the lock of a process that dies.
* **Every file read is bounded and regular:** a pipe, a device or an oversized file is refused
  before it is read (:func:`read_json`, :func:`load_model`, the history, the backups).
"""

from __future__ import annotations

import abc
import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import time
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import filelock
import keras

from eanet_course.config import PROFILES, EANetConfig
from eanet_course.paths import atomic_write, eanet_home
from eanet_course.validation import FileRefused, open_regular, read_bounded

__all__ = ["BACKUP_LIMIT", "HISTORY_LIMIT", "JSON_LIMIT", "KERAS_MEMBER_LIMITS", "MARKER",
           "Backup", "Recipe", "RunFolderBusy", "RunResult", "check_folder", "check_keras_file",
           "claim", "default_run_dir", "hold", "identity", "keep_results", "load_model",
           "prepare", "read_history", "read_json", "run_name", "train_in"]

#: The file that marks a folder the course made (any folder under ``EANET_HOME`` is one too).
MARKER = ".eanet-course"
#: The most bytes read from a JSON file the course writes (config, metrics, results).
JSON_LIMIT = 50_000_000
#: The most bytes of a ``history.csv``: one short line per epoch.
HISTORY_LIMIT = 10_000_000
#: The largest backup file (weights and optimizer state). The paper profile's is a few MB.
BACKUP_LIMIT = 1 << 30
#: The largest declared size of each member of a ``.keras`` file (any other member: 1 MiB).
#: The course's models write a config of some tens of KB and weights of a few MB (the paper
#: profile's); Keras's own guard starts at 256 MiB per member and 4 GiB in all.
KERAS_MEMBER_LIMITS: dict[str, int] = {"config.json": 4 << 20, "metadata.json": 1 << 20,
                                       "model.weights.h5": 1 << 30}
_KERAS_OTHER_MEMBER_LIMIT = 1 << 20
_KERAS_MAX_MEMBERS = 64
#: All members together: what the named ones may hold, and 8 MiB of others.
_KERAS_TOTAL_LIMIT = sum(KERAS_MEMBER_LIMITS.values()) + (8 << 20)


class RunFolderBusy(OSError):
    """Another process is writing in this run folder (it holds the folder's lock)."""


# -- the folder: checked, marked, locked ------------------------------------------------------

def _is_course_folder(path: Path) -> bool:
    """Whether the course made ``path``: it holds :data:`MARKER` or a ``config.json`` (the run
    folders made before the marker existed), or it lies under ``EANET_HOME``."""
    if (path / MARKER).is_file() or (path / "config.json").is_file():
        return True
    home = Path(os.environ.get("EANET_HOME") or Path.home() / ".cache" / "eanet-course")
    return path.resolve().is_relative_to(home.expanduser().resolve())


def check_folder(path: str | os.PathLike, flag: str = "--logdir") -> Path:
    """``path`` as a ``Path`` if the course may write there; creates nothing.

    Refused with a ``ValueError`` naming ``flag`` and the fix: a path that is not valid UTF-8,
    a file, or an existing folder that holds files and was not made by the course (an empty
    folder is fine).
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(text).decode("utf-8", "backslashreplace")
        raise ValueError(f"{flag} {shown} is not valid UTF-8; pass a folder whose name is.") \
            from None
    folder = Path(text).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{flag} {folder} is a file; pass a folder.")
    if folder.is_dir() and any(folder.iterdir()) and not _is_course_folder(folder):
        raise ValueError(f"{flag} {folder} holds files that the course did not write (it has no "
                         f"{MARKER}); pass a new or empty folder.")
    return folder


def prepare(path: str | os.PathLike, flag: str = "--logdir") -> Path:
    """Check ``path`` (:func:`check_folder`), then create it and mark it as the course's.

    The marker is created in place with ``O_EXCL``, not through a temporary file: between the
    ``mkdir`` and the marker the folder is empty, so another process checking it at that moment
    (the workers of one cluster share a run folder) never sees an unmarked folder with files.
    Only the marker's existence counts, so a partly written one is still a marker.
    """
    folder = check_folder(path, flag)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(folder / MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return folder
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write("Written by the EANet course (python -m eanet_course): a folder it may "
                "write into.\n")
    return folder


@contextlib.contextmanager
def hold(path: str | os.PathLike, flag: str = "--logdir") -> Iterator[Path]:
    """:func:`prepare` ``path``, then hold its lock while the ``with`` block runs.

    Raises :class:`RunFolderBusy` at once if another process holds the lock. The folder is
    marked before the lock is taken, so a folder whose lock is held is always the course's.
    """
    folder = prepare(path, flag)
    lock = filelock.FileLock(folder / ".lock", timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise RunFolderBusy(
            f"{folder} is busy: another process holds its lock ({folder / '.lock'}). Wait for "
            f"it to finish, or pass another {flag.lstrip('-')}.") from None
    try:
        yield folder
    finally:
        lock.release()


def read_json(path: Path, what: str, fix: str, limit: int = JSON_LIMIT):
    """The JSON value in ``path`` (a regular file of at most ``limit`` bytes).

    ``FileNotFoundError`` if it does not exist; a ``ValueError`` that names ``path``, ``what``
    it should be and the ``fix`` if it is not a regular file, is too large, or is not JSON.
    """
    raw = read_bounded(path, limit, what, fix)
    try:
        return json.loads(raw)
    except ValueError:
        raise FileRefused(f"{path} is not JSON, so it cannot be {what}; {fix}") from None


def claim(folder: Path, identity: dict) -> None:
    """Refuse a folder that holds another run (``config.json`` differs); record ``identity``."""
    path = folder / "config.json"
    fix = f"delete it if {folder} holds a run of this config, or pass another folder."
    try:
        theirs = read_json(path, "a run's config.json", fix)
    except FileNotFoundError:
        with atomic_write(path) as f:
            json.dump(identity, f, indent=2)
        return
    if not isinstance(theirs, dict):
        raise ValueError(f"{path} does not hold a config; {fix}")
    differ = sorted(k for k in identity.keys() | theirs.keys()
                    if identity.get(k) != theirs.get(k))
    if differ:
        raise ValueError(f"{folder} holds a run of another config (it differs in "
                         f"{', '.join(differ)}). Pass another folder, or delete {folder}.")


# -- names -------------------------------------------------------------------------------------

def _fields(config: EANetConfig) -> dict:
    """``config``'s fields, ``precision`` left out when it is the default, ``"float32"``, so a
    float32 run keeps the digest and ``config.json`` it had before the field existed."""
    fields = dataclasses.asdict(config)
    if fields["precision"] == "float32":
        del fields["precision"]
    return fields


def identity(config: EANetConfig) -> dict:
    """``config`` as a run folder's ``config.json`` records it: ``epochs`` aside, since a
    finished run may be trained on for more epochs in the same folder."""
    return {k: v for k, v in _fields(config).items() if k != "epochs"}


def _tag(key: str, value) -> str:
    """A field that differs from its profile, short: ``seed3``, ``lr0.01``, ``mixedbfloat16``."""
    if isinstance(value, str):
        return re.sub(r"[^A-Za-z0-9]+", "", value)[:16]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "", key.replace("learning_rate", "lr") + text)[:16]


def run_name(config: EANetConfig) -> str:
    """A name a person can read: the closest profile, the data set, what differs, a digest.

    ``ci-digits-1a2b3c4d`` is the ci profile as shipped; ``ci-digits-seed3-…`` the same with
    ``seed=3``; ``custom-cifar100-…`` a config more than two fields away from every profile.
    The digest of the whole config keeps every config's name apart.
    """
    digest = hashlib.sha256(
        json.dumps(_fields(config), sort_keys=True).encode()).hexdigest()[:8]
    mine = dataclasses.asdict(config)
    best = None
    for name, profile in sorted(PROFILES.items()):
        base = profile if profile.dataset == config.dataset else profile.replace(
            dataset=config.dataset)
        differ = [k for k, v in dataclasses.asdict(base).items() if mine[k] != v]
        if best is None or len(differ) < len(best[1]):
            best = (name, differ)
    profile, differ = best
    if len(differ) > 2:
        profile, differ = "custom", []
    tag = "".join(f"-{_tag(k, mine[k])}" for k in differ)
    return f"{profile}-{config.dataset}{tag}-{digest}"


def default_run_dir(config: EANetConfig) -> Path:
    """The run folder of ``config``: ``EANET_HOME/runs/<run_name(config)>``.

    The same config always maps to the same folder. A folder of the older scheme
    (``<dataset>-<10 hex digits>``) is used where it exists, so earlier runs are kept.
    """
    runs = eanet_home() / "runs"
    legacy = runs / (f"{config.dataset}-" + hashlib.sha256(
        json.dumps(_fields(config), sort_keys=True).encode()).hexdigest()[:10])
    return legacy if legacy.is_dir() else runs / run_name(config)


# -- files read back ---------------------------------------------------------------------------

def check_keras_file(path: Path) -> None:
    """Refuse a ``.keras`` file that is not a regular file, or whose zip members declare more
    bytes than :data:`KERAS_MEMBER_LIMITS` allow (before Keras reads any of them)."""
    fix = f"move {path} away (or delete it) and train again."
    with open_regular(path, "a saved model (.keras)", fix) as handle:
        try:
            members = zipfile.ZipFile(handle).infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            raise FileRefused(f"{path} cannot be read as a .keras file ({e}); {fix}") from None
    if len(members) > _KERAS_MAX_MEMBERS:
        raise FileRefused(f"{path} holds {len(members)} files, more than a course model "
                          f"({_KERAS_MAX_MEMBERS}); {fix}")
    total = 0
    for member in members:
        limit = KERAS_MEMBER_LIMITS.get(member.filename, _KERAS_OTHER_MEMBER_LIMIT)
        if member.file_size > limit:
            raise FileRefused(f"{path}: its {member.filename} declares {member.file_size:,} "
                              f"bytes, more than a course model's ({limit:,}); {fix}")
        total += member.file_size
    if total > _KERAS_TOTAL_LIMIT:
        raise FileRefused(f"{path} declares {total:,} bytes in all; {fix}")


def load_model(path: Path) -> keras.Model:
    """A saved ``.keras`` model, checked first (:func:`check_keras_file`), in safe mode.

    Any failure is a ``ValueError`` that names the file and says what to do.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; delete {path.parent / 'backup'} to train "
                                "the run again.")
    check_keras_file(path)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - a damaged zip fails in many ways inside Keras
        raise ValueError(f"{path} cannot be read ({' '.join(str(e).split())[:200]}); move it "
                         "away or delete it, then run again.") from e


def read_history(path: Path) -> dict[str, list[float]]:
    """``history.csv`` as ``{metric: [one value per epoch]}`` (the ``epoch`` column dropped)."""
    fields, rows = _history_rows(path)
    return {k: [float(row[k]) for row in rows] for k in fields if k != "epoch"}


def _history_rows(path: Path) -> tuple[list[str], list[dict]]:
    """The header and rows of ``history.csv`` (bounded, regular file only); none if absent."""
    try:
        raw = read_bounded(path, HISTORY_LIMIT, "a run's history.csv",
                           f"move it away; the run's backups in {path.parent / 'backup'} must "
                           "then be deleted too.")
    except FileNotFoundError:
        return [], []
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8", errors="replace")))
    return list(reader.fieldnames or []), list(reader)


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
    The rows of an epoch are synced before its backup is written, so every epoch the backup
    covers has a row: a history without one (a lost header line, a deleted file) is refused.
    """
    if epochs_done == 0:
        path.unlink(missing_ok=True)
        return
    fields, rows = _history_rows(path)
    kept = {int(row["epoch"]): row for row in rows
            if _whole(row, fields) and 0 <= int(row["epoch"]) < epochs_done}
    if len(kept) < epochs_done:
        missing = sorted(set(range(epochs_done)) - kept.keys())
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"{path} lacks the rows of epoch(s) {shown} although the backup in "
            f"{path.parent / 'backup'} covers {epochs_done} epochs (its header or rows were "
            f"damaged or deleted). Restore {path.name}, or delete {path.parent / 'backup'} and "
            f"{path.name} to train the run again from epoch 0 (best.keras is kept).")
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept[e] for e in sorted(kept))


_METRICS = ("loss", "accuracy", "top5_accuracy")


def _finished(folder: Path, epochs: int) -> dict | None:
    """``metrics.json`` of a run that finished at least ``epochs`` epochs, else None."""
    path = folder / "metrics.json"
    fix = f"delete {path} to measure the run again."
    try:
        metrics = read_json(path, "a run's metrics.json", fix)
    except FileNotFoundError:
        return None
    test = metrics.get("test") if isinstance(metrics, dict) else None
    if not (isinstance(test, dict) and all(_number(test.get(k)) for k in _METRICS)
            and type(metrics.get("epochs")) is int and metrics["epochs"] >= 1
            and _number(metrics.get("wall_time_s"))):
        raise ValueError(f"{path} is not a finished run's metrics (it needs 'test' with "
                         f"{', '.join(_METRICS)}, 'epochs' and 'wall_time_s'); {fix}")
    if metrics["epochs"] >= epochs and (folder / "best.keras").is_file():
        return metrics
    return None


def _number(value) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


# -- callbacks ---------------------------------------------------------------------------------

def _fsync(path: Path) -> None:
    """Push ``path``'s bytes to the disk, so that a rename after it publishes a whole file."""
    with path.open("rb") as f:
        os.fsync(f.fileno())


class _Publish(keras.callbacks.Callback):
    """Moves the checkpoint that ``ModelCheckpoint`` has just finished writing into place.

    ``ModelCheckpoint`` writes ``partial``; once it has returned, the file is synced, read back
    as a whole zip archive, and ``os.replace`` swaps it in for ``final`` in one step, so an
    interruption mid-save leaves ``final`` as it was. Put it after the ``ModelCheckpoint``.
    Any ``partial`` left by an earlier process is deleted before training, so the one found
    here was written in this run.
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


class Backup(keras.callbacks.Callback):
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
        """Load the newest readable state into ``model``; returns its epoch (0: none).

        A state that is not a regular file or is larger than :data:`BACKUP_LIMIT` is passed
        over unread, as one that cannot be read.
        """
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        failures = []
        for epoch, path in reversed(self.states()):
            try:
                with open_regular(path, "a backup", "it is skipped.") as handle:
                    size = os.fstat(handle.fileno()).st_size
                if size > BACKUP_LIMIT:
                    raise FileRefused(f"{size:,} bytes, more than a backup ({BACKUP_LIMIT:,})")
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


def _remove_leftovers(folder: Path) -> None:
    """Delete the partial files of earlier processes (they are never read)."""
    for path in [folder / ".partial-best.keras", *folder.glob(".*.tmp"),
                 *(folder / "backup").glob(".*.partial.weights.h5")]:
        path.unlink(missing_ok=True)


# -- one training in one folder -----------------------------------------------------------------

@dataclass(frozen=True)
class RunResult:
    """What a training in a run folder returns.

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


class Recipe(abc.ABC):
    """How one kind of run builds, trains and measures its model; :func:`train_in` does the rest.

    :meth:`build` is called first (never for a finished run, which is reported without its
    data), then :meth:`evaluate` and :meth:`fit`.
    """

    def scope(self) -> contextlib.AbstractContextManager:
        """The context the model is built in (a ``tf.distribute`` strategy's scope)."""
        return contextlib.nullcontext()

    @abc.abstractmethod
    def build(self) -> keras.Model:
        """A new, compiled model."""

    @abc.abstractmethod
    def fit(self, model: keras.Model, initial_epoch: int, epochs: int,
            callbacks: list[keras.callbacks.Callback]) -> None:
        """Train ``model`` from ``initial_epoch`` to ``epochs`` with ``callbacks``; the
        validation metrics must be logged as ``val_accuracy`` and so on."""

    @abc.abstractmethod
    def evaluate(self, model: keras.Model, split: str) -> dict[str, float]:
        """``model``'s metrics on ``split``: ``"validation"`` or ``"test"``."""


def train_in(folder: Path, recipe: Recipe, epochs: int, *, record: dict,
             callbacks: list[keras.callbacks.Callback] = ()) -> RunResult:
    """Run ``recipe`` for ``epochs`` epochs in ``folder`` under the rules of this module.

    The caller holds the folder (:func:`hold`) and has claimed it (:func:`claim`). ``record``
    is what ``metrics.json`` keeps as ``config``; ``callbacks`` run after the folder's own.
    """
    best_path, csv_path = folder / "best.keras", folder / "history.csv"
    partial_best = folder / ".partial-best.keras"
    if finished := _finished(folder, epochs):
        return RunResult(load_model(best_path), read_history(csv_path), finished["test"],
                         folder, finished["wall_time_s"], finished["epochs"],
                         already_finished=True)
    _remove_leftovers(folder)
    # From here the folder changes: it is unfinished until a new metrics.json is written.
    (folder / "metrics.json").unlink(missing_ok=True)
    start = time.perf_counter()
    backup = Backup(folder / "backup")
    with recipe.scope():
        model = recipe.build()
        done = backup.restore(model)  # builds the optimizer: its variables are mirrored too
    _reconcile_history(csv_path, done)
    if done < epochs:
        threshold = None
        if best_path.exists():  # the best so far, measured, is what a new one must beat
            threshold = recipe.evaluate(load_model(best_path), "validation")["accuracy"]
        recipe.fit(model, done, epochs, [
            keras.callbacks.ModelCheckpoint(
                str(partial_best), monitor="val_accuracy", mode="max", save_best_only=True,
                initial_value_threshold=threshold),
            _Publish(partial_best, best_path),
            _SyncedCSVLogger(str(csv_path), append=True),  # the row, then the backup
            backup,
            keras.callbacks.TensorBoard(str(folder / "tensorboard")),
            *callbacks,
        ])
    best = load_model(best_path)
    test_metrics = {k: float(v) for k, v in recipe.evaluate(best, "test").items()}
    history = read_history(csv_path)
    wall = time.perf_counter() - start
    with atomic_write(folder / "metrics.json") as f:
        json.dump({"test": test_metrics, "history": history,
                   "epochs": len(history.get("loss", [])), "wall_time_s": wall,
                   "config": record}, f, indent=2)
    return RunResult(best, history, test_metrics, folder, wall, done)


def keep_results(path: Path, mine: dict, overwrite: bool, flag: str = "--overwrite") -> None:
    """Refuse to replace the results in ``path`` by those of another benchmark.

    ``mine`` holds what identifies this benchmark (its plan, its options). ``path`` may be
    replaced when it does not exist, when it holds the same values for the keys of ``mine``
    (the same benchmark, resumed or gathered again: its results only grow), or with
    ``overwrite``. Call it before the benchmark starts, so that a refusal costs nothing, and
    again before writing.
    """
    if overwrite:
        return
    fix = f"pass {flag} to replace them, or another --out folder."
    try:
        theirs = read_json(path, "a benchmark's results", fix)
    except FileNotFoundError:
        return
    mine = json.loads(json.dumps(mine))  # tuples as JSON gives them back: lists
    differ = sorted(k for k in mine if not isinstance(theirs, dict) or theirs.get(k) != mine[k])
    if differ:
        raise ValueError(f"{path} holds the results of another run (its {', '.join(differ)} "
                         f"differ); {fix}")
