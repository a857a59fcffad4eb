"""``bench epoch``: one whole training epoch of a profile on CIFAR-sized data (issue 14, item 4)."""

from __future__ import annotations

import json
import math

import pytest

from eanet_course.bench import training
from eanet_course.cli import main
from eanet_course.config import PROFILES


def test_quick_epoch_reports_its_steps_and_times(tmp_path, capsys):
    # A small model: the ci profile with 8 x 8 patches of the 32 x 32 images, one block.
    config = PROFILES["ci"].replace(patch_size=8, num_blocks=1, batch_size=128)
    results = training.run_epoch(config, quick=True, out_dir=tmp_path)
    assert results == json.loads((tmp_path / "epoch.json").read_text())
    assert results["config"]["dataset"] == "cifar100" and results["config"]["image_size"] == 32
    assert (results["images"], results["train_images"], results["validation_images"]) == (
        2_000, 1_600, 400)
    # Every training step ran once: 12 full batches of 128 and one of 64.
    assert results["steps"] == math.ceil(1_600 / 128) == 13
    assert results["batch_size"] == 128
    assert 0 < results["median_step_s"] < results["epoch_s"]
    assert 0 < results["first_step_s"] < results["epoch_s"]
    assert results["median_step_cpu_s"] > 0
    assert results["estimated_run_s"] == pytest.approx(config.epochs * results["epoch_s"])
    out = capsys.readouterr().out
    assert "a timing benchmark, not data" in out
    assert f"{results['epoch_s']:.1f} s wall for 13 training steps" in out


def test_cli_times_the_profile_it_is_given(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(training, "run_epoch",
                        lambda config, **kwargs: calls.append((config, kwargs)))
    assert main(["bench", "epoch", "--profile", "laptop", "--quick", "--out", "d"]) == 0
    assert main(["bench", "epoch", "--profile", "laptop", "--precision", "mixed_bfloat16"]) == 0
    assert calls == [(PROFILES["laptop"], {"quick": True, "out_dir": "d"}),
                     (PROFILES["laptop"].replace(precision="mixed_bfloat16"),
                      {"quick": False, "out_dir": None})]
    assert main(["bench", "train", "--profile", "laptop"]) == 2
    assert "use it with `bench epoch`" in capsys.readouterr().err
    assert len(calls) == 2
