"""Run folders (eanet_course.runs): refused before anything is written, hostile files bounded,
one error line with exit code 2. No test here trains a model: each folder is laid out by hand."""

from __future__ import annotations

import json
import os
import stat
import tracemalloc
import zipfile

import keras
import pytest

from eanet_course import runs, training
from eanet_course.cli import main
from eanet_course.config import PROFILES, get_profile
from eanet_course.models import build_eanet, compile_model
from eanet_course.paths import atomic_write

TINY = get_profile("ci").replace(embed_dim=16, mlp_dim=16, num_heads=2, num_blocks=1,
                                 batch_size=128, epochs=3)


def _files(folder):
    """Every entry under ``folder`` with its bytes (None for a folder or a pipe)."""
    return {p.relative_to(folder): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _one_error_line(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# --- folders that are not the course's ---------------------------------------------------------

def test_a_folder_of_the_users_own_files_is_refused_and_left_alone(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "history.csv").write_text("my,own\n1,2\n")
    (mine / ".notes.tmp").write_text("hidden work")
    before = _files(mine)
    with pytest.raises(ValueError, match="the course did not write.*new or empty folder"):
        training.train(TINY, logdir=mine, verbose=0)
    assert main(["train", "--profile", "ci", "--logdir", str(mine)]) == 2
    _one_error_line(capsys, str(mine), "new or empty folder")
    assert main(["ablation", "--profile", "ci", "--out", str(mine)]) == 2
    _one_error_line(capsys, f"--out {mine}")
    assert _files(mine) == before


def test_an_empty_folder_and_a_course_folder_are_accepted(tmp_path):
    (tmp_path / "empty").mkdir()
    assert runs.check_folder(tmp_path / "empty") == tmp_path / "empty"
    (tmp_path / "marked").mkdir()
    (tmp_path / "marked" / runs.MARKER).touch()
    (tmp_path / "marked" / "history.csv").touch()
    assert runs.check_folder(tmp_path / "marked") == tmp_path / "marked"


def test_bad_seed_and_logdir_are_refused_before_anything_is_made(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="below 2\\*\\*32"):
        training.train(TINY.replace(seed=2**32), logdir=run)
    with pytest.raises(SystemExit) as done:
        main(["train", "--profile", "ci", "--seed", "4294967296", "--logdir", str(run)])
    assert done.value.code == 2 and "0 to 4294967295" in capsys.readouterr().err
    bad = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9")  # Latin-1, not UTF-8
    assert main(["train", "--profile", "ci", "--logdir", bad]) == 2
    _one_error_line(capsys, "caf\\xe9 is not valid UTF-8")
    assert sorted(tmp_path.iterdir()) == []


def test_a_file_or_dev_null_as_out_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from eanet_course.bench import limits

    monkeypatch.setattr(limits, "_train", lambda *a: pytest.fail("trained before refusing"))
    (tmp_path / "file").write_text("mine")
    for out in ("/dev/null", str(tmp_path / "file")):
        assert main(["bench", "limits", "--quick", "--out", out]) == 2
        _one_error_line(capsys, f"--out {out} is a file; pass a folder")
    assert (tmp_path / "file").read_text() == "mine"


def test_limits_never_replaces_results_of_another_plan_without_the_flag(tmp_path, monkeypatch,
                                                                        capsys):
    import matplotlib.pyplot as plt

    from eanet_course.bench import limits

    trained = []
    monkeypatch.setattr(limits, "_train", lambda *args: trained.append(args) or 0.5)
    monkeypatch.setattr(limits, "plot", lambda results: plt.figure(figsize=(1, 1)))  # fast
    small = dict(memory_units=(2,), seeds=(0,), train_size=32, test_size=16, epochs=1,
                 batch_size=32)
    plan = limits.Plan(grids={"relation": (2,)}, **small)
    limits.run(out_dir=tmp_path, plan=plan)
    first = (tmp_path / "limits.json").read_bytes()
    limits.run(out_dir=tmp_path, plan=plan)  # the same plan, gathered again: allowed
    other = limits.Plan(grids={"count": (2,)}, **small)
    done = len(trained)
    with pytest.raises(ValueError, match="limits.json holds the results of another run.*"
                                         "--overwrite"):
        limits.run(out_dir=tmp_path, plan=other)
    assert len(trained) == done and (tmp_path / "limits.json").read_bytes() == first
    limits.run(out_dir=tmp_path, plan=other, overwrite=True)
    assert json.loads((tmp_path / "limits.json").read_text())["plan"]["grids"] == {"count": [2]}
    assert main(["bench", "attention", "--overwrite", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, "use it with `bench limits`")


# --- names and modes ---------------------------------------------------------------------------

def test_run_names_say_profile_data_set_and_what_differs():
    ci = PROFILES["ci"]
    assert runs.run_name(ci).startswith("ci-digits-")
    assert runs.run_name(ci.replace(seed=3)).startswith("ci-digits-seed3-")
    assert runs.run_name(PROFILES["laptop"].replace(dataset="digits")).startswith(
        "laptop-digits-")
    assert runs.run_name(TINY).startswith("custom-digits-")
    names = {runs.run_name(c) for c in (ci, ci.replace(seed=3), ci.replace(seed=4), TINY)}
    assert len(names) == 4 and all(len(n) <= 40 for n in names)


def test_an_older_run_folder_keeps_being_used(monkeypatch, tmp_path):
    monkeypatch.setenv("EANET_HOME", str(tmp_path))
    config = PROFILES["ci"]
    assert training.default_run_dir(config).name.startswith("ci-digits-")
    (tmp_path / "runs" / "digits-ec84a800c8").mkdir(parents=True)  # the name before run_name
    assert training.default_run_dir(config).name == "digits-ec84a800c8"


def test_atomic_files_get_the_usual_mode(tmp_path):
    with atomic_write(tmp_path / "a.json") as f:
        f.write("{}")
    (tmp_path / "b.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == stat.S_IMODE(
        (tmp_path / "b.json").stat().st_mode)


# --- damaged or hostile files in a run folder ---------------------------------------------------

@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """The weights file of a compiled, untrained TINY model (what a backup holds)."""
    path = tmp_path_factory.mktemp("weights") / "epoch.weights.h5"
    model = compile_model(build_eanet(TINY), TINY)
    model.optimizer.build(model.trainable_variables)
    model.save_weights(path)
    return path.read_bytes()


def _unfinished(run, tiny_weights, history):
    """A run folder of TINY with a backup after 2 epochs and ``history`` as its history.csv."""
    run.mkdir()
    training._claim(run, TINY)
    (run / "backup").mkdir()
    (run / "backup" / "epoch-0002.weights.h5").write_bytes(tiny_weights)
    if history is not None:
        history(run / "history.csv")


def test_a_history_that_lost_its_header_is_refused_not_shortened(tmp_path, tiny_weights):
    run = tmp_path / "run"
    rows = "0,0.5,1.0,0.9,0.4,1.2,0.8\n1,0.6,0.9,0.95,0.5,1.1,0.9\n"
    _unfinished(run, tiny_weights, lambda p: p.write_text(rows))
    with pytest.raises(ValueError, match=r"history.csv lacks the rows of epoch\(s\) 0, 1 .*"
                                         r"covers 2 epochs.*Restore history.csv, or delete"):
        training.train(TINY, logdir=run, verbose=0)
    assert (run / "history.csv").read_text() == rows and not (run / "metrics.json").exists()


def test_a_pipe_as_history_or_backup_is_refused_without_hanging(tmp_path, tiny_weights):
    run = tmp_path / "history"
    _unfinished(run, tiny_weights, os.mkfifo)
    with pytest.raises(ValueError, match="history.csv is not a regular file"):
        training.train(TINY, logdir=run, verbose=0)
    run = tmp_path / "backup"
    _unfinished(run, tiny_weights, None)
    (run / "backup" / "epoch-0002.weights.h5").unlink()
    os.mkfifo(run / "backup" / "epoch-0002.weights.h5")
    with pytest.raises(ValueError, match="No backup in .* can be read.*not a regular file"), \
            pytest.warns(UserWarning, match="Cannot read the backup"):
        training.train(TINY, logdir=run, verbose=0)


@pytest.mark.parametrize(("metrics", "says"), [
    ("[]", "is not a finished run's metrics"),
    ('{"test": {"accuracy": "high"}, "epochs": 3, "wall_time_s": 1.0}',
     "is not a finished run's metrics"),
    ('{"test": {"loss": 1, "accuracy": 0.5, "top5_accuracy": 0.9}, "wall_time_s": 1}',
     "needs 'test' with loss, accuracy, top5_accuracy, 'epochs'"),
    ("{not json", "is not JSON"),
])
def test_a_damaged_metrics_json_is_one_error_line(tmp_path, capsys, metrics, says):
    run = tmp_path / "run"
    run.mkdir()
    training._claim(run, get_profile("ci"))
    (run / "metrics.json").write_text(metrics)
    assert main(["train", "--profile", "ci", "--logdir", str(run)]) == 2
    _one_error_line(capsys, str(run / "metrics.json"), says, "delete")


@pytest.mark.parametrize("result", ["[]", "{}", '{"arm": {}, "epochs": 1, "top1": "x"}'])
def test_a_damaged_ablation_result_is_one_error_line(tmp_path, capsys, result):
    from eanet_course import ablation

    first = tmp_path / ablation.arms(get_profile("ci"))[0].name
    first.mkdir()
    (tmp_path / runs.MARKER).touch()
    (first / "result.json").write_text(result)
    assert main(["ablation", "--profile", "ci", "--epochs", "1", "--out", str(tmp_path)]) == 2
    _one_error_line(capsys, str(first / "result.json"), "is not an ablation run's result",
                    "delete it")


def _keras_file(path, sizes):
    """A zip whose members declare ``sizes`` (name -> bytes) but hold one byte each: the
    central directory is patched, as a crafted file would be."""
    with zipfile.ZipFile(path, "w") as archive:
        for name in sizes:
            archive.writestr(name, b"{")
    raw = bytearray(path.read_bytes())
    at = 0
    for name, size in sizes.items():
        at = raw.index(b"PK\x01\x02", at)  # the next central directory entry
        raw[at + 24:at + 28] = size.to_bytes(4, "little")  # its uncompressed size
        at += 4
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("sizes", "says"), [
    ({"config.json": 1536 << 20, "metadata.json": 10, "model.weights.h5": 10},
     "its config.json declares 1,610,612,736 bytes"),
    ({f"assets/{i}": 250 << 20 for i in range(6)}, "its assets/0 declares 262,144,000 bytes"),
])
def test_a_keras_file_declaring_huge_members_is_refused_unread(tmp_path, sizes, says):
    path = _keras_file(tmp_path / "best.keras", sizes)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=says):
            runs.load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20


def test_a_pipe_as_a_saved_model_is_refused(tmp_path):
    os.mkfifo(tmp_path / "best.keras")
    with pytest.raises(ValueError, match="best.keras is not a regular file"):
        runs.load_model(tmp_path / "best.keras")


def test_a_real_saved_model_still_loads(tmp_path):
    build_eanet(TINY).save(tmp_path / "best.keras")
    assert isinstance(runs.load_model(tmp_path / "best.keras"), keras.Model)


# --- the command line --------------------------------------------------------------------------

def test_a_tensorflow_error_is_one_line_with_exit_code_2(monkeypatch, capsys, tmp_path):
    import tensorflow as tf

    def full_disk(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, f"{tmp_path}/tensorboard/train/events.out.tfevents; No space left on "
                        "device")

    monkeypatch.setattr(training, "train", full_disk)
    assert main(["train", "--profile", "ci", "--logdir", str(tmp_path)]) == 2
    _one_error_line(capsys, "No space left on device", "free disk space", "resumes")


def test_doctor_reports_bad_environment_values_and_exits_non_zero(monkeypatch, capsys):
    monkeypatch.setenv("EANET_PROFILE", "nonexistent")
    monkeypatch.setenv("EANET_DATASET", "imagenet")
    assert main(["doctor"]) == 2
    out = capsys.readouterr().out
    assert "EANET_PROFILE='nonexistent' is not one of ['ci', 'laptop', 'paper']" in out
    assert "EANET_DATASET='imagenet' is not one of ['cifar100', 'digits']" in out
    assert "Checked: the Python version;" in out and "What to fix" in out
