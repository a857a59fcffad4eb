"""The 2x2 ablation (clipping augmentation x weight decay) on the ci profile, 1 epoch, offline."""

import contextlib
import io
import json

import pytest

from eanet_course import ablation
from eanet_course.cli import main
from eanet_course.config import get_profile


def test_the_four_arms():
    paper = get_profile("paper")
    found = {(arm.augmentation, arm.weight_decay) for arm in ablation.arms(paper)}
    assert found == {("keras3-port", 1e-4), ("keras3-port", 0.1), ("course", 1e-4),
                     ("course", 0.1)}


def test_published_numbers_are_the_keras_io_ones():
    assert ablation.PUBLISHED["Keras example 2021 (keras.io)"]["top1"] == 43.91
    assert ablation.PUBLISHED["Keras example, Keras 3 port (keras.io)"] == {"top1": 17.26,
                                                                             "top5": 38.94}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One ablation of the ci profile, 1 epoch per run: its folder and what it printed."""
    out_dir = tmp_path_factory.mktemp("ablation")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["ablation", "--profile", "ci", "--epochs", "1", "--out", str(out_dir)])
    assert status == 0
    return out_dir, printed.getvalue()


def test_cli_runs_four_runs_prints_the_table_and_reuses_finished_runs(finished):
    tmp_path, out = finished
    saved = json.loads((tmp_path / "ablation.json").read_text())
    runs = saved["runs"]
    assert [r["arm"]["augmentation"] for r in runs] == ["keras3-port"] * 2 + ["course"] * 2
    for r in runs:
        assert r["epochs"] == 1
        assert 0.0 <= r["top1"] <= r["top5"] <= 1.0
        assert (tmp_path / ablation.Arm(**r["arm"]).name / "best.keras").exists()
        assert f"{r['top1']:.2%}" in out
    for text in ("17.26%", "38.94%", "43.91%", "weight_decay 1e-4 as the port kept it"):
        assert text in out
    # A second call reads the finished runs back instead of training them again.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/best.keras")}
    assert main(["ablation", "--profile", "ci", "--epochs", "1", "--out", str(tmp_path)]) == 0
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/best.keras")} == stamps
    assert json.loads((tmp_path / "ablation.json").read_text())["runs"] == runs


def test_port_arm_clips_in_training_only(finished):
    """The port arm's model carries the example's augmentation: clipped inputs in training."""
    import keras
    import numpy as np

    tmp_path, _ = finished
    config = get_profile("ci")
    model = keras.saving.load_model(tmp_path / "keras3-port_wd0.0001" / "best.keras")
    augment = model.layers[1]
    assert [type(layer).__name__ for layer in augment.layers][:1] == ["Normalization"]
    x = np.random.default_rng(0).integers(0, 256, (8, *config.input_shape)).astype("float32")
    assert keras.ops.convert_to_numpy(augment(x, training=True)).min() >= 0
    assert keras.ops.convert_to_numpy(augment(x, training=False)).min() < 0


def test_a_finished_run_of_another_length_is_refused(finished, capsys):
    tmp_path, _ = finished
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.json")}
    assert main(["ablation", "--profile", "ci", "--epochs", "2", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a finished run of 1 epochs, not 2" in err
    assert "pass another --out folder" in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.json")} == before


def test_help(capsys):
    with pytest.raises(SystemExit) as done:
        main(["ablation", "--help"])
    assert done.value.code == 0
    assert "--epochs" in capsys.readouterr().out
