"""The kill matrix: a run folder never loses its best model, whatever point a run dies at.

Each case kills a tiny three-epoch run at one point (SIGKILL from inside the training process,
or a full disk), checks what the folder holds then ("before"), reruns the same call, and checks
the rules of :mod:`eanet_course.training` ("after"): ``history.csv`` has every epoch once,
``best.keras`` loads and is at least as good on the validation split as the best
``val_accuracy`` that ``history.csv`` records, and nothing partial is left or published.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from eanet_course import runs, training
from eanet_course.config import get_profile
from eanet_course.data import make_datasets
from eanet_course.models import build_eanet

TINY = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                 batch_size=128, epochs=3)

# Runs train(TINY) in a fresh process that kills itself (SIGKILL: no cleanup, no `finally`) at
# the point named by argv[2]; "pause" instead waits at epoch 0 until argv[1]/../release exists.
KILLED_RUN = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    import keras
    from eanet_course import runs, training
    from eanet_course.config import get_profile

    run, point = Path(sys.argv[1]), sys.argv[2]
    config = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                       batch_size=128, epochs=3)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def tear(path):
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    class At(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            if point == "pause" and epoch == 0:
                (run.parent / "started").touch()
                for _ in range(600):
                    if (run.parent / "release").exists():
                        break
                    time.sleep(0.2)

        def on_train_batch_end(self, batch, logs=None):
            if point == "mid-epoch" and self.epoch == 1 and batch == 2:
                die()

        def on_train_end(self, logs=None):
            if point == "after-fit":
                die()

    if point == "row-then-backup":
        save_backup = runs.Backup.on_epoch_end

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                die()
            save_backup(self, epoch, logs)

        runs.Backup.on_epoch_end = on_epoch_end
    if point == "checkpoint-write":
        save, calls = keras.Model.save, []

        def torn_save(self, filepath, *args, **kwargs):
            save(self, filepath, *args, **kwargs)
            calls.append(filepath)
            if len(calls) == 2:
                tear(filepath)
                die()

        keras.Model.save = torn_save
    if point == "backup-write":
        save_weights = keras.Model.save_weights

        def torn_save_weights(self, filepath, *args, **kwargs):
            save_weights(self, filepath, *args, **kwargs)
            if "epoch-0002" in str(filepath):
                tear(filepath)
                die()

        keras.Model.save_weights = torn_save_weights
    training.train(config, logdir=run, verbose=0, callbacks=[At()])
""")


def _start(run, point):
    return subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(run), point],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=os.environ.copy())


def _killed(run, point):
    """Run KILLED_RUN to its kill point; fail if it was not killed there."""
    process = _start(run, point)
    _, err = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, f"not killed at {point}: {err[-3000:]}"


def _csv_epochs(run):
    if not (run / "history.csv").exists():
        return []
    with (run / "history.csv").open(newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _state(run):
    """What a run folder holds: the 'before' column of the matrix."""
    return {
        "history": _csv_epochs(run),
        "backups": sorted(p.name for p in (run / "backup").glob("*.weights.h5")),
        "best": (run / "best.keras").exists(),
        "partial best": (run / ".partial-best.keras").exists(),
        "metrics": (run / "metrics.json").exists(),
    }


@pytest.fixture(scope="module")
def validation():
    return make_datasets(TINY).validation


def _check_rerun(run, validation, result):
    """The 'after' column: the rules a rerun leaves the folder in."""
    assert _csv_epochs(run) == [0, 1, 2] and len(result.history["loss"]) == 3
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3
    assert not (run / ".partial-best.keras").exists()
    assert not list(run.rglob("*.partial.weights.h5"))
    best = keras.saving.load_model(run / "best.keras", safe_mode=True)
    measured = best.evaluate(validation, verbose=0, return_dict=True)["accuracy"]
    assert measured >= max(result.history["val_accuracy"]) - 1e-6


def _rerun(run):
    """``train`` again on ``run``; returns its result and the epochs it began."""
    begun = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: begun.append(epoch))
    return training.train(TINY, logdir=run, verbose=0, callbacks=[record]), begun


# case: the kill point; before: what the folder holds after the kill; rerun: the epochs it trains.
MATRIX = [
    ("mid-epoch", {"history": [0], "backups": ["epoch-0001.weights.h5"], "best": True,
                   "partial best": False, "metrics": False}, [1, 2]),
    ("row-then-backup", {"history": [0, 1], "backups": ["epoch-0001.weights.h5"], "best": True,
                         "partial best": False, "metrics": False}, [1, 2]),
    ("checkpoint-write", {"best": True, "partial best": True, "metrics": False}, None),
    ("backup-write", {"history": [0, 1], "backups": [".epoch-0002.partial.weights.h5",
                                                     "epoch-0001.weights.h5"], "best": True,
                      "partial best": False, "metrics": False}, [1, 2]),
    ("after-fit", {"history": [0, 1, 2], "backups": ["epoch-0002.weights.h5",
                                                     "epoch-0003.weights.h5"],
                   "best": True, "partial best": False, "metrics": False}, []),
]


@pytest.mark.parametrize(("point", "before", "reruns"), MATRIX, ids=[m[0] for m in MATRIX])
def test_kill_then_rerun(tmp_path, validation, point, before, reruns):
    run = tmp_path / "run"
    _killed(run, point)
    state = _state(run)
    assert {k: state[k] for k in before} == before
    keras.saving.load_model(run / "best.keras")  # the kill left the best model whole
    if point == "checkpoint-write":
        # The second checkpoint is torn: it came at the end of an epoch k >= 1 that improved,
        # before its row and backup, so rows 0 .. k-1 and the backup after k epochs are there.
        k = len(state["history"])
        assert k >= 1 and state["history"] == list(range(k))
        assert state["backups"][-1] == f"epoch-{k:04d}.weights.h5"
        reruns = list(range(k, 3))
    result, begun = _rerun(run)
    assert begun == reruns
    _check_rerun(run, validation, result)


def test_a_stale_partial_checkpoint_is_never_published(tmp_path, validation):
    """A whole but stale `.partial-best.keras` (an untrained model) from an earlier crash."""
    run = tmp_path / "run"
    training.train(TINY, logdir=run, epochs=1, verbose=0)
    build_eanet(TINY).save(run / ".partial-best.keras")
    result = training.train(TINY, logdir=run, verbose=0)
    _check_rerun(run, validation, result)


def _full_disk(path, keep):
    """What a full disk leaves: the first ``keep`` of the bytes, and ENOSPC."""
    data = open(path, "rb").read()
    open(path, "wb").write(data[:keep])
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_full_disk_while_writing_a_checkpoint(tmp_path, validation, monkeypatch):
    run = tmp_path / "run"
    save, calls = keras.Model.save, []

    def save_on_a_full_disk(self, filepath, *args, **kwargs):
        save(self, filepath, *args, **kwargs)
        calls.append(filepath)
        if len(calls) == 2:
            _full_disk(filepath, 1000)

    monkeypatch.setattr(keras.Model, "save", save_on_a_full_disk)
    with pytest.raises(OSError, match="No space left"):
        training.train(TINY, logdir=run, verbose=0)
    monkeypatch.undo()
    assert (run / ".partial-best.keras").stat().st_size == 1000
    keras.saving.load_model(run / "best.keras")
    result = training.train(TINY, logdir=run, verbose=0)
    _check_rerun(run, validation, result)


def test_a_full_disk_while_writing_a_history_row(tmp_path, validation, monkeypatch):
    run = tmp_path / "run"
    write_row = runs._SyncedCSVLogger.on_epoch_end

    def write_row_on_a_full_disk(self, epoch, logs=None):
        write_row(self, epoch, logs)
        if epoch == 1:
            self.csv_file.close()
            _full_disk(self.filename, os.path.getsize(self.filename) - 20)

    monkeypatch.setattr(runs._SyncedCSVLogger, "on_epoch_end", write_row_on_a_full_disk)
    with pytest.raises(OSError, match="No space left"):
        training.train(TINY, logdir=run, verbose=0)
    monkeypatch.undo()
    text = (run / "history.csv").read_text()  # header, row 0, and a torn row 1
    assert len(text.splitlines()) == 3 and text.splitlines()[-1].startswith("1,")
    assert not text.endswith("\n")
    assert sorted(p.name for p in (run / "backup").glob("*.weights.h5")) == [
        "epoch-0001.weights.h5"]
    result, begun = _rerun(run)
    assert begun == [1, 2]
    _check_rerun(run, validation, result)


def test_an_unreadable_backup_falls_back_then_names_what_to_delete(tmp_path, validation):
    run = tmp_path / "run"
    _killed(run, "after-fit")  # three epochs done; backups after epochs 2 and 3
    (run / "backup" / "epoch-0003.weights.h5").write_bytes(b"")  # an empty newest backup
    with pytest.warns(UserWarning, match="epoch-0003.*trying the one before"):
        result, begun = _rerun(run)
    assert begun == [2]  # resumed from the backup after epoch 2
    _check_rerun(run, validation, result)

    (run / "metrics.json").unlink()  # unfinished again, and now no backup can be read
    for path in (run / "backup").glob("*.weights.h5"):
        path.write_bytes(b"{\"epoch\": 3")
    best = (run / "best.keras").read_bytes()
    with pytest.raises(ValueError, match=f"Delete the folder {run / 'backup'}"), \
            pytest.warns(UserWarning, match="Cannot read the backup"):
        training.train(TINY, logdir=run, verbose=0)
    assert (run / "best.keras").read_bytes() == best
    for path in (run / "backup").iterdir():  # do what the message says
        path.unlink()
    (run / "backup").rmdir()
    result, begun = _rerun(run)
    assert begun == [0, 1, 2]
    _check_rerun(run, validation, result)


def test_a_second_run_on_a_busy_folder_is_refused(tmp_path, validation):
    run = tmp_path / "run"
    first = _start(run, "pause")
    try:
        for _ in range(600):
            if (tmp_path / "started").exists() or first.poll() is not None:
                break
            time.sleep(0.5)
        assert (tmp_path / "started").exists(), first.communicate()[1][-3000:]
        with pytest.raises(training.RunFolderBusy, match=f"{run} is busy"):
            training.train(TINY, logdir=run, verbose=0)
    finally:
        (tmp_path / "release").touch()
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    result = training.train(TINY, logdir=run, verbose=0)  # the lock is free again
    assert result.already_finished
    _check_rerun(run, validation, result)
    assert np.isfinite(result.test_metrics["loss"])
