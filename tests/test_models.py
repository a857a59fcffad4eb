"""Whole models: the Keras example's parameter counts, attention views, saving, mixed precision."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from eanet_course.config import get_profile
from eanet_course.layers import TransformerBlock
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
    for block_scores in scores:  # over S (EANet) or over the keys (ViT)
        block_scores = np.asarray(block_scores)
        assert (block_scores >= 0).all()
        np.testing.assert_allclose(block_scores.sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("build", [build_eanet, build_vit])
def test_no_mixing_across_the_batch(build):
    model = build(CI)
    x = images(4)
    y = x.copy()
    y[1:] = images(3)[::-1] * 2.0
    np.testing.assert_allclose(model(x)[0], model(y)[0], atol=1e-6)
    for ours, theirs in zip(attention_model(model)(x), attention_model(model)(y)):
        np.testing.assert_allclose(ours[0], theirs[0], atol=1e-6)


def test_attention_model_needs_transformer_blocks():
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="build_eanet or build_vit"):
        attention_model(plain)


@pytest.mark.parametrize("build,config", [
    (build_eanet, CI),
    (build_vit, CI),
    # Non-default fields must survive get_config: a lost memory_units changes the weight shapes.
    (build_eanet, CI.replace(memory_units=5, attention_dropout=0.1, mlp_dropout=0.1)),
], ids=["eanet", "vit", "eanet_memory_units"])
def test_save_and_load_gives_the_same_predictions(build, config, tmp_path):
    model = compile_model(build(config), config)
    model.optimizer.build(model.trainable_variables)
    x = images()
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(model(x), loaded(x), atol=1e-6)
    for ours, theirs in zip(attention_model(model)(x), attention_model(loaded)(x)):
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


#: Weights a block's attention provably cannot use (see tests/test_layers.py): a shift shared by
#: every patch cancels in the softmax over N; q . b_k is the same for every key.
SHIFT_INVARIANT = {
    build_eanet: ("attention_norm/beta", "attention/to_heads/bias", "attention/memory_key/bias"),
    build_vit: ("attention/key/bias",),
}


@pytest.mark.parametrize("build", [build_eanet, build_vit])
def test_gradients_reach_every_weight_of_the_model(build):
    model = build(CI)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == model.count_params()
    x = tf.constant(images())
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.math.log(model(x, training=True)[:, 0]))
    grads = tape.gradient(loss, model.trainable_weights)
    assert len(grads) == len(model.trainable_weights)
    assert all(g is not None for g in grads)
    # Relative thresholds: rounding noise (~1e-9 of the largest gradient) must not pass as a
    # gradient that reaches a weight.
    sizes = {w.path: float(tf.reduce_max(tf.abs(g)))
             for w, g in zip(model.trainable_weights, grads)}
    scale = max(sizes.values())
    dead = {p for p in sizes
            if p.startswith("block_") and p.split("/", 1)[1] in SHIFT_INVARIANT[build]}
    assert len(dead) == len(SHIFT_INVARIANT[build]) * CI.num_blocks, sorted(dead)
    assert not [p for p in sizes if p not in dead and sizes[p] < 1e-4 * scale], sizes
    assert not [p for p in dead if sizes[p] > 1e-6 * scale], sizes


def test_bfloat16_mixed_precision_gives_finite_outputs():
    reference = build_eanet(CI)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_eanet(CI)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.set_weights(reference.get_weights())  # same weights, float32 variables in both
    x = images()
    probs, scores = np.asarray(model(x)), attention_model(model)(x)
    # The policy is in effect: the blocks compute in bfloat16, the classifier in float32.
    assert all(s.dtype == tf.bfloat16 for s in scores)
    assert probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    # bfloat16 keeps ~3 significant digits: close to float32, not equal.
    np.testing.assert_allclose(probs, reference(x), atol=2e-2)
    for ours, theirs in zip(scores, attention_model(reference)(x)):
        ours = np.asarray(tf.cast(ours, tf.float32))
        assert np.isfinite(ours).all() and (ours >= 0).all()
        np.testing.assert_allclose(ours.sum(-1), 1.0, atol=3e-2)
        np.testing.assert_allclose(ours, theirs, atol=3e-2)


def test_one_training_step_lowers_the_loss_on_a_fixed_batch():
    model = compile_model(build_eanet(CI), CI)
    x = images(32)
    y = keras.utils.to_categorical(np.arange(32) % 10, 10)
    before = model.evaluate(x, y, verbose=0)[0]
    model.fit(x, y, epochs=5, batch_size=32, verbose=0)
    assert model.evaluate(x, y, verbose=0)[0] < before


def test_attention_model_refuses_blocks_called_without_scores():
    """Output 1 of a block called without scores is not its scores: it would slice the batch."""
    inputs = keras.Input((16, 32))
    block = TransformerBlock(32, 64, num_heads=2, dim_coefficient=2, name="plain_block")
    plain = keras.Model(inputs, block(inputs))
    with pytest.raises(ValueError, match=r"'plain_block' was called without "
                                         r"return_attention_scores=True.*build_eanet"):
        attention_model(plain)
    shared = TransformerBlock(32, 64, num_heads=2, dim_coefficient=2, name="shared_block")
    x, _ = shared(inputs, return_attention_scores=True)
    twice = keras.Model(inputs, shared(x, return_attention_scores=True))
    with pytest.raises(ValueError, match=r"'shared_block' is called 2 times"):
        attention_model(twice)
