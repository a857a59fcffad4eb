"""The folded, transpose-free ExternalAttention computes the Keras example's function.

Main's layer before the change (four Dense layers, heads transposed to (B, H, N, dh), Keras's
softmax over axis -2, automatic gradients) is kept here as the reference, written with the same
weights; the model-level check against the example's own graph is in test_keras_example.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from eanet_course import layers
from eanet_course.layers import ExternalAttention

RNG = np.random.default_rng(7)


def _unfolded(layer: ExternalAttention, x):
    """The layer's function as main computed it, step by step with its four Dense layers."""
    n = x.shape[1]
    heads = ops.reshape(layer.to_heads(x), (-1, n, layer.total_heads, layer.head_dim))
    logits = layer.memory_key(ops.transpose(heads, (0, 2, 1, 3)))  # (B, H, N, S)
    over_patches = ops.softmax(logits, axis=-2)
    scores = over_patches / (ops.sum(over_patches, axis=-1, keepdims=True) + 1e-9)
    out = ops.transpose(layer.memory_value(scores), (0, 2, 1, 3))
    out = ops.reshape(out, (-1, n, layer.embed_dim * layer.dim_coefficient))
    return layer.output_projection(out), scores


@pytest.mark.parametrize("kwargs", [dict(embed_dim=64, num_heads=4, dim_coefficient=4),
                                    dict(embed_dim=24, num_heads=2, dim_coefficient=3,
                                         memory_units=5)], ids=["paper", "S=5"])
def test_same_parameters_outputs_and_gradients(kwargs):
    layer = ExternalAttention(**kwargs)
    x = tf.constant(RNG.normal(size=(3, 16, kwargs["embed_dim"])).astype("float32"))
    layer.build(x.shape)
    # Random biases too: a zero bias would hide a wrong fold of the biases.
    for weight in layer.weights:
        weight.assign(RNG.normal(scale=0.3, size=weight.shape).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        out, scores = layer(x, return_attention_scores=True)
        ref_out, ref_scores = _unfolded(layer, x)
        loss, ref_loss = (ops.sum(ops.sin(o)) for o in (out, ref_out))
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    np.testing.assert_allclose(out, ref_out, rtol=1e-5, atol=1e-5)
    for got, want in zip(tape.gradient(loss, [x, *layer.trainable_weights]),
                         tape.gradient(ref_loss, [x, *layer.trainable_weights])):
        scale = float(tf.reduce_max(tf.abs(want)))
        np.testing.assert_allclose(got, want, atol=1e-5 * max(scale, 1.0), rtol=1e-4)


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
