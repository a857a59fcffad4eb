"""The folded ExternalAttention, with its maps patches-last, computes the Keras example's function.

Main's layer before the change (four Dense layers, heads transposed to (B, H, N, dh), Keras's
softmax over axis -2, automatic gradients) is kept here as the reference, written with the same
weights; the model-level check against the example's own graph is in test_keras_example.py.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from eanet_course import layers
from eanet_course.layers import ExternalAttention

RNG = np.random.default_rng(7)


def _unfolded(layer: ExternalAttention, x, dropout: keras.layers.Dropout | None = None):
    """The layer's function as main computed it, step by step with its four Dense layers, and
    ``dropout`` (if given) applied to the ``(B, H, S, N)`` map as a training step would.
    Returns the output and the scores ``(B, H, N, S)`` before dropout."""
    n = x.shape[1]
    heads = ops.reshape(layer.to_heads(x), (-1, n, layer.total_heads, layer.head_dim))
    logits = layer.memory_key(ops.transpose(heads, (0, 2, 1, 3)))  # (B, H, N, S)
    over_patches = ops.softmax(logits, axis=-2)
    scores = over_patches / (ops.sum(over_patches, axis=-1, keepdims=True) + 1e-9)
    kept = scores if dropout is None else ops.transpose(
        dropout(ops.transpose(scores, (0, 1, 3, 2)), training=True), (0, 1, 3, 2))
    out = ops.transpose(layer.memory_value(kept), (0, 2, 1, 3))
    out = ops.reshape(out, (-1, n, layer.embed_dim * layer.dim_coefficient))
    return layer.output_projection(out), scores


def _same_mask_dropout(layer: ExternalAttention) -> keras.layers.Dropout:
    """A ``Dropout`` with the layer's rate whose seed generator is in the same state as the one
    the layer draws its attention mask from, so both draw the same mask next."""
    dropout = keras.layers.Dropout(layer.attention_dropout)
    dropout.seed_generator.state.assign(layer.attention_dropout_layer.seed_generator.state)
    return dropout


def _assert_same_function(layer: ExternalAttention, x, training: bool = False):
    """Random weights (biases too: a zero bias would hide a wrong fold of the biases), then the
    layer against :func:`_unfolded`: outputs, scores, and the gradients of every weight and of
    ``x``. Returns the layer's output."""
    layer.build(x.shape)
    for weight in layer.weights:
        weight.assign(RNG.normal(scale=0.3, size=weight.shape).astype("float32"))
    dropout = _same_mask_dropout(layer) if training else None
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out, scores = layer(x, return_attention_scores=True, training=training)
        ref_out, ref_scores = _unfolded(layer, x, dropout)
        loss, ref_loss = (ops.sum(ops.sin(o)) for o in (out, ref_out))
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for got, want in zip(tape.gradient(loss, [x, *layer.trainable_weights]),
                         tape.gradient(ref_loss, [x, *layer.trainable_weights])):
        scale = float(tf.reduce_max(tf.abs(want)))
        np.testing.assert_allclose(got, want, atol=1e-5 * max(scale, 1.0), rtol=1e-4)
    return out


@pytest.mark.parametrize("kwargs", [dict(embed_dim=64, num_heads=4, dim_coefficient=4),
                                    dict(embed_dim=24, num_heads=2, dim_coefficient=3,
                                         memory_units=5)], ids=["paper", "S=5"])
def test_same_parameters_outputs_and_gradients(kwargs):
    layer = ExternalAttention(**kwargs)
    _assert_same_function(layer, tf.constant(
        RNG.normal(size=(3, 16, kwargs["embed_dim"])).astype("float32")))


def test_dropout_inside_the_normalization_is_the_dropout_layers():
    """In training, A's dropout is drawn inside the double normalization: the same mask as a
    ``Dropout`` layer on the ``(B, H, S, N)`` map with the same seed, same outputs and gradients
    (and the scores returned are those before dropout)."""
    layer = ExternalAttention(24, 2, 3, memory_units=5, attention_dropout=0.4)
    x = tf.constant(RNG.normal(size=(3, 16, 24)).astype("float32"))
    out = _assert_same_function(layer, x, training=True)
    assert not np.allclose(out, layer(x, training=False), atol=1e-3)  # a mask was applied


def test_the_written_out_gradient_is_the_automatic_one():
    logits = tf.constant(2.0 * RNG.normal(size=(2, 7, 3, 5)).astype("float32"))
    upstream = tf.constant(RNG.normal(size=logits.shape).astype("float32"))

    def automatic(z):
        over_patches = ops.softmax(z, axis=1)
        return over_patches / (ops.sum(over_patches, axis=-1, keepdims=True) + 1e-9)

    grads = []
    for fn in (lambda z: layers.double_normalization(z, patch_axis=1), automatic):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            value = fn(logits)
        grads.append(tape.gradient(value, logits, output_gradients=upstream))
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-6)


def test_same_parameters_as_main():
    """main's four Dense layers, unchanged: d x dc + dc, dh x S + S, S x dh + dh, dc x d + d."""
    layer = ExternalAttention(64, 4, 4)
    layer.build((None, 256, 64))
    d, dc, dh, s = 64, 256, 16, 16
    assert [tuple(w.shape) for w in layer.trainable_weights] == [
        (d, dc), (dc,), (dh, s), (s,), (s, dh), (dh,), (dc, d), (d,)]
    assert layer.count_params() == d * dc + dc + dh * s + s + s * dh + dh + dc * d + d == 33_632


def test_the_written_out_gradient_with_dropout_is_the_automatic_one():
    logits = tf.constant(2.0 * RNG.normal(size=(2, 3, 5, 7)).astype("float32"))
    upstream = tf.constant(RNG.normal(size=logits.shape).astype("float32"))
    seed = keras.random.SeedGenerator(3)
    state = seed.state.numpy()

    def automatic(z):
        over_patches = ops.softmax(z, axis=-1)
        scores = over_patches / (ops.sum(over_patches, axis=-2, keepdims=True) + 1e-9)
        seed.state.assign(state)
        return keras.random.dropout(scores, 0.25, seed=seed)

    def written_out(z):
        seed.state.assign(state)
        return layers.double_normalization(z, patch_axis=-1, memory_axis=-2, dropout=0.25,
                                           seed=seed)

    values, grads = [], []
    for fn in (written_out, automatic):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            values.append(fn(logits))
        grads.append(tape.gradient(values[-1], logits, output_gradients=upstream))
    assert 0 < np.mean(np.asarray(values[1]) == 0.0) < 0.5
    np.testing.assert_allclose(values[0], values[1], atol=1e-6)
    np.testing.assert_allclose(grads[0], grads[1], atol=1e-5)


def test_the_key_biases_keep_an_exact_zero_gradient():
    """They cancel in the softmax over N, so the layer leaves them out of the logits; the
    optimizer still gets a gradient for them, exactly 0, rather than none (and a warning)."""
    layer = ExternalAttention(24, 2, 3, memory_units=5)
    x = tf.constant(RNG.normal(size=(2, 9, 24)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = ops.sum(ops.sin(layer(x)))
    biases = (layer.to_heads.bias, layer.memory_key.bias)
    for grad in tape.gradient(loss, biases):
        assert grad is not None and not np.any(grad)
    with tf.GradientTape() as tape:
        loss = ops.sum(ops.sin(layer(x)))
    assert np.any(tape.gradient(loss, layer.memory_key.kernel))


def test_layer_normalization_is_kerass_with_a_written_out_gradient():
    x = tf.constant(RNG.normal(loc=3.0, size=(2, 5, 16)).astype("float32"))
    ours, theirs = layers.LayerNormalization(epsilon=1e-5), keras.layers.LayerNormalization(
        epsilon=1e-5)
    ours.build(x.shape)
    theirs.build(x.shape)
    for a, b in zip(ours.weights, theirs.weights):
        value = RNG.normal(size=a.shape).astype("float32")
        a.assign(value)
        b.assign(value)
    upstream = tf.constant(RNG.normal(size=x.shape).astype("float32"))
    results = []
    for norm in (ours, theirs):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(x)
        results.append((y, *tape.gradient(y, [x, *norm.weights], output_gradients=upstream)))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(axis=1), dict(center=False), dict(scale=False)])
def test_layer_normalization_refuses_what_it_does_not_compute(kwargs):
    with pytest.raises(ValueError, match="use keras.layers.LayerNormalization"):
        layers.LayerNormalization(**kwargs)
