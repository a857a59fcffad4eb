"""``python -m eanet_course bench limits``: its help, and a tiny real run through the CLI."""

from __future__ import annotations

import json

import pytest

from eanet_course.bench import limits
from eanet_course.cli import main


def test_bench_help_names_limits(capsys):
    with pytest.raises(SystemExit) as done:
        main(["bench", "limits", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "{attention,train,limits,epoch}" in out and "limits:" in out and "--quick" in out


def test_bench_limits_quick_runs_the_quick_plan_and_writes_its_files(monkeypatch, tmp_path,
                                                                      capsys):
    tiny = limits.Plan(grids={"relation": (2,)}, memory_units=(2,), seeds=(0,), train_size=32,
                       test_size=16, epochs=1, batch_size=32)
    monkeypatch.setattr(limits, "QUICK", tiny)
    assert main(["bench", "limits", "--quick", "--out", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "limits.json").read_text())
    assert saved["quick"] is True and saved["plan"]["grids"] == {"relation": [2]}
    (row,) = saved["tasks"]
    assert (row["task"], row["N"], row["S"]) == ("relation", 4, 2)
    for model in limits.MODELS:
        (accuracy,) = row[model]["accuracy"]
        assert 0.0 <= accuracy <= 1.0
    out = capsys.readouterr().out
    assert "Limits benchmark (quick): 4 models to train" in out
    assert (tmp_path / "limits.txt").read_text().strip() in out
    assert (tmp_path / "limits.png").stat().st_size > 0
