"""train(): an end-to-end tiny run, a finished run left alone, training on, resuming, refusals."""

from __future__ import annotations

import csv
import json
import stat

import filelock
import keras
import pytest

from eanet_course import runs, training
from eanet_course.config import get_profile
from eanet_course.data import make_datasets

TINY = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                 batch_size=128, epochs=2)


def _csv_epochs(run_dir):
    with (run_dir / "history.csv").open(newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def _snapshot(run_dir):
    """Every file of a run folder with its bytes and modification time (the lock aside)."""
    return {p.relative_to(run_dir): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_train_end_to_end(tmp_path):
    result = training.train(TINY, logdir=tmp_path / "run", verbose=0)
    run = result.run_dir
    assert run == tmp_path / "run"
    for name in ("best.keras", "history.csv", "metrics.json", "config.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    # The last two epochs' states stay, so that a larger `epochs` can train on.
    assert sorted(p.name for p in (run / "backup").iterdir()) == [
        "epoch-0001.weights.h5", "epoch-0002.weights.h5"]
    assert not (run / ".partial-best.keras").exists()  # every checkpoint was moved into place
    # Every file has the same mode (atomic writes too: mkstemp's 0600 is not kept).
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run.rglob("*") if p.is_file()}
    assert len(set(modes.values())) == 1, modes
    assert len(result.history["loss"]) == 2 and len(result.history["val_accuracy"]) == 2
    assert result.resumed_from == 0 and not result.already_finished
    assert set(result.test_metrics) == {"loss", "accuracy", "top5_accuracy"}
    assert result.test_metrics["top5_accuracy"] >= result.test_metrics["accuracy"] > 0.15
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"] == result.test_metrics and saved["epochs"] == 2
    assert saved["config"]["embed_dim"] == 16
    # The returned model is best.keras: the same test accuracy again.
    again = result.model.evaluate(make_datasets(TINY).test, verbose=0, return_dict=True)
    assert again["accuracy"] == pytest.approx(result.test_metrics["accuracy"])

    # A rerun of the finished run reports it and changes nothing: no fit, not one byte.
    before = _snapshot(run)

    def no_fit(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keras.Model, "fit", no_fit)
        rerun = training.train(TINY, logdir=run, verbose=0)
        fewer = training.train(TINY, logdir=run, epochs=1, verbose=0)
    assert rerun.already_finished and fewer.already_finished and rerun.resumed_from == 2
    assert rerun.test_metrics == result.test_metrics and rerun.history == result.history
    assert _snapshot(run) == before

    # A larger `epochs` trains on from the last backup: one more epoch, logged once.
    begun = _Begun()
    more = training.train(TINY, logdir=run, epochs=3, verbose=0, callbacks=[begun])
    assert begun.epochs == [2] and more.resumed_from == 2 and not more.already_finished
    assert _csv_epochs(run) == [0, 1, 2]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 3


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"stopped after epoch {epoch}")


class _Begun(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_interrupted_run_resumes_at_next_epoch(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        training.train(TINY, logdir=run, epochs=4, verbose=0, callbacks=[_Interrupt(1)])
    assert (run / "backup").is_dir() and _csv_epochs(run) == [0, 1]

    begun = _Begun()
    result = training.train(TINY, logdir=run, epochs=4, verbose=0, callbacks=[begun])
    assert begun.epochs == [2, 3]
    assert _csv_epochs(run) == [0, 1, 2, 3]
    assert len(result.history["loss"]) == 4 and result.resumed_from == 2


def test_bad_arguments_are_refused_before_any_folder_exists(tmp_path):
    run = tmp_path / "new"
    for kwargs, message in [({"epochs": 0}, "positive integer"), ({"epochs": 2.0}, "positive"),
                            ({"strategy": "mirrored"}, "make_strategy"),
                            ({"callbacks": [print]}, "Callback"), ({"verbose": 3}, "verbose")]:
        with pytest.raises(ValueError, match=message):
            training.train(TINY, logdir=run, **kwargs)
    with pytest.raises(ValueError, match="EANetConfig"):
        training.train({"epochs": 1}, logdir=run)
    assert not run.exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        training.train(TINY, logdir=tmp_path / "file")


def test_a_folder_of_another_config_is_refused(tmp_path):
    run = tmp_path / "run"
    training.train(TINY.replace(epochs=1), logdir=run, verbose=0)
    before = _snapshot(run)
    with pytest.raises(ValueError, match="another config.*seed"):
        training.train(TINY.replace(seed=1), logdir=run, verbose=0)
    assert _snapshot(run) == before


def test_a_busy_folder_is_refused_at_once(tmp_path):
    """The lock a running training holds: here the test holds it, in another file handle."""
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.MARKER).touch()  # a training marks its folder before it takes the lock
    with filelock.FileLock(run / ".lock", timeout=0):
        with pytest.raises(training.RunFolderBusy, match="busy.*another logdir"):
            training.train(TINY, logdir=run, verbose=0)
    assert sorted(p.name for p in run.iterdir()) == [runs.MARKER, ".lock"]


def test_a_worker_marks_the_shared_folder_before_it_makes_its_own(monkeypatch, tmp_path):
    """Workers of one cluster start together and share ``logdir``: a non-chief worker's folder
    lies inside the chief's, so the chief, looking a moment later, must find the shared folder
    marked as the course's (CI once saw the chief refuse it)."""
    shared = tmp_path / "run"
    monkeypatch.setattr(training, "_worker_dir",
                        lambda run_dir, strategy: run_dir / "workers" / "worker-1")

    class Stop(Exception):
        pass

    def hold(path, flag):
        runs.prepare(path, flag)  # the worker makes its own folder ...
        assert runs.check_folder(shared, "logdir") == shared  # ... and the chief looks
        raise Stop

    monkeypatch.setattr(runs, "hold", hold)
    with pytest.raises(Stop):
        training.train(TINY, logdir=shared, verbose=0)
    assert (shared / runs.MARKER).is_file()
    assert (shared / "workers" / "worker-1" / runs.MARKER).is_file()


def test_load_or_train_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("EANET_HOME", str(tmp_path))
    config = TINY.replace(epochs=1)
    first = training.load_or_train(config)
    assert (training.default_run_dir(config) / "best.keras").is_file()
    assert training.default_run_dir(config).is_relative_to(tmp_path)

    def no_fit(*args, **kwargs):
        raise AssertionError("load_or_train trained again")

    monkeypatch.setattr(keras.Model, "fit", no_fit)
    second = training.load_or_train(config)
    assert [w.shape for w in second.weights] == [w.shape for w in first.weights]
    assert training.default_run_dir(config) != training.default_run_dir(config.replace(seed=1))


def test_make_strategy_refuses_bad_names_and_settings(monkeypatch):
    assert training.make_strategy("none") is None
    with pytest.raises(ValueError, match="choose one of"):
        training.make_strategy("horovod")
    with pytest.raises(ValueError, match="mirrored"):
        training.make_strategy("none", replicas=2)
    with pytest.raises(ValueError, match="positive integer"):
        training.make_strategy("mirrored", replicas=0)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG"):
        training.make_strategy("multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        training.make_strategy("multiworker")
