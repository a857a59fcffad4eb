"""Whole models: the Keras example's parameter counts, attention views, saving, mixed precision."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from eanet_course.config import get_profile
from eanet_course.models import attention_model, build_eanet, build_vit, compile_model

CI = get_profile("ci")


def images(n=3, config=CI):
    return np.random.default_rng(1).normal(size=(n, *config.input_shape)).astype("float32")


def all_layers(model):
    for layer in model._flatten_layers(include_self=False, recursive=True):
        yield layer


def test_paper_profile_has_the_keras_examples_parameter_counts():
    paper = get_profile("paper")
    assert build_eanet(paper).count_params() == 361_380
    assert build_vit(paper).count_params() == 623_268


@pytest.mark.parametrize("build", [build_eanet, build_vit])
def test_models_use_no_lambda_layers(build):
    model = build(CI)
    assert not [layer for layer in all_layers(model) if isinstance(layer, keras.layers.Lambda)]


@pytest.mark.parametrize("build,score_shape", [(build_eanet, (3, 4, 16, 16)),
                                              (build_vit, (3, 2, 16, 16))])
def test_outputs_are_probabilities_and_attention_is_exposed(build, score_shape):
    model = build(CI)
    probs = np.asarray(model(images()))
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    scores = attention_model(model)(images())
    assert len(scores) == CI.num_blocks
    assert all(tuple(s.shape) == score_shape for s in scores)


def test_attention_model_needs_transformer_blocks():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="build_eanet or build_vit"):
        attention_model(plain)


@pytest.mark.parametrize("build", [build_eanet, build_vit])
def test_save_and_load_gives_the_same_predictions(build, tmp_path):
    model = compile_model(build(CI), CI)
    model.optimizer.build(model.trainable_variables)
    x = images()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model(x), loaded(x), atol=1e-6)
    for ours, theirs in zip(attention_model(model)(x), attention_model(loaded)(x)):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_gradients_reach_every_weight_of_the_model():
    model = build_eanet(CI)
    x = tf.constant(images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.math.log(model(x, training=True)[:, 0]))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in grads)


def test_bfloat16_mixed_precision_gives_finite_outputs():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_eanet(CI)
        probs, scores = model(images()), attention_model(model)(images())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert probs.dtype == "float32" and np.isfinite(np.asarray(probs)).all()
    assert all(np.isfinite(np.asarray(tf.cast(s, tf.float32))).all() for s in scores)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    model = compile_model(build_eanet(CI), CI)
    x = images(32)
    y = keras.utils.to_categorical(np.arange(32) % 10, 10)
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < before
