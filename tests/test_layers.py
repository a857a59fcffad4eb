"""The layers compute the maths of `eanet_course.reference`, keep its invariants, and round-trip."""

import json

import numpy as np
import pytest
import keras
import tensorflow as tf

from eanet_course import layers as layers_module
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


@pytest.mark.parametrize(("shape", "expected"), [((0, 8, 8, 1), (0, 16, 4)),
                                                 ((0, 32, 32, 3), (0, 64, 48))])
def test_patch_extract_of_an_empty_batch_has_the_patch_shape(shape, expected):
    assert tuple(PatchExtract(2 if shape[1] == 8 else 4)(np.zeros(shape, "float32")).shape) \
        == expected


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


def shared_shift(x):
    """``x`` plus one random vector per image, the same for all of its patches."""
    return x + 3.0 * RNG.normal(size=(x.shape[0], 1, x.shape[2])).astype("float32")


def ignores_a_shift_shared_by_all_patches(layer, x):
    """Whether the scores and output of ``layer`` are unchanged by :func:`shared_shift`.

    The shift moves each logit ``F M_k^T`` by an amount that depends on the image, the head
    and the memory unit, but not on the patch: a softmax over the patch axis N cancels it, a
    softmax over any other axis (S, the heads, the batch) does not.
    """
    out, scores = layer(x, return_attention_scores=True)
    shifted_out, shifted_scores = layer(shared_shift(x), return_attention_scores=True)
    return (np.allclose(shifted_scores, scores, atol=1e-5)
            and np.allclose(shifted_out, out, atol=1e-4))


def test_softmax_runs_over_the_patch_axis():
    layer = external()
    x = features(3)
    assert ignores_a_shift_shared_by_all_patches(layer, x)
    # A shift of one patch only is not cancelled: the comparison above can tell.
    moved = x.copy()
    moved[:, 0] += 3.0
    assert not np.allclose(layer(moved), layer(x), atol=1e-3)


def _normalization_over(axis):
    def double_normalization(logits, patch_axis=-2, memory_axis=-1, **dropout):
        over_axis = keras.ops.softmax(logits, axis=axis)
        return over_axis / keras.ops.sum(over_axis, axis=memory_axis, keepdims=True)
    return double_normalization


# ExternalAttention normalizes (B, H, S, N) logits: the last axis is N, the right one.
@pytest.mark.parametrize("axis", [2, 1, 0], ids=["memory S", "heads", "batch"])
def test_the_patch_axis_test_fails_for_a_softmax_over_another_axis(monkeypatch, axis):
    """The check of `test_softmax_runs_over_the_patch_axis`, run on a layer whose softmax runs
    over a wrong axis, must notice."""
    monkeypatch.setattr(layers_module, "double_normalization", _normalization_over(axis))
    assert not ignores_a_shift_shared_by_all_patches(external(), features(3))


def test_keras_double_normalization_matches_the_reference_on_batched_logits():
    logits = 2.0 * RNG.normal(size=(2, 3, 6, 5)).astype("float32")
    for shift in (0.0, 500.0):  # large logits: a stable softmax gives the same answer
        got = np.asarray(layers_module.double_normalization(logits + shift))
        np.testing.assert_allclose(got, reference.double_normalization(logits), atol=1e-5)


def test_patches_compete_for_each_memory_unit():
    """Softmax over N couples patches: changing one patch changes the others' scores."""
    layer = external()
    x = features(1)
    _, before = layer(x, return_attention_scores=True)
    x2 = x.copy()
    x2[0, 0] += 3.0
    _, after = layer(x2, return_attention_scores=True)
    assert not np.allclose(before[0, :, 1:], after[0, :, 1:], atol=1e-4)


LAYERS_OVER_PATCHES = [
    external,
    lambda: SelfAttention(16, num_heads=2),
    lambda: TransformerBlock(16, 32, num_heads=2, dim_coefficient=2),
    lambda: TransformerBlock(16, 32, num_heads=2, attention="self"),
]
LAYER_IDS = ["external", "self", "external_block", "self_block"]


@pytest.mark.parametrize("layer_fn", LAYERS_OVER_PATCHES, ids=LAYER_IDS)
def test_attention_is_permutation_equivariant_over_patches(layer_fn):
    layer = layer_fn()
    x = features()
    perm = RNG.permutation(x.shape[1])
    np.testing.assert_allclose(np.asarray(layer(x))[:, perm], layer(x[:, perm]), atol=1e-5)


@pytest.mark.parametrize("layer_fn", LAYERS_OVER_PATCHES, ids=LAYER_IDS)
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


#: Weights that attention provably cannot use. A shift shared by every patch cancels in external
#: attention's softmax over N, so the LayerNorm's beta and the biases before that softmax get a
#: zero gradient (up to rounding); in self-attention, q . b_k is the same for every key.
SHIFT_INVARIANT = {
    "external": ("attention_norm/beta", "attention/to_heads/bias", "attention/memory_key/bias"),
    "self": ("attention/key/bias",),
}


def check_gradients(weights, grads, invariant, blocks=1):
    """Every weight gets a real gradient, except the ``invariant`` ones (in each of ``blocks``
    blocks), which get ~0.

    Thresholds are relative to the largest gradient: rounding noise (~1e-8 of it) must not pass
    for a gradient that reaches a weight.
    """
    assert len(grads) == len(weights) and weights
    assert all(grad is not None for grad in grads), [w.path for w, g in zip(weights, grads)
                                                       if g is None]
    sizes = {w.path: float(tf.reduce_max(tf.abs(g))) for w, g in zip(weights, grads)}
    scale = max(sizes.values())
    dead = {p for p in sizes if p.split("/", 1)[1] in invariant}
    assert len(dead) == len(invariant) * blocks, sorted(dead)
    assert not [p for p in sizes if p not in dead and sizes[p] < 1e-4 * scale], sizes
    assert not [p for p in dead if sizes[p] > 1e-6 * scale], sizes


@pytest.mark.parametrize("attention", ["external", "self"])
def test_gradients_reach_every_weight(attention):
    block = TransformerBlock(16, 32, num_heads=2, dim_coefficient=2, attention=attention)
    x = tf.constant(features())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(x) ** 2)
    grads = tape.gradient(loss, block.trainable_weights)
    assert len(block.trainable_weights) == 16
    check_gradients(block.trainable_weights, grads, SHIFT_INVARIANT[attention])


# --- serialization: tests/test_layer_harness.py runs every layer through one harness ---------

# --- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("make,fix", [
    (lambda: ExternalAttention(30, num_heads=4), "num_heads among"),
    (lambda: SelfAttention(30, num_heads=4), "num_heads among"),
    (lambda: ExternalAttention(16, memory_units=0),
     r"memory_units \(S, at least 1\) must be a positive integer, got 0"),
    (lambda: ExternalAttention(16, memory_units=-2), r"memory_units \(S, at least 1\)"),
    (lambda: ExternalAttention(16, memory_units=2.5), r"memory_units \(S, at least 1\)"),
    (lambda: TransformerBlock(16, 32, memory_units=0), r"memory_units \(S, at least 1\)"),
    (lambda: TransformerBlock(30, 32, num_heads=4), r"num_heads among \[1, 2, 3, 5, 6"),
    (lambda: TransformerBlock(30, 32, num_heads=4, attention="self"), "num_heads among"),
    (lambda: ExternalAttention(2, num_heads=1, dim_coefficient=4), "set memory_units"),
    (lambda: PatchExtract(0), "patch_size must be a positive integer"),
    (lambda: TransformerBlock(16, 32, attention="linear"), "use one of"),
])
def test_bad_arguments_fail_at_construction(make, fix):
    with pytest.raises(ValueError, match=fix):
        make()


@pytest.mark.parametrize("layer,shape,fix", [
    (PatchExtract(3), (None, 32, 32, 3), r"height 32 .*pick a patch_size among \[1, 2, 4, 8"),
    (PatchExtract(4), (None, 8, 6, 1), r"width 6 .*pick a patch_size among \[1, 2, 3, 6\]"),
    (PatchExtract(2), (None, 32, 32), r"rank 4 \(batch, height, width, channels\)"),
    (ExternalAttention(16, num_heads=2), (None, 16), "rank 3"),
    (SelfAttention(16, num_heads=2), (None, 4, 4, 16), "rank 3"),
    (PatchEmbedding(64, 16), (None, 16, 12), "num_patches=.image_size // patch_size"),
    (PatchEmbedding(16, 8), (None, 48), r"rank 3 .*Reshape your input"),
    (TransformerBlock(16, 32, num_heads=2), (None, 4, 4, 16), r"rank 3 .*Reshape your input"),
    (TransformerBlock(16, 32, num_heads=2), (None, 9, 8), "PatchEmbedding"),
])
def test_bad_shapes_fail_at_build(layer, shape, fix):
    with pytest.raises(ValueError, match=fix):
        layer.build(shape)


@pytest.mark.parametrize("layer,shape", [
    (PatchExtract(2), (2, 8, 8)),
    (PatchExtract(3), (2, 8, 8, 1)),
    (PatchEmbedding(16, 8), (2, 48)),
    (ExternalAttention(16, num_heads=2), (2, 16)),
    (SelfAttention(16, num_heads=2), (2, 4, 4, 16)),
    (TransformerBlock(16, 32, num_heads=2), (2, 4, 4, 16)),
], ids=lambda v: type(v).__name__ if isinstance(v, keras.layers.Layer) else str(v))
def test_calling_a_layer_on_a_bad_shape_fails_before_computing(layer, shape):
    """The first call builds the layer: the same message as `build`, not a backend error."""
    with pytest.raises(ValueError, match=type(layer).__name__ + r".*(Reshape your input|pick a)"):
        layer(np.zeros(shape, "float32"))


# --- numbers, precision and formats ----------------------------------------------------------

def test_numpy_integers_are_accepted_and_configs_stay_json():
    block = TransformerBlock(np.int64(16), np.int32(32), num_heads=np.int64(2),
                             dim_coefficient=np.uint8(2), memory_units=np.int16(5),
                             attention_dropout=np.float32(0.25))
    config = block.get_config()
    assert config["embed_dim"] == 16 and type(config["embed_dim"]) is int
    assert type(config["memory_units"]) is int and type(config["attention_dropout"]) is float
    json.dumps(config)
    _, scores = block(features(), return_attention_scores=True)
    assert scores.shape == (2, 4, 12, 5)


@pytest.mark.parametrize("make,fix", [
    (lambda: ExternalAttention(16, attention_dropout=float("nan")),
     r"attention_dropout must be a number in \[0, 1\), got nan"),
    (lambda: TransformerBlock(16, 32, mlp_dropout=1.0), r"mlp_dropout must be a number in \[0, 1"),
    (lambda: SelfAttention(16, key_dim=np.float32(4)), "key_dim must be a positive integer"),
    (lambda: TransformerBlock(16, 32, num_heads=np.bool_(True)), "num_heads must be a positive"),
])
def test_bad_numbers_fail_at_construction(make, fix):
    with pytest.raises(ValueError, match=fix):
        make()


def test_float16_double_normalization_stays_finite_at_large_scales():
    """In float16, 1e-9 rounds to 0 and exp(-18) underflows: a patch whose weights all
    underflow gave 0 / 0. The normalization runs in float32 under a float16 compute dtype."""
    reference_layer = external()
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        layer = external()
    finally:
        keras.mixed_precision.set_global_policy(previous)
    layer.set_weights(reference_layer.get_weights())
    x = 30.0 * features()
    out, scores = layer(x, return_attention_scores=True)
    assert out.dtype == scores.dtype == "float16"
    out32 = np.asarray(out, dtype=np.float32)
    assert np.isfinite(out32).all() and np.isfinite(np.asarray(scores, np.float32)).all()
    expected = np.asarray(reference_layer(x))
    np.testing.assert_allclose(out32, expected, atol=0.05 * np.abs(expected).max())
    logits = keras.ops.cast(30.0 * RNG.normal(size=(2, 3, 6, 5)), "float16")
    got = np.asarray(layers_module.double_normalization(logits), np.float32)
    np.testing.assert_allclose(got, reference.double_normalization(np.asarray(logits, np.float64)),
                               atol=2e-3)


def test_patch_extract_ignores_the_global_image_data_format():
    images = RNG.normal(size=(2, 8, 12, 3)).astype("float32")
    previous = keras.config.image_data_format()
    keras.config.set_image_data_format("channels_first")
    try:
        out = PatchExtract(4)(images)
    finally:
        keras.config.set_image_data_format(previous)
    np.testing.assert_allclose(out, reference.extract_patches(images, 4), atol=0)
