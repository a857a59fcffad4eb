"""A second learner bank for the `models` group of checkers (exercises 04's backward task, 05,
06, 07): the layer, the transformer block, the parameter count, the schedule, the training step
and the double normalization's gradient. Written from the exercises' text as a learner reads it
(other coding styles for the right answers; the slips a class makes for the wrong ones), none of
them in ``learner_bank.py``, ``test_checker_bank.py`` or ``test_backward_check.py``. Each entry is
(checker, answer, passes, words the "Likely mistake" must contain).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from eanet_course import checks as C
from eanet_course.layers import ExternalAttention

# ----------------------------------------------------------------------------------------------
# 04 the double normalization's gradient, by hand


def _forward(logits, softmax_axis=-2, max_axis=-2):
    e = np.exp(logits - logits.max(axis=max_axis, keepdims=True))
    p = e / e.sum(axis=softmax_axis, keepdims=True)
    return p, 1.0 / p.sum(axis=-1, keepdims=True)


def _backward(p, r, g, *, l1_reduce=np.sum, soft_reduce=np.sum):
    a = p * r
    d_p = r * (g - l1_reduce(g * a, axis=-1, keepdims=True))
    return p * (d_p - soft_reduce(p * d_p, axis=-2, keepdims=True))


def bw_einsum(logits, upstream):
    p, r = _forward(logits)
    a = p * r
    quotient = np.einsum("...ij,...ij->...i", upstream, a)[..., None]
    d_p = r * (upstream - quotient)
    return p * (d_p - np.einsum("...ij,...ij->...j", p, d_p)[..., None, :])


def bw_logsumexp_loops(logits, upstream):
    """Right: one map at a time over the leading axes, the softmax through log-sum-exp."""
    out = np.empty_like(logits)
    for index in np.ndindex(logits.shape[:-2]):
        z, g = logits[index], upstream[index]
        top = z.max(axis=0)
        p = np.exp(z - (top + np.log(np.exp(z - top).sum(axis=0))))
        row = p.sum(axis=1, keepdims=True)
        a = p / row
        d_p = (g - (g * a).sum(axis=1, keepdims=True)) / row
        out[index] = p * (d_p - (p * d_p).sum(axis=0))
    return out


def bw_nested_list(logits, upstream):
    p, r = _forward(logits)
    return _backward(p, r, upstream).tolist()


def bw_float32_keras(logits, upstream):
    z = ops.convert_to_tensor(logits, "float32")
    g = ops.convert_to_tensor(upstream, "float32")
    p = ops.softmax(z, axis=-2)
    r = 1.0 / ops.sum(p, axis=-1, keepdims=True)
    d_p = r * (g - ops.sum(g * p * r, axis=-1, keepdims=True))
    return ops.convert_to_numpy(p * (d_p - ops.sum(p * d_p, axis=-2, keepdims=True)))


def bw_diagonal_softmax(logits, upstream):
    """The softmax's Jacobian taken as its diagonal, P * (1 - P)."""
    p, r = _forward(logits)
    d_p = r * (upstream - (upstream * p * r).sum(axis=-1, keepdims=True))
    return p * (1 - p) * d_p


def bw_diagonal_l1(logits, upstream):
    """The l1 step's Jacobian taken as its diagonal, r * (1 - A)."""
    p, r = _forward(logits)
    d_p = r * (1 - p * r) * upstream
    return p * (d_p - (p * d_p).sum(axis=-2, keepdims=True))


def bw_mean_over_n(logits, upstream):
    p, r = _forward(logits)
    return _backward(p, r, upstream, soft_reduce=np.mean)


def bw_mean_over_s(logits, upstream):
    p, r = _forward(logits)
    return _backward(p, r, upstream, l1_reduce=np.mean)


def bw_forward_softmax_over_s(logits, upstream):
    """The forward pass recomputed with the softmax over S, the backward formula right."""
    p, r = _forward(logits, softmax_axis=-1, max_axis=-1)
    return _backward(p, r, upstream)


def bw_max_over_s(logits, upstream):
    """The maximum subtracted per row (over S), which a softmax over N does not ignore."""
    p, r = _forward(logits, max_axis=-1)
    return _backward(p, r, upstream)


def bw_global_max(logits, upstream):
    p, r = _forward(logits, max_axis=None)
    return _backward(p, r, upstream)


def bw_axes_from_front(logits, upstream):
    """Axes 0 and 1 written out: right for one (N, S) map only."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    p = e / e.sum(axis=0, keepdims=True)
    r = 1.0 / p.sum(axis=1, keepdims=True)
    d_p = r * (upstream - (upstream * p * r).sum(axis=1, keepdims=True))
    return p * (d_p - (p * d_p).sum(axis=0, keepdims=True))


def bw_shift_in_place(logits, upstream):
    logits -= logits.max(axis=-2, keepdims=True)
    p, r = _forward(logits)
    return _backward(p, r, upstream)


def bw_upstream_in_place(logits, upstream):
    p, r = _forward(logits)
    upstream *= r  # r * G, reused below
    d_p = upstream - r * (upstream * p).sum(axis=-1, keepdims=True)
    return p * (d_p - (p * d_p).sum(axis=-2, keepdims=True))


# ----------------------------------------------------------------------------------------------
# 05 the layer


class _Base(layers.Layer):
    """The right layer, its parts swappable by the learners below."""

    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.dim_coefficient, self.memory_units = dim_coefficient, memory_units
        self.total = num_heads * dim_coefficient
        self.dh = embed_dim // num_heads
        self.s = memory_units or embed_dim // dim_coefficient
        self.make()

    def make(self):
        self.to_heads = layers.Dense(self.embed_dim * self.dim_coefficient)
        self.memory_key = layers.Dense(self.s)
        self.memory_value = layers.Dense(self.dh)
        self.output_projection = layers.Dense(self.embed_dim)

    def build(self, input_shape):
        self.to_heads.build((None, None, self.embed_dim))
        self.memory_key.build((None, None, None, self.dh))
        self.memory_value.build((None, None, None, self.s))
        self.output_projection.build((None, None, self.embed_dim * self.dim_coefficient))

    def attend(self, logits):
        a = ops.softmax(logits, axis=-2)
        return a / ops.sum(a, axis=-1, keepdims=True)

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.transpose(ops.reshape(self.to_heads(x), (-1, n, self.total, self.dh)),
                          (0, 2, 1, 3))
        out = self.memory_value(self.attend(self.memory_key(h)))
        out = ops.reshape(ops.transpose(out, (0, 2, 1, 3)),
                          (-1, n, self.embed_dim * self.dim_coefficient))
        return self.output_projection(out)

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "dim_coefficient": self.dim_coefficient,
                "memory_units": self.memory_units}


def _register(cls):
    return keras.saving.register_keras_serializable(package="learner_bank_models")(cls)


@_register
class LayerTfOps(_Base):
    """Right: TensorFlow ops in call, and the softmax over N written out with its maximum."""

    def call(self, x):
        n = tf.shape(x)[1]
        h = tf.transpose(tf.reshape(self.to_heads(x), [-1, n, self.total, self.dh]),
                         [0, 2, 1, 3])
        logits = self.memory_key(h)
        e = tf.exp(logits - tf.reduce_max(logits, axis=2, keepdims=True))
        a = e / tf.reduce_sum(e, axis=2, keepdims=True)
        a = a / tf.reduce_sum(a, axis=3, keepdims=True)
        out = tf.transpose(self.memory_value(a), [0, 2, 1, 3])
        return self.output_projection(tf.reshape(out, [-1, n, self.embed_dim
                                                       * self.dim_coefficient]))


@_register
class LayerMadeInBuild(_Base):
    """Right: the Dense layers made in build, the heads moved with swapaxes."""

    def make(self):
        pass

    def build(self, input_shape):
        self.to_heads = layers.Dense(self.embed_dim * self.dim_coefficient, name="to_heads")
        self.memory_key = layers.Dense(self.s, name="memory_key")
        self.memory_value = layers.Dense(self.dh, name="memory_value")
        self.output_projection = layers.Dense(self.embed_dim, name="output_projection")
        super().build(input_shape)

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.swapaxes(ops.reshape(self.to_heads(x), (-1, n, self.total, self.dh)), 1, 2)
        a = ops.softmax(self.memory_key(h), axis=2)
        a = ops.divide(a, ops.sum(a, axis=3, keepdims=True))
        out = ops.reshape(ops.swapaxes(self.memory_value(a), 1, 2), (-1, n, self.total * self.dh))
        return self.output_projection(out)


@_register
class LayerMatmulKernels(_Base):
    """Right: the memories applied with ops.matmul on their kernels, the softmax from
    keras.activations, the heads from the config's numbers by keyword."""

    def call(self, x):
        n = ops.shape(x)[1]
        wide = self.to_heads(x)
        h = ops.transpose(ops.reshape(wide, (-1, n, self.num_heads * self.dim_coefficient,
                                             self.embed_dim // self.num_heads)), axes=(0, 2, 1, 3))
        logits = ops.matmul(h, self.memory_key.kernel) + self.memory_key.bias
        a = keras.activations.softmax(logits, axis=-2)
        a = a / ops.sum(a, axis=-1, keepdims=True)
        out = ops.matmul(a, self.memory_value.kernel) + self.memory_value.bias
        out = ops.reshape(ops.transpose(out, axes=(0, 2, 1, 3)), (-1, n, ops.shape(wide)[-1]))
        return self.output_projection(out)


@_register
class LayerPatchesFirst(_Base):
    """Right: the heads kept as (B, N, H, dh), no transpose at all: the softmax over N is over
    axis 1, the l1 step over the last axis."""

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.reshape(self.to_heads(x), (-1, n, self.total, self.dh))
        a = ops.softmax(self.memory_key(h), axis=1)
        a = a / ops.sum(a, axis=-1, keepdims=True)
        return self.output_projection(ops.reshape(self.memory_value(a), (-1, n, self.total
                                                                         * self.dh)))


@_register
class LayerValueNoBias(_Base):
    def make(self):
        super().make()
        self.memory_value = layers.Dense(self.dh, use_bias=False)


@_register
class LayerUnstable(_Base):
    def attend(self, logits):
        e = ops.exp(logits)
        a = e / ops.sum(e, axis=-2, keepdims=True)
        return a / ops.sum(a, axis=-1, keepdims=True)


@_register
class LayerSplitByReshape(_Base):
    """Heads split and merged with reshapes alone, no transpose."""

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.reshape(self.to_heads(x), (-1, self.total, n, self.dh))
        out = self.memory_value(self.attend(self.memory_key(h)))
        return self.output_projection(ops.reshape(out, (-1, n, self.total * self.dh)))


@_register
class LayerScaledLogits(_Base):
    """Scales the logits by 1 / sqrt(dh), as in self-attention."""

    def attend(self, logits):
        return super().attend(logits / math.sqrt(self.dh))


@_register
class LayerDropoutAlwaysOn(_Base):
    def make(self):
        super().make()
        self.drop = layers.Dropout(0.1)

    def attend(self, logits):
        return self.drop(super().attend(logits), training=True)


@_register
class LayerReluHeads(_Base):
    def make(self):
        super().make()
        self.to_heads = layers.Dense(self.embed_dim * self.dim_coefficient, activation="relu")


@_register
class LayerHeadWidthFromTotal(_Base):
    """dh = embed_dim // (num_heads * dim_coefficient): the head width of all the heads."""

    def make(self):
        self.dh = self.embed_dim // self.total
        super().make()


@_register
class LayerIgnoresMemoryUnits(_Base):
    def make(self):
        self.s = self.embed_dim // self.dim_coefficient
        super().make()


@_register
class LayerNoOutputProjection(_Base):
    def make(self):
        super().make()
        del self.output_projection

    def build(self, input_shape):
        self.to_heads.build((None, None, self.embed_dim))
        self.memory_key.build((None, None, None, self.dh))
        self.memory_value.build((None, None, None, self.s))

    def call(self, x):
        n = ops.shape(x)[1]
        h = ops.transpose(ops.reshape(self.to_heads(x), (-1, n, self.total, self.dh)),
                          (0, 2, 1, 3))
        out = ops.transpose(self.memory_value(self.attend(self.memory_key(h))), (0, 2, 1, 3))
        return ops.mean(ops.reshape(out, (-1, n, self.dim_coefficient, self.embed_dim)), axis=2)


@_register
class LayerStepsReversed(_Base):
    """The softmax over S first, then the l1 step over N: the axes in the other order."""

    def attend(self, logits):
        a = ops.softmax(logits, axis=-1)
        return a / ops.sum(a, axis=-2, keepdims=True)


@_register
class LayerSoftmaxOverHeads(_Base):
    def attend(self, logits):
        a = ops.softmax(logits, axis=1)
        return a / ops.sum(a, axis=-1, keepdims=True)


@_register
class LayerConfigTotalHeads(_Base):
    """get_config returns the total number of heads as num_heads."""

    def get_config(self):
        return {**super().get_config(), "num_heads": self.total}


@_register
class LayerNoKwargs(_Base):
    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None):
        super().__init__(embed_dim, num_heads, dim_coefficient, memory_units)


@_register
class LayerNumpyTranspose(_Base):
    def call(self, x):
        n = x.shape[1]
        h = np.transpose(np.reshape(self.to_heads(x), (-1, n, self.total, self.dh)),
                         (0, 2, 1, 3))
        out = np.transpose(self.memory_value(self.attend(self.memory_key(h))), (0, 2, 1, 3))
        return self.output_projection(np.reshape(out, (-1, n, self.embed_dim
                                                       * self.dim_coefficient)))


# ----------------------------------------------------------------------------------------------
# 06 the block


def block_named_layers(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    """Right: every layer named, layers.add, LayerNormalization over axis 2 (the last)."""
    normed = layers.LayerNormalization(axis=2, epsilon=1e-5, name="norm_attention")(x)
    attended = ExternalAttention(embed_dim=embed_dim, num_heads=num_heads,
                                 dim_coefficient=dim_coefficient, name="attention")(normed)
    y = layers.add([x, attended], name="residual_1")
    hidden = layers.Dense(mlp_dim, activation=keras.activations.gelu, name="mlp_in")(
        layers.LayerNormalization(epsilon=1e-5, name="norm_mlp")(y))
    return layers.add([y, layers.Dense(embed_dim, name="mlp_out")(hidden)], name="residual_2")


def block_sequential_mlp(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    """Right: the MLP as a keras.Sequential."""
    mlp = keras.Sequential([layers.Dense(mlp_dim, activation="gelu"), layers.Dense(embed_dim)])
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient, normalization="double")(
        layers.LayerNormalization(epsilon=1e-5)(x))
    return y + mlp(layers.LayerNormalization(epsilon=1e-5)(y))


def block_approximate_gelu(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    """Right: tanh-approximated GELU in a Lambda-free way, layers applied in a loop."""
    stream = x
    for branch in ("attention", "mlp"):
        h = layers.LayerNormalization(epsilon=1e-5)(stream)
        if branch == "attention":
            h = ExternalAttention(embed_dim, num_heads, dim_coefficient)(h)
        else:
            h = layers.Dense(embed_dim)(ops.gelu(layers.Dense(mlp_dim)(h), approximate=True))
        stream = layers.Add()([stream, h])
    return stream


def block_sizes_swapped(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(embed_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(mlp_dim)(h)


def block_total_heads(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads * dim_coefficient, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(embed_dim)(h)


def block_notebook_sizes(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    """Sizes copied from the notebook's config."""
    y = x + ExternalAttention(embed_dim, 4, 4)(layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(embed_dim)(h)


def block_gelu_on_output(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim)(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(embed_dim, activation="gelu")(h)


def block_second_residual_from_x(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return x + layers.Dense(embed_dim)(h)


def block_residual_normed(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    x = layers.LayerNormalization(epsilon=1e-5)(x)
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(x)
    y = layers.LayerNormalization(epsilon=1e-5)(y)
    h = layers.Dense(mlp_dim, activation="gelu")(y)
    return y + layers.Dense(embed_dim)(h)


def block_norm_on_branch_output(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + layers.LayerNormalization(epsilon=1e-5)(
        ExternalAttention(embed_dim, num_heads, dim_coefficient)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(y)
    return y + layers.LayerNormalization(epsilon=1e-5)(layers.Dense(embed_dim)(h))


def block_concatenated_residual(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = layers.Concatenate()([x, ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))])
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return layers.Concatenate()([y, layers.Dense(embed_dim)(h)])


def block_swish(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="swish")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(embed_dim)(h)


def block_returns_first_half(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    out = y + layers.Dense(embed_dim)(h)  # noqa: F841 -- computed, not returned
    return y


def block_one_dense(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient)(
        layers.LayerNormalization(epsilon=1e-5)(x))
    return y + layers.Dense(embed_dim, activation="gelu")(
        layers.LayerNormalization(epsilon=1e-5)(y))


def block_softmax_attention(x, embed_dim, mlp_dim, num_heads, dim_coefficient):
    y = x + ExternalAttention(embed_dim, num_heads, dim_coefficient, normalization="softmax")(
        layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp_dim, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(embed_dim)(h)


# ----------------------------------------------------------------------------------------------
# 06 the count


def _dense(n_in, n_out):
    return n_in * n_out + n_out


def _parts(config):
    d, c = config.embed_dim, config.dim_coefficient
    dh = d // config.num_heads
    s = config.memory_units or d // c
    return {
        "projection": _dense(config.patch_size ** 2 * config.channels, d),
        "positions": config.num_patches * d,
        "norms": 2 * 2 * d,
        "to_heads": _dense(d, d * c), "memory_key": _dense(dh, s),
        "memory_value": _dense(s, dh), "output_projection": _dense(d * c, d),
        "mlp": _dense(d, config.mlp_dim) + _dense(config.mlp_dim, d),
        "classifier": _dense(d, config.num_classes),
    }


_PER_BLOCK = ("norms", "to_heads", "memory_key", "memory_value", "output_projection", "mlp")


def _total(parts, config):
    return sum(v * (config.num_blocks if k in _PER_BLOCK else 1) for k, v in parts.items())


def count_dict_of_parts(config):
    """Right: a dict of parts, summed."""
    return _total(_parts(config), config)


def count_math_prod(config):
    """Right: math.prod of weight shapes, the patches from image_size."""
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // config.num_heads, (config.memory_units if config.memory_units else d // c)
    n = (config.image_size // config.patch_size) ** 2
    shapes = [(config.patch_size, config.patch_size, config.channels, d), (d,), (n, d)]
    for _ in range(config.num_blocks):
        shapes += [(d,), (d,), (d, d * c), (d * c,), (dh, s), (s,), (s, dh), (dh,),
                   (d * c, d), (d,), (d,), (d,), (d, config.mlp_dim), (config.mlp_dim,),
                   (config.mlp_dim, d), (d,)]
    shapes += [(d, config.num_classes), (config.num_classes,)]
    return sum(math.prod(shape) for shape in shapes)


def count_numpy_int32(config):
    """Right: NumPy arithmetic, an np.int32 result."""
    parts = np.array(list(_parts(config).values()), dtype=np.int32)
    blocks = np.array([config.num_blocks if k in _PER_BLOCK else 1 for k in _parts(config)],
                      dtype=np.int32)
    return (parts * blocks).sum(dtype=np.int32)


def _wrong(config, **changes):
    parts = _parts(config)
    parts.update(changes)
    return _total(parts, config)


def count_class_token(config):
    """A position for a class token too, as in ViT."""
    return _wrong(config, positions=(config.num_patches + 1) * config.embed_dim)


def count_memory_per_head(config):
    p = _parts(config)
    heads = config.num_heads * config.dim_coefficient
    return _wrong(config, memory_key=heads * p["memory_key"], memory_value=heads * p["memory_value"])


def count_head_width_of_all_heads(config):
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // (config.num_heads * c), config.memory_units or d // c
    return _wrong(config, memory_key=_dense(dh, s), memory_value=_dense(s, dh))


def count_mlp_embed_dim(config):
    return _wrong(config, mlp=2 * _dense(config.embed_dim, config.embed_dim))


def count_square_projections(config):
    d = config.embed_dim
    return _wrong(config, to_heads=_dense(d, d), output_projection=_dense(d, d))


def count_patch_without_channels(config):
    return _wrong(config, projection=_dense(config.patch_size ** 2, config.embed_dim))


def count_classifier_no_bias(config):
    return _wrong(config, classifier=config.embed_dim * config.num_classes)


def count_notebook_constant(config):
    """The ci profile's count, computed once in the notebook and pasted in."""
    from eanet_course.config import PROFILES
    return count_dict_of_parts(PROFILES["ci"])


def count_patches_precedence(config):
    """image_size // patch_size ** 2: the power binds first."""
    n = config.image_size // config.patch_size ** 2
    return _wrong(config, positions=n * config.embed_dim)


def count_memory_units_none(config):
    """memory_units used as it is: None when it is not set."""
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // config.num_heads, config.memory_units
    return _wrong(config, memory_key=dh * s + s, memory_value=s * dh + dh)


# ----------------------------------------------------------------------------------------------
# 07 the schedule


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak, total, warmup):
        self.peak, self.total, self.warmup = peak, total, warmup

    def get_config(self):
        return {"peak": self.peak, "total": self.total, "warmup": self.warmup}


class OpsMinimum(_Schedule):
    """Right: keras.ops, min() of the two phases' progress."""

    def __call__(self, step):
        s = ops.cast(step, "float32")
        warm = ops.minimum(s / self.warmup, 1.0)
        progress = ops.maximum(s - self.warmup, 0.0) / (self.total - self.warmup)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * ops.minimum(progress, 1.0)))
        return self.peak * ops.where(s < self.warmup, warm, cosine)


class Float64Cond(_Schedule):
    """Right: float64 and tf.cond."""

    def __call__(self, step):
        s = tf.cast(step, tf.float64)
        return tf.cond(s < self.warmup, lambda: self.peak * s / self.warmup,
                       lambda: self.peak / 2 * (1 + tf.cos(np.pi * (s - self.warmup)
                                                           / (self.total - self.warmup))))


def schedule_ops_minimum(peak_learning_rate, total_steps, warmup_steps):
    return OpsMinimum(peak_learning_rate, total_steps, warmup_steps)


def schedule_float64_cond(peak_learning_rate, total_steps, warmup_steps):
    return Float64Cond(peak_learning_rate, total_steps, warmup_steps)


def schedule_keras_keywords(peak_learning_rate, total_steps, warmup_steps):
    """Right: CosineDecay with every argument by keyword, alpha spelled out."""
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0, decay_steps=int(total_steps) - int(warmup_steps), alpha=0.0,
        warmup_target=float(peak_learning_rate), warmup_steps=int(warmup_steps),
        name="warmup_cosine")


class FullPeriod(_Schedule):
    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        cosine = 0.5 * self.peak * (1 + tf.cos(2 * math.pi * (s - self.warmup)
                                               / (self.total - self.warmup)))
        return tf.where(s < self.warmup, self.peak * s / self.warmup, cosine)


class NoHalf(_Schedule):
    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        cosine = self.peak * (1 + tf.cos(math.pi * (s - self.warmup) / (self.total - self.warmup)))
        return tf.where(s < self.warmup, self.peak * s / self.warmup, cosine)


class PhaseFromZero(_Schedule):
    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        cosine = 0.5 * self.peak * (1 + tf.cos(math.pi * s / self.total))
        return tf.where(s < self.warmup, self.peak * s / self.warmup, cosine)


class WarmupMinusOne(_Schedule):
    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        cosine = 0.5 * self.peak * (1 + tf.cos(math.pi * (s - self.warmup)
                                               / (self.total - self.warmup)))
        return tf.where(s < self.warmup, self.peak * s / (self.warmup - 1), cosine)


def schedule_full_period(peak_learning_rate, total_steps, warmup_steps):
    return FullPeriod(peak_learning_rate, total_steps, warmup_steps)


def schedule_no_half(peak_learning_rate, total_steps, warmup_steps):
    return NoHalf(peak_learning_rate, total_steps, warmup_steps)


def schedule_phase_from_zero(peak_learning_rate, total_steps, warmup_steps):
    return PhaseFromZero(peak_learning_rate, total_steps, warmup_steps)


def schedule_warmup_minus_one(peak_learning_rate, total_steps, warmup_steps):
    return WarmupMinusOne(peak_learning_rate, total_steps, warmup_steps)


def schedule_keras_from_peak(peak_learning_rate, total_steps, warmup_steps):
    """CosineDecay started at the peak: the warm-up goes from peak to peak."""
    return keras.optimizers.schedules.CosineDecay(
        peak_learning_rate, total_steps - warmup_steps, warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps)


def schedule_arguments_swapped(peak_learning_rate, warmup_steps, total_steps):
    """The signature's last two parameters in the other order."""
    return keras.optimizers.schedules.CosineDecay(
        0.0, total_steps - warmup_steps, warmup_target=peak_learning_rate,
        warmup_steps=warmup_steps)


def schedule_returns_class(peak_learning_rate, total_steps, warmup_steps):
    return OpsMinimum


def schedule_returns_pair(peak_learning_rate, total_steps, warmup_steps):
    return OpsMinimum(peak_learning_rate, total_steps, warmup_steps), total_steps


# ----------------------------------------------------------------------------------------------
# 07 the training step


def step_keywords_in_tape(model, optimizer, loss_fn, images, labels):
    """Right: keyword arguments, the gradient taken inside the `with` block."""
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = loss_fn(y_true=labels, y_pred=predictions)
        gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    return loss


def step_persistent_filtered(model, optimizer, loss_fn, images, labels):
    """Right: a persistent tape, None gradients filtered out, the loss as a NumPy scalar."""
    tape = tf.GradientTape(persistent=True)
    with tape:
        loss = loss_fn(labels, model(images, training=True))
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, model.trainable_weights),
                                    model.trainable_weights) if g is not None]
    del tape
    optimizer.apply_gradients(pairs)
    return loss.numpy()


def step_tensors_in(model, optimizer, loss_fn, images, labels):
    """Right: the batch turned into tensors first, the loss returned as a float."""
    images = tf.convert_to_tensor(images, tf.float32)
    labels = tf.convert_to_tensor(labels)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    variables = model.trainable_variables
    optimizer.apply(tape.gradient(loss, variables), variables)
    return float(loss)


def step_own_loss(model, optimizer, loss_fn, images, labels):
    """Its own cross-entropy, not the loss_fn given."""
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
            labels, model(images, training=True)))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_gradient_of_predictions(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = loss_fn(labels, predictions)
    grads = tape.gradient(predictions, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_pairs_reversed(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(model.trainable_variables, grads))
    return loss


def step_model_predict(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model.predict(images, verbose=0))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_model_twice(model, optimizer, loss_fn, images, labels):
    """The model run a second time for the returned predictions' loss."""
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    loss = loss_fn(labels, model(images, training=True))
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_loss_outside_tape(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
    loss = loss_fn(labels, predictions)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_gradients_alone(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    optimizer.apply_gradients(tape.gradient(loss, model.trainable_variables))
    return loss


def step_loss_in_list(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return [loss]


def step_model_fit(model, optimizer, loss_fn, images, labels):
    history = model.fit(images, labels, epochs=1, verbose=0)
    return history.history["loss"][-1]


def step_clipped(model, optimizer, loss_fn, images, labels):
    """The gradients scaled down (clipped by their global norm) before the update."""
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    grads, _ = tf.clip_by_global_norm(grads, 0.1)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_all_weights(model, optimizer, loss_fn, images, labels):
    """Right: model.weights (BatchNormalization's moving statistics included); their gradients
    are None, and the optimizer skips them, so only the trainable weights move."""
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.weights)
    optimizer.apply_gradients(zip(grads, model.weights))
    return loss


def step_returns_predictions(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = loss_fn(labels, predictions)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return predictions


BW = C.check_double_normalization_backward
LAYER, BLOCK, COUNT = C.check_external_attention_layer, C.check_transformer_block, \
    C.check_parameter_count
SCHEDULE, STEP = C.check_learning_rate_schedule, C.check_train_step

# (checker, answer, passes, words the "Likely mistake" must contain when it fails)
BANK = [
    (BW, bw_einsum, True, None),
    (BW, bw_logsumexp_loops, True, None),
    (BW, bw_nested_list, True, None),
    (BW, bw_float32_keras, True, None),
    (BW, bw_diagonal_softmax, False, "diagonal of the softmax"),
    (BW, bw_diagonal_l1, False, "diagonal of the l1"),
    (BW, bw_mean_over_n, False, "mean over n"),
    (BW, bw_mean_over_s, False, "mean over s"),
    (BW, bw_forward_softmax_over_s, False, "forward pass"),
    (BW, bw_max_over_s, False, "taken over s"),
    (BW, bw_global_max, False, "each column's maximum"),
    (BW, bw_axes_from_front, False, "counted from the front"),
    (BW, bw_shift_in_place, False, "in-place operation"),
    (BW, bw_upstream_in_place, False, "in-place operation"),
    (LAYER, LayerTfOps, True, None),
    (LAYER, LayerMadeInBuild, True, None),
    (LAYER, LayerMatmulKernels, True, None),
    (LAYER, LayerPatchesFirst, True, None),
    (LAYER, LayerValueNoBias, False, "memory_value's bias"),
    (LAYER, LayerUnstable, False, "overflows"),
    (LAYER, LayerSplitByReshape, False, "without the transpose"),
    (LAYER, LayerScaledLogits, False, "sqrt"),
    (LAYER, LayerDropoutAlwaysOn, False, "random"),
    (LAYER, LayerReluHeads, False, "activation"),
    (LAYER, LayerHeadWidthFromTotal, False, "head width"),
    (LAYER, LayerIgnoresMemoryUnits, False, "memory_units"),
    (LAYER, LayerNoOutputProjection, False, "output_projection"),
    (LAYER, LayerStepsReversed, False, "other order"),
    (LAYER, LayerSoftmaxOverHeads, False, "heads axis"),
    (LAYER, LayerConfigTotalHeads, False, "other values than the constructor"),
    (LAYER, LayerNoKwargs, False, "**kwargs"),
    (LAYER, LayerNumpyTranspose, False, "keras.ops"),
    (BLOCK, block_named_layers, True, None),
    (BLOCK, block_sequential_mlp, True, None),
    (BLOCK, block_approximate_gelu, True, None),
    (BLOCK, block_sizes_swapped, False, "mlp_dim"),
    (BLOCK, block_total_heads, False, "num_heads * dim_coefficient"),
    (BLOCK, block_notebook_sizes, False, "fixed numbers"),
    (BLOCK, block_gelu_on_output, False, "after the second dense"),
    (BLOCK, block_second_residual_from_x, False, "adds x"),
    (BLOCK, block_residual_normed, False, "normalized input"),
    (BLOCK, block_norm_on_branch_output, False, "branch's output"),
    (BLOCK, block_concatenated_residual, False, "concatenated"),
    (BLOCK, block_swish, False, "swish"),
    (BLOCK, block_returns_first_half, False, "mlp branch"),
    (BLOCK, block_one_dense, False, "two dense layers"),
    (BLOCK, block_softmax_attention, False, "normalization"),
    (COUNT, count_dict_of_parts, True, None),
    (COUNT, count_math_prod, True, None),
    (COUNT, count_numpy_int32, True, None),
    (COUNT, count_class_token, False, "class token"),
    (COUNT, count_memory_per_head, False, "counted per head"),
    (COUNT, count_head_width_of_all_heads, False, "head width"),
    (COUNT, count_mlp_embed_dim, False, "mlp_dim"),
    (COUNT, count_square_projections, False, "d*c"),
    (COUNT, count_patch_without_channels, False, "without the channels"),
    (COUNT, count_classifier_no_bias, False, "classifier's bias"),
    (COUNT, count_notebook_constant, False, "same count for every config"),
    (COUNT, count_patches_precedence, False, "power binds first"),
    (COUNT, count_memory_units_none, False, "none"),
    (SCHEDULE, schedule_ops_minimum, True, None),
    (SCHEDULE, schedule_float64_cond, True, None),
    (SCHEDULE, schedule_keras_keywords, True, None),
    (SCHEDULE, schedule_full_period, False, "full cosine period"),
    (SCHEDULE, schedule_no_half, False, "1/2"),
    (SCHEDULE, schedule_phase_from_zero, False, "from step 0"),
    (SCHEDULE, schedule_warmup_minus_one, False, "warmup_steps - 1"),
    (SCHEDULE, schedule_keras_from_peak, False, "starts at the peak"),
    (SCHEDULE, schedule_arguments_swapped, False, "swapped"),
    (SCHEDULE, schedule_returns_class, False, "the class"),
    (SCHEDULE, schedule_returns_pair, False, "more than the schedule"),
    (STEP, step_keywords_in_tape, True, None),
    (STEP, step_persistent_filtered, True, None),
    (STEP, step_tensors_in, True, None),
    (STEP, step_own_loss, False, "loss_fn you were given"),
    (STEP, step_gradient_of_predictions, False, "gradient of the predictions"),
    (STEP, step_pairs_reversed, False, "(gradient, variable)"),
    (STEP, step_model_predict, False, "model.predict"),
    (STEP, step_model_twice, False, "twice"),
    (STEP, step_loss_outside_tape, False, "loss is computed outside"),
    (STEP, step_gradients_alone, False, "not the gradients alone"),
    (STEP, step_loss_in_list, False, "wrapped in a list"),
    (STEP, step_model_fit, False, "model.fit"),
    (STEP, step_clipped, False, "scaled"),
    (STEP, step_all_weights, True, None),
    (STEP, step_returns_predictions, False, "return the loss"),
]
