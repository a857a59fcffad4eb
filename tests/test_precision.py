"""The precision option: ``EANetConfig(precision="mixed_bfloat16")``, ``train --precision`` and
``bench train --precision`` (issue 14, item 3)."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from eanet_course import training
from eanet_course.bench import training as bench_training
from eanet_course.cli import main
from eanet_course.config import PROFILES
from eanet_course.layers import ExternalAttention
from eanet_course.models import attention_model, build_eanet, build_vit

CI = PROFILES["ci"]
BF16 = CI.replace(precision="mixed_bfloat16")


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, *CI.input_shape)).astype("float32")


def test_float32_is_the_default():
    assert all(config.precision == "float32" for config in PROFILES.values())


@pytest.mark.parametrize("wrong", ["bfloat16", "mixed_float16", "float64", None, 16])
def test_a_bad_precision_is_refused_naming_the_choices(wrong):
    with pytest.raises(ValueError, match=rf"precision={wrong!r} must be one of "
                                         r"\('float32', 'mixed_bfloat16'\)"):
        CI.replace(precision=wrong)


def test_bfloat16_blocks_float32_weights_float32_probabilities():
    before = keras.config.dtype_policy().name
    model = build_eanet(BF16)
    assert keras.config.dtype_policy().name == before  # no global policy left behind
    attention = [layer for layer in model._flatten_layers() if isinstance(layer, ExternalAttention)]
    assert len(attention) == CI.num_blocks
    assert all(layer.compute_dtype == "bfloat16" and layer.variable_dtype == "float32"
               for layer in attention)
    assert {w.dtype for w in model.weights} == {"float32"}
    assert model.get_layer("classifier").compute_dtype == "float32"
    x = _images()
    probs = model(x)
    assert probs.dtype == tf.float32
    np.testing.assert_allclose(np.asarray(probs).sum(-1), 1.0, atol=1e-5)
    # What the blocks computed is bfloat16: the scores read from the graph carry it.
    assert [s.dtype for s in attention_model(model)(x)] == [tf.bfloat16] * CI.num_blocks
    # The same weights in float32 give nearly the same probabilities (bfloat16: ~3 digits).
    reference = build_eanet(CI)
    reference.set_weights(model.get_weights())
    np.testing.assert_allclose(probs, reference(x), atol=2e-2)
    assert not np.array_equal(np.asarray(probs), np.asarray(reference(x)))


def test_the_vit_baseline_takes_the_option_too():
    model = build_vit(BF16)
    assert model.get_layer("block_0").compute_dtype == "bfloat16"
    assert model(_images()).dtype == tf.float32


def test_a_saved_bfloat16_model_loads_in_safe_mode(tmp_path):
    model = build_eanet(BF16)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert [layer.dtype_policy.name for layer in loaded.layers] == [
        layer.dtype_policy.name for layer in model.layers]
    assert loaded.get_layer("block_1").compute_dtype == "bfloat16"
    x = _images()
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_float32_run_folders_keep_their_names_and_old_configs_still_match(tmp_path):
    # The folder names main computed before the field existed (the digest of the config).
    assert training.default_run_dir(CI).name == "ci-digits-ec84a800"
    assert training.default_run_dir(PROFILES["laptop"]).name == "laptop-cifar100-3509ca2e"
    assert training.default_run_dir(BF16) != training.default_run_dir(CI)
    # A config.json written before the field existed has no "precision".
    old = {k: v for k, v in dataclasses.asdict(CI).items() if k not in ("epochs", "precision")}
    (tmp_path / "config.json").write_text(json.dumps(old))
    training._claim(tmp_path, CI)  # the same run: accepted
    with pytest.raises(ValueError, match="it differs in precision"):
        training._claim(tmp_path, BF16)


def test_train_with_precision_from_the_command_line(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--profile", "ci", "--precision", "mixed_bfloat16", "--epochs", "2",
                 "--logdir", str(run_dir)]) == 0
    assert "mixed_bfloat16" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["precision"] == "mixed_bfloat16"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and np.isfinite(metrics["history"]["loss"]).all()
    # Two epochs on digits learn something: well above chance (0.1).
    assert metrics["test"]["accuracy"] > 0.3
    best = keras.saving.load_model(run_dir / "best.keras", safe_mode=True)
    assert best.get_layer("block_0").compute_dtype == "bfloat16"


def test_bench_train_times_both_precisions_and_trains_ci_in_both(tmp_path, monkeypatch):
    small = {"paper": PROFILES["paper"].replace(num_blocks=1, batch_size=16),
             "ci": CI.replace(epochs=1)}
    monkeypatch.setattr(bench_training, "get_profile", small.__getitem__)
    results = bench_training.run(quick=True, out_dir=tmp_path, precision="mixed_bfloat16")
    assert results == json.loads((tmp_path / "training.json").read_text())
    p = results["precision"]
    assert p["name"] == "mixed_bfloat16"
    assert p["float32_images_per_s"] == results["course_images_per_s"]
    assert p["images_per_s"] == pytest.approx(16 / p["s_per_step"])
    assert p["ratio"] == pytest.approx(p["images_per_s"] / p["float32_images_per_s"])
    assert p["cpu_ratio"] == pytest.approx(p["float32_cpu_s_per_step"] / p["cpu_s_per_step"])
    assert set(p["cpu_bf16_flags"]) <= {"avx512_bf16", "amx_bf16"}
    assert p["ci"]["float32_test_accuracy"] == results["ci"]["test_accuracy"]
    assert 0 <= p["ci"]["test_accuracy"] <= 1 and p["ci"]["epochs"] == 1


def test_bench_train_refuses_float32_as_the_other_precision(tmp_path):
    with pytest.raises(ValueError, match=r"bench train always times float32; pass one of "
                                         r"\['mixed_bfloat16'\]"):
        bench_training.run(quick=True, out_dir=tmp_path, precision="float32")


def test_cli_passes_precision_to_bench_train_only_when_given(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(bench_training, "run", lambda **kwargs: calls.append(kwargs))
    assert main(["bench", "train", "--quick", "--precision", "mixed_bfloat16"]) == 0
    assert main(["bench", "train", "--quick"]) == 0
    assert calls == [{"quick": True, "out_dir": None, "precision": "mixed_bfloat16"},
                     {"quick": True, "out_dir": None}]
    assert main(["bench", "attention", "--precision", "mixed_bfloat16"]) == 2
    assert "use it with `bench train` or `bench epoch`" in capsys.readouterr().err
    assert len(calls) == 2
