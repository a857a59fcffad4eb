"""Shipped measurements and a learner's own: records with provenance, read back safely."""

from __future__ import annotations

import json
import os

import pytest

from eanet_course import results


def test_a_saved_record_reads_back_with_its_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("EANET_HOME", str(tmp_path))
    path = results.save("demo", {"x": [1, 2]}, command="python -m eanet_course bench demo",
                        wall_time_s=125.0)
    assert path == tmp_path / "results" / "demo.json"
    found = results.load("demo", "mine")
    assert found["data"] == {"x": [1, 2]} and found["name"] == "demo"
    where = found["provenance"]
    assert where["command"] == "python -m eanet_course bench demo"
    assert where["wall_time_s"] == 125.0 and where["machine"]["cores"] == os.cpu_count()
    assert {"python", "tensorflow", "keras", "numpy"} <= set(where["versions"])
    line = results.label(found, "mine")
    assert line.startswith("mine: measured on ") and "2 min" in line and "bench demo" in line
    # the learner's copy never touches the shipped one
    assert results.load("demo", "shipped") is None


def test_bad_names_and_files_are_refused_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("EANET_HOME", str(tmp_path))
    for name in ("../x", "", "Limits", None):
        with pytest.raises(ValueError, match="lower-case letters"):
            results.load(name, "mine")
    with pytest.raises(ValueError, match="'shipped'.*'mine'"):
        results.load("demo", "theirs")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "demo.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*--save"):
        results.load("demo", "mine")
    (tmp_path / "results" / "demo.json").write_text(json.dumps({"name": "other"}))
    with pytest.raises(ValueError, match="not a 'demo' record"):
        results.load("demo", "mine")
    (tmp_path / "results" / "demo.json").unlink()
    os.mkfifo(tmp_path / "results" / "demo.json")
    with pytest.raises(ValueError, match="not a regular file"):
        results.load("demo", "mine")
