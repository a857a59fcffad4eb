"""``train`` on the command line: --strategy and --replicas, finished runs, busy folders."""

from __future__ import annotations

import json

import filelock
import pytest

from eanet_course import runs, training
from eanet_course.cli import main


def test_help_documents_strategy_and_replicas(capsys):
    with pytest.raises(SystemExit) as done:
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert done.value.code == 0
    assert f"--strategy {{{','.join(training.STRATEGIES)}}}" in out
    for needle in ("mirrored: every local GPU", "logical devices", "$TF_CONFIG", "--replicas",
                   "a finished run is reported, not retrained"):
        assert needle in out, needle


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["--strategy", "horovod"], 2, "invalid choice: 'horovod'"),
    (["--replicas", "0"], 2, "must be a positive integer"),
    (["--replicas", "2"], None, "for strategy 'mirrored' only"),
    (["--strategy", "multiworker"], None, "reads the cluster from $TF_CONFIG"),
])
def test_bad_strategy_settings_print_one_line(argv, status, message, monkeypatch, capsys,
                                              tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    if status == 2:  # argparse's refusal
        with pytest.raises(SystemExit) as done:
            main(["train", "--profile", "ci", *argv])
        assert done.value.code == 2
    else:  # the package's, after parsing: exit code 2 too, one line
        assert main(["train", "--profile", "ci", "--logdir", str(tmp_path / "run"), *argv]) == 2
        assert not (tmp_path / "run").exists()
    err = capsys.readouterr().err
    assert message in err and err.strip().splitlines()[-1].startswith(
        "error:" if status is None else "python -m eanet_course train: error:")


def test_a_busy_folder_is_one_error_line(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / runs.MARKER).touch()
    with filelock.FileLock(run / ".lock", timeout=0):
        assert main(["train", "--profile", "ci", "--logdir", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {run} is busy")


def test_a_finished_run_is_reported_and_a_larger_epochs_trains_on(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--profile", "ci", "--epochs", "1", "--logdir", str(run)]) == 0
    first = capsys.readouterr().out
    metrics = (run / "metrics.json").read_bytes()
    assert "finished run" not in first and "Resumed" not in first

    assert main(["train", "--profile", "ci", "--epochs", "1", "--logdir", str(run)]) == 0
    again = capsys.readouterr().out
    assert f"{run} holds a finished run of 1 epoch; nothing changed" in again
    assert "Epoch 1/1" not in again and (run / "metrics.json").read_bytes() == metrics
    accuracy = json.loads(metrics)["test"]["accuracy"]
    assert f"Test accuracy {accuracy:.4f}" in again

    assert main(["train", "--profile", "ci", "--epochs", "2", "--logdir", str(run)]) == 0
    more = capsys.readouterr().out
    assert "Epoch 2/2" in more and "Epoch 1/2" not in more and "Resumed after epoch 1." in more
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2
