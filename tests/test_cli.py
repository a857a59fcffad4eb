"""The command line: help everywhere, one clear line for bad input, train and doctor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eanet_course.cli import main


@pytest.mark.parametrize("argv", [[], ["train"], ["bench"], ["exercises"], ["doctor"]])
def test_help_everywhere(argv, capsys):
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    assert "usage: python -m eanet_course" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["train", "--profile", "huge"], "invalid choice: 'huge'"),
    (["train", "--epochs", "0"], "must be a positive integer"),
    (["train", "--epochs", "many"], "must be a positive integer, got 'many'"),
    (["bench", "everything"], "invalid choice"),
    (["fly"], "invalid choice"),
])
def test_bad_arguments_give_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--out", "--out-dir"])
def test_bench_writes_where_it_is_told(flag, monkeypatch, tmp_path):
    from eanet_course.bench import attention

    calls = []
    monkeypatch.setattr(attention, "run", lambda **kwargs: calls.append(kwargs))
    assert main(["bench", "attention", "--quick", flag, str(tmp_path)]) == 0
    assert calls == [{"quick": True, "out_dir": str(tmp_path)}]


def test_package_errors_print_one_line_without_traceback(monkeypatch, capsys):
    monkeypatch.setenv("EANET_DATASET", "imagenet")
    assert main(["train", "--profile", "ci"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "imagenet" in err


def test_train_ci_as_a_new_user(tmp_path, capsys):
    assert main(["train", "--profile", "ci", "--epochs", "2", "--seed", "3",
                 "--logdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Epoch 2/2" in out and "Test accuracy" in out and str(tmp_path) in out
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["epochs"] == 2 and saved["config"]["seed"] == 3
    assert f"{saved['test']['accuracy']:.4f}" in out


def test_doctor_reports_and_says_what_it_checked(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for needle in ("tensorflow", "keras", "numpy", "GPU", "EANET_HOME", "ipywidgets",
                   "jupyterlab_widgets", "CIFAR-100   not cached", "Worth knowing:",
                   "EANET_DATASET=digits", "Checked: the Python version; that 9 packages are "
                   "installed", "whether CIFAR-100 is cached"):
        assert needle in out, needle
    assert "What to fix" not in out


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "eanet_course", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--profile {ci,laptop,paper}" in done.stdout
