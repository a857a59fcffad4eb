"""The layers compute the maths of `eanet_course.reference`, keep its invariants, and round-trip."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from eanet_course import reference
from eanet_course.layers import (
    ExternalAttention,
    PatchEmbedding,
    PatchExtract,
    SelfAttention,
    TransformerBlock,
)

RNG = np.random.default_rng(0)


def features(b=2, n=12, d=16):
    return RNG.normal(size=(b, n, d)).astype("float32")


def external(d=16, **kwargs):
    kwargs = {"num_heads": 2, "dim_coefficient": 2, **kwargs}
    layer = ExternalAttention(d, **kwargs)
    layer.build((None, None, d))
    # Non-zero biases, so that a test of the maths also covers them.
    for dense in (layer.to_heads, layer.memory_key, layer.memory_value, layer.output_projection):
        dense.bias.assign(RNG.normal(size=dense.bias.shape).astype("float32"))
    return layer


def external_weights(layer):
    return dict(
        w_in=layer.to_heads.kernel.numpy(), b_in=layer.to_heads.bias.numpy(),
        m_k=layer.memory_key.kernel.numpy().T, b_k=layer.memory_key.bias.numpy(),
        m_v=layer.memory_value.kernel.numpy(), b_v=layer.memory_value.bias.numpy(),
        w_out=layer.output_projection.kernel.numpy(), b_out=layer.output_projection.bias.numpy(),
        num_heads=layer.total_heads,
    )


# --- patches ---------------------------------------------------------------------------------

def test_patch_extract_matches_reference_order():
    images = RNG.normal(size=(2, 8, 12, 3)).astype("float32")
    out = PatchExtract(4)(images)
    assert out.shape == (2, 6, 48)
    np.testing.assert_allclose(out, reference.extract_patches(images, 4), atol=0)


def test_patch_extract_first_patch_is_top_left_corner():
    image = np.arange(4 * 4).reshape(1, 4, 4, 1).astype("float32")
    out = np.asarray(PatchExtract(2)(image))
    np.testing.assert_array_equal(out[0, 0], [0, 1, 4, 5])
    np.testing.assert_array_equal(out[0, 1], [2, 3, 6, 7])


def test_patch_embedding_adds_learned_positions():
    layer = PatchEmbedding(num_patches=6, embed_dim=8)
    out = layer(np.zeros((2, 6, 5), "float32"))
    assert out.shape == (2, 6, 8)
    # With zero patches the output is bias + position: different per patch, same per image.
    np.testing.assert_allclose(
        out[0], layer.projection.bias.numpy() + layer.position_embedding.embeddings.numpy(),
        atol=1e-6,
    )
    np.testing.assert_allclose(out[0], out[1])


# --- external attention ----------------------------------------------------------------------

def test_external_attention_matches_reference_with_the_same_weights():
    layer = external()
    x = features()
    out, scores = layer(x, return_attention_scores=True)
    ref_out, ref_scores = reference.multi_head_external_attention(x, **external_weights(layer))
    assert out.shape == (2, 12, 16) and scores.shape == (2, 4, 12, 8)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)


def test_default_memory_is_the_keras_examples():
    layer = ExternalAttention(64)  # the example: dim 64, 4 heads, dim_coefficient 4
    assert (layer.total_heads, layer.head_dim, layer.memory_units) == (16, 16, 16)
    _, scores = layer(features(1, 9, 64), return_attention_scores=True)
    assert scores.shape == (1, 16, 9, 16)


def test_memory_units_sets_s_freely():
    layer = external(memory_units=64)
    _, scores = layer(features(), return_attention_scores=True)
    assert scores.shape == (2, 4, 12, 64)
    assert layer.memory_key.kernel.shape == (8, 64)


def test_scores_are_non_negative_and_sum_to_one_over_memory():
    _, scores = external()(features() * 5, return_attention_scores=True)
    scores = np.asarray(scores)
    assert (scores >= 0).all()
    np.testing.assert_allclose(scores.sum(axis=-1), 1.0, atol=1e-5)


def test_softmax_runs_over_the_patch_axis():
    """Adding a constant to one memory unit's logits for every patch changes nothing after a
    softmax over N (it cancels within that unit's column), but would change a softmax over S."""
    layer = external()
    x = features()
    _, before = layer(x, return_attention_scores=True)
    bias = layer.memory_key.bias.numpy()
    bias[3] += 4.0
    layer.memory_key.bias.assign(bias)
    _, after = layer(x, return_attention_scores=True)
    np.testing.assert_allclose(before, after, atol=1e-5)
    # The same perturbation is visible to the wrong axis: the test can fail.
    logits = RNG.normal(size=(5, 7))
    shifted = logits.copy()
    shifted[:, 3] += 4.0
    wrong = lambda z: reference.softmax(z, axis=-1)  # noqa: E731
    assert not np.allclose(wrong(logits), wrong(shifted), atol=1e-3)


def test_patches_compete_for_each_memory_unit():
    """Softmax over N couples patches: changing one patch changes the others' scores."""
    layer = external()
    x = features(1)
    _, before = layer(x, return_attention_scores=True)
    x2 = x.copy()
    x2[0, 0] += 3.0
    _, after = layer(x2, return_attention_scores=True)
    assert not np.allclose(before[0, :, 1:], after[0, :, 1:], atol=1e-4)


@pytest.mark.parametrize("layer_fn", [external, lambda: SelfAttention(16, num_heads=2)])
def test_attention_is_permutation_equivariant_over_patches(layer_fn):
    layer = layer_fn()
    x = features()
    perm = RNG.permutation(x.shape[1])
    np.testing.assert_allclose(np.asarray(layer(x))[:, perm], layer(x[:, perm]), atol=1e-5)


@pytest.mark.parametrize("layer_fn", [external, lambda: SelfAttention(16, num_heads=2)])
def test_no_mixing_across_the_batch(layer_fn):
    layer = layer_fn()
    x = features(3)
    y = x.copy()
    y[1:] = RNG.normal(size=y[1:].shape)
    np.testing.assert_allclose(layer(x)[0], layer(y)[0], atol=1e-6)


def test_attention_dropout_acts_in_training_only():
    layer = external(attention_dropout=0.5, projection_dropout=0.5)
    x = features()
    np.testing.assert_allclose(layer(x), layer(x, training=False), atol=1e-6)
    assert not np.allclose(layer(x, training=True), layer(x, training=False), atol=1e-4)


# --- self-attention --------------------------------------------------------------------------

def test_self_attention_matches_reference_with_the_same_weights():
    layer = SelfAttention(16, num_heads=4, key_dim=8)
    x = features()
    out, scores = layer(x, return_attention_scores=True)
    w = {}
    for name in ("query", "key", "value", "output_projection"):
        dense = getattr(layer, name)
        w[name] = (dense.kernel.numpy(), dense.bias.numpy())
    ref_out, ref_scores = reference.multi_head_self_attention(
        x, *w["query"], *w["key"], *w["value"], *w["output_projection"], num_heads=4
    )
    assert scores.shape == (2, 4, 12, 12)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    np.testing.assert_allclose(np.asarray(scores).sum(-1), 1.0, atol=1e-5)


def test_self_attention_has_the_weights_of_keras_multi_head_attention():
    ours = SelfAttention(64, num_heads=4, key_dim=64)
    ours.build((None, 16, 64))
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=64)
    theirs(np.zeros((1, 16, 64), "float32"), np.zeros((1, 16, 64), "float32"))
    assert ours.count_params() == theirs.count_params() == 66_368


# --- blocks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("attention,score_shape", [("external", (2, 4, 12, 8)),
                                                   ("self", (2, 2, 12, 12))])
def test_transformer_block_shapes(attention, score_shape):
    block = TransformerBlock(16, 32, num_heads=2, attention=attention, dim_coefficient=2)
    x = features()
    out, scores = block(x, return_attention_scores=True)
    assert out.shape == x.shape and scores.shape == score_shape


def test_transformer_block_is_residual():
    block = TransformerBlock(16, 32, num_heads=2, dim_coefficient=2)
    block.build((None, 12, 16))
    for weight in block.weights:
        if "output_projection" in weight.path or "mlp_output" in weight.path:
            weight.assign(np.zeros(weight.shape, "float32"))
    x = features()
    np.testing.assert_allclose(block(x), x, atol=1e-6)


def test_gradients_reach_every_weight():
    block = TransformerBlock(16, 32, num_heads=2, dim_coefficient=2)
    x = tf.constant(features())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x) ** 2)
    grads = tape.gradient(loss, block.trainable_weights)
    assert len(grads) == len(block.trainable_weights) == 16
    for weight, grad in zip(block.trainable_weights, grads):
        assert grad is not None, weight.path
        assert float(tf.reduce_max(tf.abs(grad))) > 0, weight.path


# --- serialization ---------------------------------------------------------------------------

@pytest.mark.parametrize("layer", [
    PatchExtract(2),
    PatchEmbedding(16, 8),
    ExternalAttention(16, num_heads=2, dim_coefficient=2, memory_units=5,
                      attention_dropout=0.1, projection_dropout=0.2),
    SelfAttention(16, num_heads=2, key_dim=4, attention_dropout=0.1),
    TransformerBlock(16, 24, num_heads=2, attention="self", key_dim=4, mlp_dropout=0.1),
], ids=lambda layer: type(layer).__name__)
def test_every_layer_round_trips_its_config(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config


# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("make,fix", [
    (lambda: ExternalAttention(30, num_heads=4), "num_heads among"),
    (lambda: SelfAttention(30, num_heads=4), "num_heads among"),
    (lambda: ExternalAttention(16, memory_units=0), "memory_units"),
    (lambda: ExternalAttention(2, num_heads=1, dim_coefficient=4), "set memory_units"),
    (lambda: PatchExtract(0), "patch_size must be a positive integer"),
    (lambda: TransformerBlock(16, 32, attention="linear"), "use one of"),
])
def test_bad_arguments_fail_at_construction(make, fix):
    with pytest.raises(ValueError, match=fix):
        make()


@pytest.mark.parametrize("layer,shape,fix", [
    (PatchExtract(3), (None, 32, 32, 3), "pick a patch_size among"),
    (PatchExtract(2), (None, 32, 32), r"rank 4 \(batch, height, width, channels\)"),
    (ExternalAttention(16, num_heads=2), (None, 16), "rank 3"),
    (SelfAttention(16, num_heads=2), (None, 4, 4, 16), "rank 3"),
    (PatchEmbedding(64, 16), (None, 16, 12), "num_patches=.image_size // patch_size"),
    (TransformerBlock(16, 32, num_heads=2), (None, 9, 8), "PatchEmbedding"),
])
def test_bad_shapes_fail_at_build(layer, shape, fix):
    with pytest.raises(ValueError, match=fix):
        layer.build(shape)
