"""train(): an end-to-end tiny run, resuming after an interruption, load_or_train, distribution."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import keras
import pytest

from eanet_course import training
from eanet_course.config import get_profile
from eanet_course.data import make_datasets

TINY = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                 batch_size=128, epochs=2)


def _csv_epochs(run_dir):
    with (run_dir / "history.csv").open(newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_train_end_to_end(tmp_path):
    result = training.train(TINY, logdir=tmp_path / "run", verbose=0)
    run = result.run_dir
    assert run == tmp_path / "run"
    for name in ("best.keras", "history.csv", "metrics.json"):
        assert (run / name).is_file(), name
    assert list((run / "tensorboard").rglob("events.out.tfevents.*"))
    assert not (run / "backup").exists()  # a finished run leaves no backup behind
    assert not (run / ".partial-best.keras").exists()  # every checkpoint was moved into place
    assert len(result.history["loss"]) == 2 and len(result.history["val_accuracy"]) == 2
    assert set(result.test_metrics) == {"loss", "accuracy", "top5_accuracy"}
    assert result.test_metrics["top5_accuracy"] >= result.test_metrics["accuracy"] > 0.15
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"] == result.test_metrics and saved["epochs"] == 2
    assert saved["config"]["embed_dim"] == 16
    # The returned model is best.keras: the same test accuracy again.
    again = result.model.evaluate(make_datasets(TINY).test, verbose=0, return_dict=True)
    assert again["accuracy"] == pytest.approx(result.test_metrics["accuracy"])


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
    assert len(result.history["loss"]) == 4
    assert not (run / "backup").exists()


def test_a_checkpoint_interrupted_mid_save_leaves_best_keras_whole(tmp_path, monkeypatch):
    run = tmp_path / "run"
    training.train(TINY, logdir=run, epochs=1, verbose=0)
    before = (run / "best.keras").read_bytes()

    def save_then_die(model, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK half a zip")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(keras.Model, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        training.train(TINY.replace(seed=1), logdir=run, epochs=1, verbose=0)
    assert (run / "best.keras").read_bytes() == before
    keras.saving.load_model(run / "best.keras")


def test_bad_epochs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="positive integer"):
        training.train(TINY, logdir=tmp_path, epochs=0)


def test_load_or_train_trains_once_then_loads(monkeypatch, tmp_path):
    monkeypatch.setenv("EANET_HOME", str(tmp_path))
    config = TINY.replace(epochs=1)
    first = training.load_or_train(config)
    assert (training.default_run_dir(config) / "best.keras").is_file()
    assert training.default_run_dir(config).is_relative_to(tmp_path)

    def no_training(*args, **kwargs):
        raise AssertionError("load_or_train trained again")

    monkeypatch.setattr(training, "train", no_training)
    second = training.load_or_train(config)
    assert [w.shape for w in second.weights] == [w.shape for w in first.weights]
    assert training.default_run_dir(config) != training.default_run_dir(config.replace(seed=1))


DISTRIBUTED = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from eanet_course.config import get_profile
    from eanet_course.training import train
    config = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                       batch_size=128, epochs=1)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    result = train(config, logdir=sys.argv[1], strategy=strategy, verbose=0)
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, **result.test_metrics}))
""")


def test_train_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    """Logical devices must be set before TensorFlow starts, hence a fresh process."""
    done = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == 2
    assert 0.0 <= out["accuracy"] <= 1.0 and out["loss"] > 0
    assert (tmp_path / "run" / "best.keras").is_file()
