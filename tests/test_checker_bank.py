"""A bank of learner answers, right and wrong, run against every checker.

Right answers come in the styles a class writes (NumPy, einsum, loops, keras.ops, TensorFlow
tensors, float32 and float64, lists); every one must pass. Wrong answers are the classic
mistakes and the near misses a weak checker lets through (an unstable softmax, one maximum for
the whole array, a uint8 cast, a result cached by shape, a model built to count parameters, an
input changed in place, a pair in the wrong order...); every one must fail with a "Likely
mistake:" line, and where the bank gives words, that line must contain them. More answers,
written from the exercises' text as a learner reads it, are in ``learner_bank.py`` and
``learner_bank_<group>.py``. The rates are printed (``pytest -s``) and held to the issue's
targets.
"""

from __future__ import annotations

import importlib
import math
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from eanet_course import checks
from eanet_course import reference as ref
from eanet_course.layers import ExternalAttention, TransformerBlock
from learner_bank import LEARNER_BANK

# ----------------------------------------------------------------------------------------------
# 00 standardize


def std_numpy(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) / std, (test - mean) / std


def std_float32_ddof1(train, test):
    train, test = train.astype("float32"), test.astype("float32")
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2), ddof=1)
    return (train - mean) / std, (test - mean) / std


def std_tf(train, test):
    t = tf.cast(train, tf.float64)
    mean, var = tf.nn.moments(t, axes=[0, 1, 2])
    return (t - mean) / tf.sqrt(var), (tf.cast(test, tf.float64) - mean) / tf.sqrt(var)


def std_whole_array(train, test):
    return (train - train.mean()) / train.std(), (test - train.mean()) / train.std()


def std_own_test_stats(train, test):
    return std_numpy(train, test)[0], std_numpy(test, train)[0]


def std_per_image(train, test):
    def one(images):
        return ((images - images.mean(axis=(1, 2), keepdims=True))
                / images.std(axis=(1, 2), keepdims=True))
    return one(train), one(test)


def std_no_divide(train, test):
    mean = train.mean(axis=(0, 1, 2))
    return train - mean, test - mean


def std_uint8_result(train, test):
    a, b = std_numpy(train, test)
    return a.astype(np.uint8), b.astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# 01 patches


def patches_numpy(images, p):
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def patches_loops(images, p):
    b, h, w, c = images.shape
    out = []
    for image in images:
        patches = [image[r:r + p, q:q + p].reshape(-1)
                   for r in range(0, h, p) for q in range(0, w, p)]
        out.append(patches)
    return out  # a nested list


def patches_keras(images, p):
    patches = ops.image.extract_patches(ops.convert_to_tensor(images, "float32"), p)
    return ops.reshape(patches, (images.shape[0], -1, patches.shape[-1]))


def patches_tf(images, p):
    patches = tf.image.extract_patches(images, [1, p, p, 1], [1, p, p, 1], [1, 1, 1, 1], "VALID")
    return tf.reshape(patches, (images.shape[0], -1, patches.shape[-1]))


def patches_einops_style(images, p):
    b, h, w, c = images.shape
    return np.einsum("bxpyqc->bxypqc", images.reshape(b, h // p, p, w // p, p, c)).reshape(
        b, (h // p) * (w // p), -1)


def patches_uint8(images, p):
    return patches_numpy(images.astype(np.uint8), p)


def patches_column_major(images, p):
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 3, 1, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def patches_channel_planes(images, p):
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4)
    return grid.reshape(b, -1, p * p * c)


def patches_plain_reshape(images, p):
    b, h, w, c = images.shape
    return images.reshape(b, (h // p) * (w // p), p * p * c)


def patches_square_only(images, p):
    """Works only for square images (mixes up h and w)."""
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, h // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


_patch_cache: dict = {}


def patches_cached_by_shape(images, p):
    key = (images.shape, p)
    if key not in _patch_cache:
        _patch_cache[key] = patches_numpy(images, p)
    return _patch_cache[key]


# ----------------------------------------------------------------------------------------------
# 02 scaled dot-product attention


def sdpa_numpy(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def sdpa_einsum(q, k, v):
    logits = np.einsum("...qd,...kd->...qk", q, k) / math.sqrt(q.shape[-1])
    w = ref.softmax(logits, axis=-1)
    return np.einsum("...qk,...kv->...qv", w, v), w


def sdpa_keras(q, k, v):
    logits = ops.matmul(q, ops.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])
    w = ops.softmax(logits, axis=-1)
    return ops.matmul(w, v), w


def sdpa_tf_float32(q, k, v):
    q, k, v = (tf.constant(a, tf.float32) for a in (q, k, v))
    w = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / tf.sqrt(float(q.shape[-1])), axis=-1)
    return tf.matmul(w, v), w


def sdpa_unstable(q, k, v):
    e = np.exp(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def sdpa_global_max(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(logits - logits.max())
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def sdpa_no_scale(q, k, v):
    w = ref.softmax(q @ np.swapaxes(k, -1, -2), axis=-1)
    return w @ v, w


def sdpa_scale_dk(q, k, v):
    w = ref.softmax(q @ np.swapaxes(k, -1, -2) / q.shape[-1], axis=-1)
    return w @ v, w


def sdpa_over_queries(q, k, v):
    w = ref.softmax(q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1]), axis=-2)
    return w @ v, w


def sdpa_returns_logits(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    return ref.softmax(logits) @ v, logits


def sdpa_only_output(q, k, v):
    return ref.scaled_dot_product_attention(q, k, v)[0]


def sdpa_k_transpose_2d(q, k, v):
    w = ref.softmax(q @ k.T / np.sqrt(q.shape[-1]), axis=-1)  # .T reverses every axis
    return w @ v, w


# ----------------------------------------------------------------------------------------------
# 03 / 04 normalizations and external attention


def dn_numpy(logits):
    e = np.exp(logits - logits.max(axis=-2, keepdims=True))
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def dn_keras(logits):
    a = ops.softmax(logits, axis=-2)
    return a / (ops.sum(a, axis=-1, keepdims=True) + 1e-9)


def dn_tf_float32(logits):
    a = tf.nn.softmax(tf.constant(logits, tf.float32), axis=-2)
    return a / tf.reduce_sum(a, axis=-1, keepdims=True)


def dn_loops(logits):
    """Loops over the leading axes of a (..., N, S) map, float64 throughout."""
    flat = logits.reshape(-1, *logits.shape[-2:])
    out = np.empty_like(flat)
    for i, m in enumerate(flat):
        for j in range(m.shape[1]):
            column = np.exp(m[:, j] - max(m[:, j]))
            out[i, :, j] = column / sum(column)
        for n in range(m.shape[0]):
            out[i, n] /= out[i, n].sum()
    return out.reshape(logits.shape).tolist()


def dn_scipy(logits):
    from scipy.special import softmax
    a = softmax(logits, axis=-2)
    return a / a.sum(axis=-1, keepdims=True)


def dn_unstable(logits):
    e = np.exp(logits)
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def dn_global_max(logits):
    e = np.exp(logits - logits.max())
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def dn_max_wrong_axis(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def dn_softmax_over_s(logits):
    return ref.softmax(logits, axis=-1)


def dn_no_l1(logits):
    return ref.softmax(logits, axis=-2)


def dn_swapped(logits):
    a = ref.softmax(logits, axis=-1)
    return a / a.sum(axis=-2, keepdims=True)


def dn_fixed_axes(logits):
    a = ref.softmax(logits, axis=0)
    return a / a.sum(axis=1, keepdims=True)


def dn_two_softmaxes(logits):
    return ref.softmax(ref.softmax(logits, axis=-2), axis=-1)


def dn_no_exp(logits):
    a = logits / logits.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def dn_float16(logits):
    return dn_numpy(logits.astype(np.float16))


_dn_cache: dict = {}


def dn_cached(logits):
    return _dn_cache.setdefault(logits.shape, dn_numpy(logits))


def ea_with(normalization, memory="v"):
    def external_attention(features, m_k, m_v):
        a = np.asarray(normalization(features @ m_k.T))
        return a @ (m_v if memory == "v" else m_k), a
    return external_attention


def ea_einsum(features, m_k, m_v):
    a = dn_numpy(np.einsum("...nd,sd->...ns", features, m_k))
    return np.einsum("...ns,sv->...nv", a, m_v), a


def ea_keras(features, m_k, m_v):
    a = dn_keras(ops.matmul(features, ops.transpose(m_k)))
    return ops.matmul(a, m_v), a


# ----------------------------------------------------------------------------------------------
# 05 heads and the layer


def split_numpy(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, h, width // h).transpose(0, 2, 1, 3)


def split_keras(x, h):
    b, n, width = x.shape
    return ops.transpose(ops.reshape(x, (b, n, h, width // h)), (0, 2, 1, 3))


def split_swapaxes(x, h):
    return np.swapaxes(x.reshape(*x.shape[:2], h, -1), 1, 2)


def split_loops(x, h):
    dh = x.shape[-1] // h
    return np.stack([x[:, :, i * dh:(i + 1) * dh] for i in range(h)], axis=1)


def split_no_transpose(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, h, width // h)


def split_straight(x, h):
    b, n, width = x.shape
    return x.reshape(b, h, n, width // h)


def split_interleaved(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, width // h, h).transpose(0, 3, 1, 2)


def split_fixed_dh(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, h, 4).transpose(0, 2, 1, 3)  # dh hard-coded


def merge_numpy(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def merge_concatenate(x):
    return np.concatenate(list(np.moveaxis(x, 1, 0)), axis=-1)


def merge_tf(x):
    b, h, n, dh = x.shape
    return tf.reshape(tf.transpose(x, (0, 2, 1, 3)), (b, n, h * dh))


def merge_no_transpose(x):
    b, h, n, dh = x.shape
    return x.reshape(b, n, h * dh)


def merge_interleaved(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 3, 1).reshape(b, n, h * dh)


@keras.saving.register_keras_serializable(package="bank")
class LayerRight(layers.Layer):
    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.dim_coefficient = embed_dim, num_heads, dim_coefficient
        self.memory_units = memory_units
        s = memory_units or embed_dim // dim_coefficient
        self.heads = num_heads * dim_coefficient
        self.head_dim = embed_dim // num_heads
        self.to_heads = layers.Dense(embed_dim * dim_coefficient)
        self.memory_key = layers.Dense(s)
        self.memory_value = layers.Dense(self.head_dim)
        self.output_projection = layers.Dense(embed_dim)

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.transpose(ops.reshape(self.to_heads(x), (-1, n, self.heads, self.head_dim)),
                          (0, 2, 1, 3))
        a = self._normalize(self.memory_key(h))
        out = ops.transpose(self.memory_value(a), (0, 2, 1, 3))
        return self.output_projection(ops.reshape(out, (-1, n, self.embed_dim * self.dim_coefficient)))

    def _normalize(self, logits):
        a = ops.softmax(logits, axis=-2)
        return a / ops.sum(a, axis=-1, keepdims=True)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "dim_coefficient": self.dim_coefficient, "memory_units": self.memory_units}


@keras.saving.register_keras_serializable(package="bank")
class LayerAddWeight(layers.Layer):
    """Right, with add_weight in build and einsum, weights made in another order."""

    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.dim_coefficient = embed_dim, num_heads, dim_coefficient
        self.memory_units = memory_units

    def build(self, input_shape):
        d, c = self.embed_dim, self.dim_coefficient
        s, dh = self.memory_units or d // c, d // self.num_heads
        w = self.add_weight
        self.w_out, self.b_out = w((d * c, d)), w((d,), initializer="zeros")
        self.m_k, self.b_k = w((dh, s)), w((s,), initializer="zeros")
        self.m_v, self.b_v = w((s, dh)), w((dh,), initializer="zeros")
        self.w_in, self.b_in = w((input_shape[-1], d * c)), w((d * c,), initializer="zeros")

    def call(self, x):
        n = ops.shape(x)[1]
        hds = self.num_heads * self.dim_coefficient
        h = ops.reshape(ops.einsum("bnd,de->bne", x, self.w_in) + self.b_in,
                        (-1, n, hds, self.embed_dim // self.num_heads))
        logits = ops.einsum("bnhk,ks->bhns", h, self.m_k) + self.b_k
        a = ops.softmax(logits, axis=2)
        a = a / ops.sum(a, axis=3, keepdims=True)
        out = ops.einsum("bhns,sk->bnhk", a, self.m_v) + self.b_v
        out = ops.reshape(out, (-1, n, self.embed_dim * self.dim_coefficient))
        return ops.matmul(out, self.w_out) + self.b_out

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "dim_coefficient": self.dim_coefficient, "memory_units": self.memory_units}


@keras.saving.register_keras_serializable(package="bank")
class LayerSoftmaxOverS(LayerRight):
    def _normalize(self, logits):
        return ops.softmax(logits, axis=-1)


@keras.saving.register_keras_serializable(package="bank")
class LayerNoL1(LayerRight):
    def _normalize(self, logits):
        return ops.softmax(logits, axis=-2)


@keras.saving.register_keras_serializable(package="bank")
class LayerNoConfig(LayerRight):
    def get_config(self):
        return super(LayerRight, self).get_config()


class LayerNotRegistered(LayerRight):
    pass


@keras.saving.register_keras_serializable(package="bank")
class LayerNoBias(LayerRight):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("to_heads", "memory_key", "memory_value", "output_projection"):
            setattr(self, name, layers.Dense(getattr(self, name).units, use_bias=False))


@keras.saving.register_keras_serializable(package="bank")
class LayerMergeWrong(LayerRight):
    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.transpose(ops.reshape(self.to_heads(x), (-1, n, self.heads, self.head_dim)),
                          (0, 2, 1, 3))
        out = self.memory_value(self._normalize(self.memory_key(h)))
        return self.output_projection(ops.reshape(out, (-1, n, self.embed_dim * self.dim_coefficient)))


# ----------------------------------------------------------------------------------------------
# 06 the block and the count


def block_right(x, d, mlp, heads, c):
    y = layers.Add()([x, ExternalAttention(d, heads, c)(layers.LayerNormalization(epsilon=1e-5)(x))])
    h = layers.Dense(mlp, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return layers.Add()([y, layers.Dense(d)(h)])


def block_operators_and_activation(x, d, mlp, heads, c):
    y = x + ExternalAttention(embed_dim=d, num_heads=heads, dim_coefficient=c)(
        layers.LayerNormalization(epsilon=1e-5, name="ln_a")(x))
    h = layers.Activation("gelu")(layers.Dense(mlp)(layers.LayerNormalization(epsilon=1e-5)(y)))
    return y + layers.Dropout(0.0)(layers.Dense(d)(h))


def block_ops_gelu(x, d, mlp, heads, c):
    """keras.ops.gelu: the tanh approximation by default."""
    y = x + ExternalAttention(d, heads, c)(layers.LayerNormalization(epsilon=1e-5)(x))
    h = ops.gelu(layers.Dense(mlp)(layers.LayerNormalization(epsilon=1e-5)(y)))
    return y + layers.Dense(d)(h)


class MyBlock(layers.Layer):
    """Right, as a custom layer holding the parts."""

    def __init__(self, d, mlp, heads, c, **kwargs):
        super().__init__(**kwargs)
        self.norm1 = layers.LayerNormalization(epsilon=1e-5)
        self.attention = ExternalAttention(d, heads, c)
        self.norm2 = layers.LayerNormalization(epsilon=1e-5)
        self.hidden = layers.Dense(mlp, activation="gelu")
        self.out = layers.Dense(d)

    def call(self, x):
        y = x + self.attention(self.norm1(x))
        return y + self.out(self.hidden(self.norm2(y)))


def block_custom_layer(x, d, mlp, heads, c):
    return MyBlock(d, mlp, heads, c)(x)


def _block(x, d, mlp, heads, c, norm1=None, norm2=None, act="gelu", res1=True, res2=True,
           mlp_reads_x=False):
    norm1 = norm1 or layers.LayerNormalization(epsilon=1e-5)
    norm2 = norm2 or layers.LayerNormalization(epsilon=1e-5)
    attended = ExternalAttention(d, heads, c)(norm1(x))
    y = layers.Add()([x, attended]) if res1 else attended
    h = layers.Dense(mlp, activation=act)(norm2(x if mlp_reads_x else y))
    out = layers.Dense(d)(h)
    return layers.Add()([y, out]) if res2 else out


def block_batchnorm(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, norm1=layers.BatchNormalization(),
                  norm2=layers.BatchNormalization())


def block_ln_wrong_axis(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, norm1=layers.LayerNormalization(axis=1, epsilon=1e-5))


def block_ln_both_axes(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, norm2=layers.LayerNormalization(axis=[1, 2], epsilon=1e-5))


def block_shared_name(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, norm1=layers.LayerNormalization(epsilon=1e-5, name="ln"),
                  norm2=layers.LayerNormalization(epsilon=1e-5, name="ln"))


def block_shared_norm(x, d, mlp, heads, c):
    ln = layers.LayerNormalization(epsilon=1e-5)
    return _block(x, d, mlp, heads, c, norm1=ln, norm2=ln)


def block_default_epsilon(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, norm1=layers.LayerNormalization(),
                  norm2=layers.LayerNormalization())


def block_relu(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, act="relu")


def block_no_activation(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, act=None)


def block_no_first_residual(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, res1=False)


def block_no_second_residual(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, res2=False)


def block_mlp_reads_x(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, mlp_reads_x=True)


def block_no_residuals(x, d, mlp, heads, c):
    return _block(x, d, mlp, heads, c, res1=False, res2=False)


def block_post_norm(x, d, mlp, heads, c):
    y = layers.LayerNormalization(epsilon=1e-5)(x + ExternalAttention(d, heads, c)(x))
    h = layers.Dense(mlp, activation="gelu")(y)
    return layers.LayerNormalization(epsilon=1e-5)(y + layers.Dense(d)(h))


def block_missing_norm(x, d, mlp, heads, c):
    y = x + ExternalAttention(d, heads, c)(layers.LayerNormalization(epsilon=1e-5)(x))
    return y + layers.Dense(d)(layers.Dense(mlp, activation="gelu")(y))


def block_heads_swapped(x, d, mlp, heads, c):
    y = x + ExternalAttention(d, c, heads)(layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(d)(h)


def block_the_package(x, d, mlp, heads, c):
    return TransformerBlock(d, mlp, heads, "external", c)(x)


def _count(config):
    def dense(n_in, n_out):
        return n_in * n_out + n_out
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // config.num_heads, config.memory_units or d // c
    attention = dense(d, d * c) + dense(dh, s) + dense(s, dh) + dense(d * c, d)
    block = 4 * d + attention + dense(d, config.mlp_dim) + dense(config.mlp_dim, d)
    return (dense(config.patch_size**2 * config.channels, d) + config.num_patches * d
            + config.num_blocks * block + dense(d, config.num_classes))


def count_numpy_int(config):
    return np.int64(_count(config))


def count_float(config):
    return float(_count(config))


def count_builds_model(config):
    from eanet_course.models import build_eanet
    return build_eanet(config).count_params()


def count_no_positions(config):
    return _count(config) - config.num_patches * config.embed_dim


def count_one_block(config):
    return _count(config.replace(num_blocks=1))


def count_ignores_memory_units(config):
    return _count(config.replace(memory_units=None))


def count_no_biases(config):
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // config.num_heads, config.memory_units or d // c
    block = 4 * d + d * d * c + dh * s + s * dh + d * c * d + d * config.mlp_dim * 2
    return (config.patch_size**2 * config.channels * d + config.num_patches * d
            + config.num_blocks * block + d * config.num_classes)


def count_norms_as_one_vector(config):
    return _count(config) - config.num_blocks * 2 * config.embed_dim


def count_true_division(config):
    return _count(config) + 0.5


# ----------------------------------------------------------------------------------------------
# 07 schedule and training step


def schedule_keras(peak, total, warmup):
    return keras.optimizers.schedules.CosineDecay(0.0, total - warmup, warmup_target=peak,
                                                  warmup_steps=warmup)


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak, total, warmup):
        self.peak, self.total, self.warmup = peak, total, warmup

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = self.peak * step / self.warmup
        progress = ops.clip((step - self.warmup) / (self.total - self.warmup), 0.0, 1.0)
        falling = 0.5 * self.peak * (1.0 + ops.cos(math.pi * progress))
        return ops.where(step < self.warmup, rising, falling)


def schedule_subclass(peak, total, warmup):
    return WarmupCosine(peak, total, warmup)


class PythonMathSchedule(WarmupCosine):
    def __call__(self, step):
        if step < self.warmup:
            return self.peak * step / self.warmup
        return 0.5 * self.peak * (1 + math.cos(math.pi * (step - self.warmup)
                                               / (self.total - self.warmup)))


class IfSchedule(WarmupCosine):
    """Right: an `if` on the tensor step, which tf.function's autograph turns into a cond."""

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if step < self.warmup:
            return self.peak * step / self.warmup
        return 0.5 * self.peak * (1 + tf.cos(math.pi * (step - self.warmup)
                                             / (self.total - self.warmup)))


def schedule_autograph_if(peak, total, warmup):
    return IfSchedule(peak, total, warmup)


def schedule_python_math(peak, total, warmup):
    return PythonMathSchedule(peak, total, warmup)


def schedule_no_warmup(peak, total, warmup):
    return keras.optimizers.schedules.CosineDecay(peak, total)


def schedule_decay_steps_total(peak, total, warmup):
    return keras.optimizers.schedules.CosineDecay(0.0, total, warmup_target=peak,
                                                  warmup_steps=warmup)


def schedule_alpha(peak, total, warmup):
    return keras.optimizers.schedules.CosineDecay(0.0, total - warmup, alpha=0.1,
                                                  warmup_target=peak, warmup_steps=warmup)


class OffByOne(WarmupCosine):
    def __call__(self, step):
        return super().__call__(ops.cast(step, "float32") + 1.0)


def schedule_off_by_one(peak, total, warmup):
    return OffByOne(peak, total, warmup)


class Linear(WarmupCosine):
    def __call__(self, step):
        step = ops.cast(step, "float32")
        rising = self.peak * step / self.warmup
        falling = self.peak * ops.clip((self.total - step) / (self.total - self.warmup), 0, 1)
        return ops.where(step < self.warmup, rising, falling)


def schedule_linear(peak, total, warmup):
    return Linear(peak, total, warmup)


def schedule_constant(peak, total, warmup):
    return peak


def step_right(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


@tf.function
def step_tf_function(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
    return loss


def step_inference_mode(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_swapped_loss(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(model(images, training=True), labels)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_ascent(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip([-g for g in grads], model.trainable_variables))
    return loss


def step_not_applied(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    tape.gradient(loss, model.trainable_variables)
    return loss


def step_outside_tape(model, optimizer, loss_fn, images, labels):
    predictions = model(images, training=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, predictions)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


# ----------------------------------------------------------------------------------------------
# 08-10


def pixels_kron(scores, size, p):
    side = size // p
    return np.kron(scores.reshape(side, side), np.ones((p, p)))


def pixels_repeat_keras(scores, size, p):
    grid = ops.reshape(scores, (size // p, size // p))
    return ops.repeat(ops.repeat(grid, p, axis=0), p, axis=1)


def pixels_transposed(scores, size, p):
    side = size // p
    return np.kron(scores.reshape(side, side).T, np.ones((p, p)))


def pixels_tile(scores, size, p):
    return np.tile(scores.reshape(size // p, size // p), (p, p))


def top_numpy(attention, k):
    return np.argsort(-attention.sum(axis=0))[:k]


def top_list(attention, k):
    totals = attention.sum(axis=0).tolist()
    return sorted(range(len(totals)), key=lambda j: -totals[j])[:k]


def top_ascending(attention, k):
    return np.argsort(attention.sum(axis=0))[-k:]


def top_index_order(attention, k):
    return np.sort(np.argsort(-attention.sum(axis=0))[:k])


def top_rows(attention, k):
    return np.argsort(-attention.sum(axis=1))[:k]


def top_max(attention, k):
    return np.argsort(-attention.max(axis=0))[:k]


def slope_polyfit(ns, costs):
    return np.polyfit(np.log(ns), np.log(costs), 1)[0]


def slope_log10_lstsq(ns, costs):
    a = np.stack([np.log10(ns), np.ones(len(ns))], axis=1)
    return float(np.linalg.lstsq(a, np.log10(costs), rcond=None)[0][0])


def slope_linear(ns, costs):
    return np.polyfit(ns, costs, 1)[0]


def slope_endpoints(ns, costs):
    return (math.log(costs[-1]) - math.log(costs[0])) / (math.log(ns[-1]) - math.log(ns[0]))


def slope_intercept(ns, costs):
    return np.polyfit(np.log(ns), np.log(costs), 1)[1]


def slope_both_coefficients(ns, costs):
    return np.polyfit(np.log(ns), np.log(costs), 1)


def sinkhorn_right(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_log_domain(logits, steps):
    from scipy.special import logsumexp
    lp = logits
    for _ in range(steps):
        lp = lp - logsumexp(lp, axis=-2, keepdims=True)
        lp = lp - logsumexp(lp, axis=-1, keepdims=True)
    return np.exp(lp)


def sinkhorn_rows_first(logits, steps):
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-1, keepdims=True)
        p = p / p.sum(axis=-2, keepdims=True)
    return p


def sinkhorn_unstable(logits, steps):
    p = np.exp(logits)
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_one_round(logits, steps):
    return sinkhorn_right(logits, 1)


def em_right(features, memory):
    z = ref.softmax(features @ memory.T, axis=-1)
    z = z / z.sum(axis=0, keepdims=True)
    return z.T @ features


def em_loops(features, memory):
    z = ref.softmax(features @ memory.T, axis=-1)
    return np.stack([(z[:, j:j + 1] * features).sum(0) / z[:, j].sum()
                     for j in range(memory.shape[0])])


def em_softmax_over_n(features, memory):
    z = ref.softmax(features @ memory.T, axis=0)
    z = z / z.sum(axis=0, keepdims=True)
    return z.T @ features


def em_sums(features, memory):
    return ref.softmax(features @ memory.T, axis=-1).T @ features


# ----------------------------------------------------------------------------------------------
# Misbehaving answers: every checker must survive them.


def exits(*args):
    import sys
    sys.exit(3)


def loops_forever(*args):
    while True:
        pass


def loops_forever_catching(*args):
    while True:
        try:
            sum(range(100))
        except Exception:  # noqa: BLE001 -- a learner's catch-all
            pass


# (checker, answer, passes, words the message must contain when it fails)
C = checks
BANK = [
    (C.check_standardize, std_numpy, True, None),
    (C.check_standardize, std_float32_ddof1, True, None),
    (C.check_standardize, std_tf, True, None),
    (C.check_standardize, std_whole_array, False, "whole array"),
    (C.check_standardize, std_own_test_stats, False, "own statistics"),
    (C.check_standardize, std_no_divide, False, "standard deviation is missing"),
    (C.check_standardize, std_per_image, False, "its own statistics"),
    (C.check_standardize, std_uint8_result, False, "whole number"),
    (C.check_extract_patches, patches_numpy, True, None),
    (C.check_extract_patches, patches_loops, True, None),
    (C.check_extract_patches, patches_keras, True, None),
    (C.check_extract_patches, patches_tf, True, None),
    (C.check_extract_patches, patches_einops_style, True, None),
    (C.check_extract_patches, patches_uint8, False, "cast to integers"),
    (C.check_extract_patches, patches_column_major, False, "column by column over the image"),
    (C.check_extract_patches, patches_channel_planes, False, "channel plane"),
    (C.check_extract_patches, patches_plain_reshape, False, "plain reshape"),
    (C.check_extract_patches, patches_square_only, False, "read every size"),
    (C.check_extract_patches, patches_cached_by_shape, False, "earlier call"),
    (C.check_scaled_dot_product_attention, sdpa_numpy, True, None),
    (C.check_scaled_dot_product_attention, sdpa_einsum, True, None),
    (C.check_scaled_dot_product_attention, sdpa_keras, True, None),
    (C.check_scaled_dot_product_attention, sdpa_tf_float32, True, None),
    (C.check_scaled_dot_product_attention, sdpa_unstable, False, "overflows"),
    (C.check_scaled_dot_product_attention, sdpa_global_max, False, "one maximum for the whole"),
    (C.check_scaled_dot_product_attention, sdpa_no_scale, False, "scale factor is missing"),
    (C.check_scaled_dot_product_attention, sdpa_scale_dk, False, "divides by d_k"),
    (C.check_scaled_dot_product_attention, sdpa_over_queries, False, "over the queries"),
    (C.check_scaled_dot_product_attention, sdpa_returns_logits, False, "before the softmax"),
    (C.check_scaled_dot_product_attention, sdpa_only_output, False, "return both"),
    (C.check_scaled_dot_product_attention, sdpa_k_transpose_2d, False, "reverses every axis"),
    (C.check_double_normalization, dn_numpy, True, None),
    (C.check_double_normalization, dn_keras, True, None),
    (C.check_double_normalization, dn_tf_float32, True, None),
    (C.check_double_normalization, dn_loops, True, None),
    (C.check_double_normalization, dn_scipy, True, None),
    (C.check_double_normalization, dn_unstable, False, "overflows"),
    (C.check_double_normalization, dn_global_max, False, "one maximum for the whole"),
    (C.check_double_normalization, dn_max_wrong_axis, False, "taken over the memory axis S"),
    (C.check_double_normalization, dn_softmax_over_s, False, "runs over the memory axis S"),
    (C.check_double_normalization, dn_no_l1, False, "l1 step is missing"),
    (C.check_double_normalization, dn_swapped, False, "both axes swapped"),
    (C.check_double_normalization, dn_fixed_axes, False, "counted from the front"),
    (C.check_double_normalization, dn_two_softmaxes, False, "second softmax"),
    (C.check_double_normalization, dn_no_exp, False, "exponential is missing"),
    (C.check_double_normalization, dn_float16, False, "low-precision"),
    (C.check_double_normalization, dn_cached, False, "earlier call"),
    (C.check_external_attention, ea_with(dn_numpy), True, None),
    (C.check_external_attention, ea_einsum, True, None),
    (C.check_external_attention, ea_keras, True, None),
    (C.check_external_attention, ea_with(dn_unstable), False, "overflows"),
    (C.check_external_attention, ea_with(dn_global_max), False, "one maximum for the whole"),
    (C.check_external_attention, ea_with(dn_softmax_over_s), False, "memory axis S"),
    (C.check_external_attention, ea_with(dn_no_l1), False, "l1 step is missing"),
    (C.check_external_attention, ea_with(dn_numpy, memory="k"), False, "not M_k"),
    (C.check_split_heads, split_numpy, True, None),
    (C.check_split_heads, split_keras, True, None),
    (C.check_split_heads, split_swapaxes, True, None),
    (C.check_split_heads, split_loops, True, None),
    (C.check_split_heads, split_no_transpose, False, "not reordered"),
    (C.check_split_heads, split_straight, False, "mixes patches and channels"),
    (C.check_split_heads, split_interleaved, False, "c % H"),
    (C.check_split_heads, split_fixed_dh, False, "fixed number"),
    (C.check_merge_heads, merge_numpy, True, None),
    (C.check_merge_heads, merge_concatenate, True, None),
    (C.check_merge_heads, merge_tf, True, None),
    (C.check_merge_heads, merge_no_transpose, False, "mixes patches and heads"),
    (C.check_merge_heads, merge_interleaved, False, "interleaved"),
    (C.check_external_attention_layer, LayerRight, True, None),
    (C.check_external_attention_layer, LayerAddWeight, True, None),
    (C.check_external_attention_layer, LayerSoftmaxOverS, False, "memory axis S alone"),
    (C.check_external_attention_layer, LayerNoL1, False, "l1 step"),
    (C.check_external_attention_layer, LayerMergeWrong, False, "merged"),
    (C.check_external_attention_layer, LayerNoBias, False, "no biases"),
    (C.check_external_attention_layer, LayerNoConfig, False, "get_config"),
    (C.check_external_attention_layer, LayerNotRegistered, False, "decorator"),
    (C.check_transformer_block, block_right, True, None),
    (C.check_transformer_block, block_operators_and_activation, True, None),
    (C.check_transformer_block, block_ops_gelu, True, None),
    (C.check_transformer_block, block_custom_layer, True, None),
    (C.check_transformer_block, block_batchnorm, False, "BatchNormalization"),
    (C.check_transformer_block, block_ln_wrong_axis, False, "the wrong axis"),
    (C.check_transformer_block, block_ln_both_axes, False, "the wrong axis"),
    (C.check_transformer_block, block_shared_name, False, "fixed name= reused"),
    (C.check_transformer_block, block_shared_norm, False, "share one norm"),
    (C.check_transformer_block, block_default_epsilon, False, "left at its default"),
    (C.check_transformer_block, block_relu, False, "ReLU"),
    (C.check_transformer_block, block_no_activation, False, "no activation"),
    (C.check_transformer_block, block_no_first_residual, False, "attention's residual"),
    (C.check_transformer_block, block_no_second_residual, False, "MLP's residual"),
    (C.check_transformer_block, block_no_residuals, False, "both residual connections"),
    (C.check_transformer_block, block_mlp_reads_x, False, "MLP reads the block's input"),
    (C.check_transformer_block, block_post_norm, False, "post-norm"),
    (C.check_transformer_block, block_missing_norm, False, "is missing"),
    (C.check_transformer_block, block_heads_swapped, False, "wrong order"),
    (C.check_transformer_block, block_the_package, False, "from its parts"),
    (C.check_parameter_count, _count, True, None),
    (C.check_parameter_count, count_numpy_int, True, None),
    (C.check_parameter_count, count_float, True, None),
    (C.check_parameter_count, count_builds_model, False, "by formula"),
    (C.check_parameter_count, count_no_positions, False, "position embedding"),
    (C.check_parameter_count, count_one_block, False, "one block counted"),
    (C.check_parameter_count, count_ignores_memory_units, False, "memory_units ignored"),
    (C.check_parameter_count, count_no_biases, False, "biases are not counted"),
    (C.check_parameter_count, count_true_division, False, "true division"),
    (C.check_parameter_count, count_norms_as_one_vector, False, "one vector of embed_dim"),
    (C.check_learning_rate_schedule, schedule_keras, True, None),
    (C.check_learning_rate_schedule, schedule_subclass, True, None),
    (C.check_learning_rate_schedule, schedule_autograph_if, True, None),
    (C.check_learning_rate_schedule, schedule_python_math, False, "inside a compiled"),
    (C.check_learning_rate_schedule, schedule_no_warmup, False, "no warm-up"),
    (C.check_learning_rate_schedule, schedule_decay_steps_total, False, "cosine's length"),
    (C.check_learning_rate_schedule, schedule_alpha, False, "does not reach 0"),
    (C.check_learning_rate_schedule, schedule_off_by_one, False, "off by one"),
    (C.check_learning_rate_schedule, schedule_linear, False, "linear"),
    (C.check_learning_rate_schedule, schedule_constant, False, "LearningRateSchedule"),
    (C.check_train_step, step_right, True, None),
    (C.check_train_step, step_tf_function, True, None),
    (C.check_train_step, step_inference_mode, False, "training=True"),
    (C.check_train_step, step_swapped_loss, False, "swapped"),
    (C.check_train_step, step_ascent, False, "up the gradient"),
    (C.check_train_step, step_not_applied, False, "never applied"),
    (C.check_train_step, step_outside_tape, False, "outside the"),
    (C.check_attention_to_pixels, pixels_kron, True, None),
    (C.check_attention_to_pixels, pixels_repeat_keras, True, None),
    (C.check_attention_to_pixels, pixels_transposed, False, "transposed"),
    (C.check_attention_to_pixels, pixels_tile, False, "tiled"),
    (C.check_top_units, top_numpy, True, None),
    (C.check_top_units, top_list, True, None),
    (C.check_top_units, top_ascending, False, "reversed"),
    (C.check_top_units, top_rows, False, "ranks patches"),
    (C.check_top_units, top_index_order, False, "sorted by index"),
    (C.check_top_units, top_max, False, "largest single score"),
    (C.check_fit_slope, slope_polyfit, True, None),
    (C.check_fit_slope, slope_log10_lstsq, True, None),
    (C.check_fit_slope, slope_linear, False, "raw numbers"),
    (C.check_fit_slope, slope_endpoints, False, "first and last"),
    (C.check_fit_slope, slope_both_coefficients, False, "both coefficients"),
    (C.check_fit_slope, slope_intercept, False, "intercept"),
    (C.check_sinkhorn, sinkhorn_right, True, None),
    (C.check_sinkhorn, sinkhorn_log_domain, True, None),
    (C.check_sinkhorn, sinkhorn_rows_first, False, "start with the rows"),
    (C.check_sinkhorn, sinkhorn_unstable, False, "overflows"),
    (C.check_sinkhorn, sinkhorn_one_round, False, "One round whatever"),
    (C.check_em_step, em_right, True, None),
    (C.check_em_step, em_loops, True, None),
    (C.check_em_step, em_softmax_over_n, False, "softmax over the patches"),
    (C.check_em_step, em_sums, False, "weighted sums"),
]
BANK += LEARNER_BANK
# Further banks, one per group of checkers: tests/learner_bank_<group>.py, each with a BANK list.
for _path in sorted(pathlib.Path(__file__).parent.glob("learner_bank_*.py")):
    BANK += importlib.import_module(_path.stem).BANK
NUMPY_CHECKERS = [C.check_standardize, C.check_extract_patches,
                  C.check_scaled_dot_product_attention, C.check_double_normalization,
                  C.check_external_attention, C.check_split_heads, C.check_merge_heads,
                  C.check_attention_to_pixels, C.check_top_units, C.check_fit_slope,
                  C.check_sinkhorn, C.check_em_step, C.check_parameter_count,
                  C.check_double_normalization_backward]
verdicts: dict[str, tuple[bool, bool, bool]] = {}  # id -> (should pass, passed, named)


def _id(entry) -> str:
    check, answer, _, _ = entry
    return f"{check.__name__[6:]}-{getattr(answer, '__name__', type(answer).__name__)}"


@pytest.mark.parametrize(("check", "answer", "passes", "words"), BANK, ids=map(_id, BANK))
def test_the_bank(check, answer, passes, words, request):
    result = check(answer)
    likely = result.message[result.message.find("Likely mistake: "):].lower()
    named = bool(words) and "likely mistake: " in likely and words.lower() in likely
    verdicts[request.node.name] = (passes, result.passed, named)
    assert result.passed == passes, result.message
    if not passes:
        assert not result.not_implemented, result.message
        assert "checks.hint(" in result.message, result.message
        assert "\nLikely mistake: " in result.message, result.message
        if words:
            assert named, result.message


@pytest.mark.parametrize("check", NUMPY_CHECKERS + [C.check_learning_rate_schedule,
                                                    C.check_train_step],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("answer", [exits, loops_forever, loops_forever_catching],
                         ids=lambda a: a.__name__)
def test_no_crash_no_hang(check, answer, monkeypatch):
    monkeypatch.setattr(checks._core, "TIME_LIMIT_S", 0.3)
    result = check(answer)
    assert not result.passed and not result.not_implemented
    if answer is exits:
        assert "sys.exit(3)" in result.message, result.message
    else:
        assert "still running after" in result.message, result.message


def test_the_rates_meet_the_targets():
    """Runs last in this file: the acceptance and rejection rates over the whole bank."""
    if len(verdicts) < len(BANK):
        pytest.skip("run the whole bank to get its rates")
    right = [v for v in verdicts.values() if v[0]]
    wrong = [v for v in verdicts.values() if not v[0]]
    accepted = sum(v[1] for v in right) / len(right)
    rejected = sum(not v[1] for v in wrong) / len(wrong)
    named = sum(v[2] for v in wrong if not v[1]) / max(1, sum(not v[1] for v in wrong))
    print(f"\nbank: {len(right)} right answers, {accepted:.0%} accepted; {len(wrong)} wrong "
          f"answers, {rejected:.0%} rejected; {named:.0%} of rejections name the mistake")
    assert accepted == 1.0 and rejected == 1.0 and named >= 0.85
