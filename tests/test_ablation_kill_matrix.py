"""The kill matrix of ``ablation``'s two arms: a run folder never loses its best model.

Each arm's three-epoch run is stopped abruptly at one kill point after another, in one folder:
the call dies at the point (``Killed``, a ``BaseException`` that neither Keras nor the course
catches; where the point is a write, the file is torn first, as a SIGKILL mid-write leaves it),
then the same call runs again and dies at the next point, and so on; the last call finishes.
Sharing one folder, the kills cost little more than one training. After every kill, best.keras
loads and is at least as good on the validation split as it was before the kill (a resumed run
never replaces it by a worse model); at the end, ``history.csv`` holds each epoch once,
best.keras is at least as good as every epoch any call logged, and ``result.json`` holds its
test metrics. One point makes the resumed epoch far worse than best.keras (the bug of
issue 22: the port arm's resumed ``ModelCheckpoint`` started from scratch and replaced it).
The SIGKILL matrix of ``train`` itself is ``tests/test_kill_matrix.py``.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from eanet_course import ablation, runs, training
from eanet_course.config import get_profile
from eanet_course.data import load_dataset, make_datasets

# A learning rate at which the port arm's first epoch is its best (later ones fall back).
TINY = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                 batch_size=128, epochs=3, learning_rate=0.01)
EPOCHS = 3


class Killed(BaseException):
    """The process dies here: nothing after this point runs."""


def _tear(path: Path, keep: float) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:int(len(data) * keep)])


@contextlib.contextmanager
def _killed_at(point: str, monkeypatch, recipe):
    """Install the kill at ``point`` for one call of ``recipe``'s run."""
    with monkeypatch.context() as patch:
        if point == "backup-write":  # the case: a 0-byte backup left by the kill
            save_weights = keras.Model.save_weights

            def torn(self, filepath, *args, **kwargs):
                save_weights(self, filepath, *args, **kwargs)
                if ".partial.weights.h5" in str(filepath):
                    _tear(filepath, 0)
                    raise Killed(point)

            patch.setattr(keras.Model, "save_weights", torn)
        elif point == "mid-epoch":  # batch 2 of the second epoch this call trains
            state = {"epochs": 0}
            begin = keras.callbacks.TensorBoard.on_epoch_begin

            def count(self, epoch, logs=None):
                state["epochs"] += 1
                begin(self, epoch, logs)

            def batch_end(self, batch, logs=None):
                if state["epochs"] == 2 and batch == 2:
                    raise Killed(point)

            patch.setattr(keras.callbacks.TensorBoard, "on_epoch_begin", count)
            patch.setattr(keras.callbacks.TensorBoard, "on_train_batch_end", batch_end)
        elif point == "checkpoint-write":  # the epoch's checkpoint torn before it is published
            def die(self, epoch, logs=None):
                if self.partial.exists():
                    _tear(self.partial, 0.5)
                raise Killed(point)

            patch.setattr(runs._Publish, "on_epoch_end", die)
        elif point == "row-then-backup":  # the epoch's row written, its backup not
            def die(self, epoch, logs=None):
                raise Killed(point)

            patch.setattr(runs.Backup, "on_epoch_end", die)
        elif point == "worse-epoch":  # an epoch far worse than best.keras, then its backup
            fit = recipe.fit

            def diverge(self, model, initial_epoch, epochs, callbacks):
                model.optimizer.learning_rate = 1e3  # the weights blow up
                fit(self, model, initial_epoch, epochs, callbacks)

            backup = runs.Backup.on_epoch_end

            def die(self, epoch, logs=None):
                backup(self, epoch, logs)
                raise Killed(point)

            patch.setattr(recipe, "fit", diverge)
            patch.setattr(runs.Backup, "on_epoch_end", die)
        elif point == "after-fit":  # every epoch done, best.keras not yet measured
            def die(self, logs=None):
                raise Killed(point)

            patch.setattr(keras.callbacks.TensorBoard, "on_train_end", die)
        elif point == "before-result":  # metrics.json written, result.json not
            @contextlib.contextmanager
            def die(path, mode="w"):
                raise Killed(point)
                yield

            patch.setattr(ablation, "atomic_write", die)
        else:
            raise ValueError(point)
        yield


#: Each arm's kill points, in the order one folder meets them. The course arm is ``train``,
#: whose own points are in tests/test_kill_matrix.py: here only the ablation's own and two
#: shared with the port arm.
POINTS = {
    "keras3-port": ["backup-write", "mid-epoch", "checkpoint-write", "row-then-backup",
                    "worse-epoch", "after-fit", "before-result"],
    "course": ["backup-write", "checkpoint-write", "worse-epoch", "before-result"],
}


def _validation(augmentation: str):
    """A function measuring a model's accuracy on the arm's validation split."""
    if augmentation == "course":
        data = make_datasets(TINY).validation
        return lambda model: model.evaluate(data, verbose=0, return_dict=True)["accuracy"]
    (x, y), _ = load_dataset(TINY.dataset)
    n_fit = len(x) - int(round(len(x) * TINY.validation_split))
    x_val = x[n_fit:].astype("float32")
    y_val = keras.utils.to_categorical(y[n_fit:], TINY.num_classes)
    return lambda model: model.evaluate(x_val, y_val, batch_size=TINY.batch_size, verbose=0,
                                        return_dict=True)["accuracy"]


def _history(run: Path) -> list[dict]:
    if not (run / "history.csv").exists():
        return []
    with (run / "history.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("augmentation", list(POINTS))
def test_kill_at_every_point_then_finish(augmentation, tmp_path, monkeypatch):
    arm = next(a for a in ablation.arms(TINY) if a.augmentation == augmentation)
    run = tmp_path / arm.name
    recipe = training._CourseRecipe if augmentation == "course" else ablation._PortRecipe
    # Every call that trains first measures the best.keras it finds (the bar a new checkpoint
    # must pass): those measurements are what the kills left, call after call.
    evaluate, found = recipe.evaluate, []

    def spy(self, model, split):
        metrics = evaluate(self, model, split)
        if split == "validation":
            found.append(metrics["accuracy"])
        return metrics

    monkeypatch.setattr(recipe, "evaluate", spy)
    logged = []
    for point in POINTS[augmentation]:
        with _killed_at(point, monkeypatch, recipe), pytest.raises(Killed, match=point):
            ablation._run_arm(TINY, arm, tmp_path, EPOCHS, 0)
        logged += [float(row["val_accuracy"]) for row in _history(run)]
        assert (run / "best.keras").is_file() and not (run / "result.json").exists(), point
        if point == "backup-write":  # the case: the kill left a 0-byte backup file
            assert [p.stat().st_size for p in (run / "backup").iterdir()] == [0]
        if point == "worse-epoch":  # the case happened: a resumed epoch worse than best.keras
            assert float(_history(run)[-1]["val_accuracy"]) < found[-1] - 0.01, found

    result = ablation._run_arm(TINY, arm, tmp_path, EPOCHS, 0)
    assert [int(row["epoch"]) for row in _history(run)] == list(range(EPOCHS))
    logged += [float(row["val_accuracy"]) for row in _history(run)]
    found.append(_validation(augmentation)(runs.load_model(run / "best.keras")))
    # best.keras never got worse from one call to the next, and beats every logged epoch.
    assert found == sorted(found) and len(found) >= len(POINTS[augmentation]) - 1, found
    assert found[-1] >= max(logged) - 1e-6, (found, logged)
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "result.json").read_text()) == result
    assert metrics["epochs"] == EPOCHS
    assert result["top1"] == pytest.approx(metrics["test"]["accuracy"])
    assert not (run / ".partial-best.keras").exists() and np.isfinite(result["loss"])
