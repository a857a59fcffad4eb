"""More learner answers for the checker bank, written from the exercises' text (the contract in
each ★ Build cell), the way a class writes them: the right answers in other styles, and the
mistakes a learner makes before reading a hint. ``test_checker_bank.py`` runs them with its own
entries; each entry is (checker, answer, passes, words the "Likely mistake" must contain).
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
# 00 standardize


def std_keepdims_float32(train, test):
    train, test = np.asarray(train, "float32"), np.asarray(test, "float32")
    mean = train.mean(axis=(0, 1, 2), keepdims=True)
    std = train.std(axis=(0, 1, 2), keepdims=True)
    return (train - mean) / std, (test - mean) / std


def std_divide_255(train, test):
    return train / 255.0, test / 255.0


def std_test_stats_for_both(train, test):
    mean, std = test.mean(axis=(0, 1, 2)), test.std(axis=(0, 1, 2))
    return (train - mean) / std, (test - mean) / std


def std_both_sets(train, test):
    both = np.concatenate([train, test]).astype("float64")
    mean, std = both.mean(axis=(0, 1, 2)), both.std(axis=(0, 1, 2))
    return (train - mean) / std, (test - mean) / std


def std_in_place(train, test):
    train = train.astype("float64") if train.dtype == np.uint8 else train
    test = test.astype("float64") if test.dtype == np.uint8 else test
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    train -= mean
    train /= std
    test -= mean
    test /= std
    return train, test


def std_variance(train, test):
    mean, var = train.mean(axis=(0, 1, 2)), train.var(axis=(0, 1, 2))
    return (train - mean) / var, (test - mean) / var


def std_swapped_pair(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (test - mean) / std, (train - mean) / std


def std_min_max(train, test):
    low, high = train.min(axis=(0, 1, 2)), train.max(axis=(0, 1, 2))
    return (train - low) / (high - low), (test - low) / (high - low)


def std_only_train(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) / std


# ----------------------------------------------------------------------------------------------
# 01 patches


def patches_slices(images, p):
    b, h, w, c = images.shape
    rows = [images[:, i:i + p, j:j + p, :].reshape(b, -1)
            for i in range(0, h, p) for j in range(0, w, p)]
    return np.stack(rows, axis=1)


def patches_loop_stops_early(images, p):
    b, h, w, c = images.shape
    rows = [images[:, i:i + p, j:j + p, :].reshape(b, -1)
            for i in range(0, h - p, p) for j in range(0, w - p, p)]
    return np.stack(rows, axis=1)


def patches_grid_not_flat(images, p):
    b, h, w, c = images.shape
    return images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(
        b, h // p, w // p, p * p * c)


def patches_hw_swapped(images, p):
    b, w, h, c = images.shape  # (B, W, H, C)? the learner's guess of the layout
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def patches_squeezed(images, p):
    return np.squeeze(patches_slices(images, p))


def patches_normalized(images, p):
    return patches_slices(images / 255.0, p)


# ----------------------------------------------------------------------------------------------
# 02 scaled dot-product attention


def sdpa_swapped_pair(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return w, w @ v


def sdpa_causal(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    n_q, n_k = logits.shape[-2:]
    logits = np.where(np.tril(np.ones((n_q, n_k))) > 0, logits, -1e9)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return w @ v, w


def sdpa_raw_logits(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return w @ v, logits


def sdpa_max_over_queries(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    w = np.exp(logits - logits.max(-2, keepdims=True))
    w = w / w.sum(-1, keepdims=True)
    return w @ v, w


# ----------------------------------------------------------------------------------------------
# 03 external attention


def _dn(logits):
    e = np.exp(logits - logits.max(axis=-2, keepdims=True))
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


def ea_tf(features, m_k, m_v):
    logits = tf.einsum("...nd,sd->...ns", tf.constant(features), tf.constant(m_k))
    a = tf.nn.softmax(logits, axis=-2)
    a = a / tf.reduce_sum(a, axis=-1, keepdims=True)
    return tf.matmul(a, tf.constant(m_v)), a


def ea_swapped_pair(features, m_k, m_v):
    a = _dn(features @ m_k.T)
    return a, a @ m_v


def ea_raw_logits(features, m_k, m_v):
    logits = features @ m_k.T
    return _dn(logits) @ m_v, logits


def ea_unstable(features, m_k, m_v):
    e = np.exp(features @ m_k.T)
    a = e / e.sum(axis=-2, keepdims=True)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v, a


def ea_fixed_axes(features, m_k, m_v):
    logits = features @ m_k.T
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    a = e / e.sum(axis=0, keepdims=True)
    a = a / a.sum(axis=1, keepdims=True)
    return a @ m_v, a


def ea_plain_softmax(features, m_k, m_v):
    logits = features @ m_k.T
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-1, keepdims=True)
    return a @ m_v, a


# ----------------------------------------------------------------------------------------------
# 04 double normalization


def dn_mutates(logits):
    logits -= logits.max(axis=-2, keepdims=True)
    e = np.exp(logits)
    a = e / e.sum(axis=-2, keepdims=True)
    return a / a.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# 05 heads


def split_einops_like(x, h):
    b, n, width = x.shape
    return np.stack([x[:, :, i * (width // h):(i + 1) * (width // h)] for i in range(h)], axis=1)


def split_global_heads(x, h):
    heads = 4  # the number used in the notebook
    b, n, width = x.shape
    return x.reshape(b, n, heads, width // heads).transpose(0, 2, 1, 3)


def split_transposed_dh_n(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, h, width // h).transpose(0, 2, 3, 1)


def split_heads_last(x, h):
    b, n, width = x.shape
    return x.reshape(b, n, width // h, h).transpose(0, 3, 1, 2)


def split_squeezed(x, h):
    b, n, width = x.shape
    return np.squeeze(x.reshape(b, n, h, width // h).transpose(0, 2, 1, 3))


def merge_average(x):
    return x.mean(axis=1)


def merge_sum(x):
    return x.sum(axis=1)


def merge_concat_wrong_axis(x):
    return np.concatenate([x[:, i] for i in range(x.shape[1])], axis=1)


def merge_no_reshape(x):
    return x.transpose(0, 2, 1, 3)


def merge_first_head(x):
    return x[:, 0]


def merge_keras(x):
    b, h, n, dh = x.shape
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (b, n, h * dh))


def merge_wrong_transpose(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 3, 1).reshape(b, n, h * dh)


def merge_in_place_view(x):
    b, h, n, dh = x.shape
    x[...] = x.copy()  # harmless write through a view...
    x *= 1.0000001
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


# ----------------------------------------------------------------------------------------------
# 05 the layer


class _LayerBase(layers.Layer):
    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None, **kwargs):
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.dim_coefficient, self.memory_units = dim_coefficient, memory_units
        self.heads = num_heads * dim_coefficient
        self.dh = embed_dim // num_heads
        self.s = memory_units or embed_dim // dim_coefficient
        self.to_heads = layers.Dense(embed_dim * dim_coefficient)
        self.memory_key = layers.Dense(self.s)
        self.memory_value = layers.Dense(self.dh)
        self.output_projection = layers.Dense(embed_dim)

    def build(self, input_shape):
        d = input_shape[-1]
        self.to_heads.build((None, None, d))
        self.memory_key.build((None, None, None, self.dh))
        self.memory_value.build((None, None, None, self.s))
        self.output_projection.build((None, None, d * self.dim_coefficient))

    def split(self, x):
        n = ops.shape(x)[1]
        return ops.transpose(ops.reshape(x, (-1, n, self.heads, self.dh)), (0, 2, 1, 3))

    def merge(self, x):
        n = ops.shape(x)[2]
        return ops.reshape(ops.transpose(x, (0, 2, 1, 3)),
                           (-1, n, self.embed_dim * self.dim_coefficient))

    def normalize(self, logits):
        a = ops.softmax(logits, axis=-2)
        return a / ops.sum(a, axis=-1, keepdims=True)

    def call(self, x):
        a = self.normalize(self.memory_key(self.split(self.to_heads(x))))
        return self.output_projection(self.merge(self.memory_value(a)))

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim,
                "num_heads": self.num_heads, "dim_coefficient": self.dim_coefficient,
                "memory_units": self.memory_units}


@keras.saving.register_keras_serializable(package="learner_bank")
class LayerEinsum(_LayerBase):
    def call(self, x):
        h = self.split(self.to_heads(x))
        logits = ops.einsum("bhnd,ds->bhns", h, self.memory_key.kernel) + self.memory_key.bias
        a = self.normalize(logits)
        out = ops.einsum("bhns,sd->bhnd", a, self.memory_value.kernel) + self.memory_value.bias
        return self.output_projection(self.merge(out))


@keras.saving.register_keras_serializable(package="learner_bank")
class LayerBatchFromShape(_LayerBase):
    def split(self, x):
        b, n = x.shape[0], x.shape[1]
        return ops.transpose(ops.reshape(x, (b, n, self.heads, self.dh)), (0, 2, 1, 3))

    def merge(self, x):
        b, n = x.shape[0], x.shape[2]
        return ops.reshape(ops.transpose(x, (0, 2, 1, 3)),
                           (b, n, self.embed_dim * self.dim_coefficient))


@keras.saving.register_keras_serializable(package="learner_bank")
class LayerDropout(_LayerBase):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropout = layers.Dropout(0.1)

    def call(self, x, training=None):
        a = self.dropout(self.normalize(self.memory_key(self.split(self.to_heads(x)))),
                         training=training)
        return self.output_projection(self.merge(self.memory_value(a)))


@keras.saving.register_keras_serializable(package="learner_bank")
class LayerSumOverN(_LayerBase):
    def normalize(self, logits):
        a = ops.softmax(logits, axis=-2)
        return a / ops.sum(a, axis=-2, keepdims=True)


@keras.saving.register_keras_serializable(package="learner_bank")
class LayerConfigOnlyBase(_LayerBase):
    def get_config(self):
        return super(_LayerBase, self).get_config()


# ----------------------------------------------------------------------------------------------
# 06 the block and the count


def block_dropout(x, d, mlp, heads, c):
    h = layers.LayerNormalization(epsilon=1e-5)(x)
    y = x + layers.Dropout(0.1)(ExternalAttention(d, heads, c)(h))
    h = layers.Dense(mlp, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dropout(0.1)(layers.Dense(d)(h))


def block_final_norm(x, d, mlp, heads, c):
    y = x + ExternalAttention(d, heads, c)(layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return layers.LayerNormalization(epsilon=1e-5)(y + layers.Dense(d)(h))


def block_returns_pair(x, d, mlp, heads, c):
    y = x + ExternalAttention(d, heads, c)(layers.LayerNormalization(epsilon=1e-5)(x))
    h = layers.Dense(mlp, activation="gelu")(layers.LayerNormalization(epsilon=1e-5)(y))
    return y + layers.Dense(d)(h), y


def block_add_layers(x, d, mlp, heads, c):
    h = layers.LayerNormalization(epsilon=1e-5, name=None)(x)
    y = layers.Add()([x, ExternalAttention(embed_dim=d, num_heads=heads,
                                           dim_coefficient=c)(h)])
    h = layers.LayerNormalization(epsilon=1e-5)(y)
    h = layers.Activation("gelu")(layers.Dense(mlp)(h))
    return layers.Add()([y, layers.Dense(d)(h)])


def _count(config):
    def dense(n_in, n_out):
        return n_in * n_out + n_out
    d, c = config.embed_dim, config.dim_coefficient
    dh, s = d // config.num_heads, config.memory_units or d // c
    attention = dense(d, d * c) + dense(dh, s) + dense(s, dh) + dense(d * c, d)
    block = 4 * d + attention + dense(d, config.mlp_dim) + dense(config.mlp_dim, d)
    return (dense(config.patch_size**2 * config.channels, d) + config.num_patches * d
            + config.num_blocks * block + dense(d, config.num_classes))


def count_loops(config):
    d = config.embed_dim
    n = (config.image_size // config.patch_size) ** 2
    total = config.patch_size * config.patch_size * config.channels * d + d + n * d
    for _ in range(config.num_blocks):
        s = config.memory_units if config.memory_units is not None else d // config.dim_coefficient
        dh = d // config.num_heads
        total += 2 * (2 * d)
        total += d * d * config.dim_coefficient + d * config.dim_coefficient
        total += dh * s + s + s * dh + dh
        total += d * config.dim_coefficient * d + d
        total += d * config.mlp_dim + config.mlp_dim + config.mlp_dim * d + d
    return total + d * config.num_classes + config.num_classes


class _Always(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def count_always_equal(config):
    return _Always(12345)


def count_side_not_squared(config):
    return _count(config) - config.num_patches * config.embed_dim + (
        config.image_size // config.patch_size) * config.embed_dim


def count_no_classifier(config):
    d = config.embed_dim
    return _count(config) - (d * config.num_classes + config.num_classes)


def count_per_part_list(config):
    return [_count(config) - 10, 10]


# ----------------------------------------------------------------------------------------------
# 07 schedule and step


class LambdaLike(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, peak, total, warmup):
        self.peak, self.total, self.warmup = peak, total, warmup

    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        warm = self.peak * s / self.warmup
        cos = 0.5 * self.peak * (1 + tf.cos(math.pi * (s - self.warmup)
                                            / (self.total - self.warmup)))
        return tf.where(s < self.warmup, warm, tf.maximum(cos, 0.0) * tf.cast(
            s <= self.total, tf.float32))


def schedule_tf_where(peak, total, warmup):
    return LambdaLike(peak, total, warmup)


def schedule_plain_function(peak, total, warmup):
    return lambda step: peak * min(step / warmup, 1.0)


class WarmFromPeak(LambdaLike):
    def __call__(self, step):
        s = tf.cast(step, tf.float32)
        cos = 0.5 * self.peak * (1 + tf.cos(math.pi * tf.clip_by_value(
            (s - self.warmup) / (self.total - self.warmup), 0.0, 1.0)))
        return tf.where(s < self.warmup, self.peak, cos)


def schedule_warm_from_peak(peak, total, warmup):
    return WarmFromPeak(peak, total, warmup)


class IntDivision(LambdaLike):
    def __call__(self, step):
        s = tf.cast(step, tf.int64)
        warm = self.peak * tf.cast(s // self.warmup, tf.float32)
        cos = 0.5 * self.peak * (1 + tf.cos(math.pi * tf.clip_by_value(
            tf.cast(s - self.warmup, tf.float32) / (self.total - self.warmup), 0.0, 1.0)))
        return tf.where(s < self.warmup, warm, cos)


def schedule_int_division(peak, total, warmup):
    return IntDivision(peak, total, warmup)


def step_apply_method(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = loss_fn(labels, predictions)
    gradients = tape.gradient(loss, model.trainable_weights)
    optimizer.apply(gradients, model.trainable_weights)
    return float(loss)


def step_by_hand(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    for g, v in zip(grads, model.trainable_variables):
        v.assign_sub(0.5 * g)
    return loss


def step_new_optimizer(model, optimizer, loss_fn, images, labels):
    opt = keras.optimizers.Adam(1e-3)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_numpy_loss(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        predictions = model(images, training=True)
        loss = tf.constant(loss_fn(labels, predictions).numpy())
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


def step_returns_grads(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return grads


def step_loss_after_update(model, optimizer, loss_fn, images, labels):
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(images, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss_fn(labels, model(images, training=False))


def step_twice(model, optimizer, loss_fn, images, labels):
    for _ in range(2):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss


# ----------------------------------------------------------------------------------------------
# 08 attention maps


def pixels_repeat_numpy(scores, size, p):
    grid = np.asarray(scores).reshape(size // p, size // p)
    return grid.repeat(p, axis=0).repeat(p, axis=1)


def pixels_loops(scores, size, p):
    out = np.zeros((size, size))
    side = size // p
    for i, score in enumerate(scores):
        r, c = divmod(i, side)
        out[r * p:(r + 1) * p, c * p:(c + 1) * p] = score
    return out


def pixels_repeat_flat(scores, size, p):
    return np.repeat(scores, p * p).reshape(size, size)


def pixels_one_axis(scores, size, p):
    grid = scores.reshape(size // p, size // p)
    return np.repeat(grid, p, axis=0)


def pixels_normalized(scores, size, p):
    grid = scores.reshape(size // p, size // p) / scores.max()
    return np.kron(grid, np.ones((p, p)))


def pixels_column_major(scores, size, p):
    side = size // p
    grid = scores.reshape(side, side, order="F")
    return np.kron(grid, np.ones((p, p)))


def pixels_grid_only(scores, size, p):
    return scores.reshape(size // p, size // p)


def pixels_off_by_one(scores, size, p):
    side = size // p
    out = np.zeros((size, size))
    for i in range(side):
        for j in range(side):
            out[i * p:(i + 1) * p, j * p:(j + 1) * p] = scores[i * side + j]
    out[-1, :] = 0.0  # the learner's border "fix"
    return out


def pixels_sorted(scores, size, p):
    return np.kron(np.sort(scores).reshape(size // p, size // p), np.ones((p, p)))


def pixels_transposed(scores, size, p):
    side = size // p
    return np.kron(scores.reshape(side, side).T, np.ones((p, p)))


def top_threshold(attention, k):
    totals = attention.sum(axis=0)
    threshold = np.sort(totals)[-k]
    return [j for j in range(len(totals)) if totals[j] >= threshold]


def top_argpartition(attention, k):
    totals = attention.sum(axis=0)
    return np.argpartition(-totals, k)[:k]


def top_totals(attention, k):
    return np.sort(attention.sum(axis=0))[::-1][:k]


def top_one_based(attention, k):
    return np.argsort(-attention.sum(axis=0))[:k] + 1


def top_votes(attention, k):
    votes = np.bincount(attention.argmax(axis=1), minlength=attention.shape[1])
    return np.argsort(-votes, kind="stable")[:k]


def top_off_by_one(attention, k):
    return np.argsort(-attention.sum(axis=0))[:k + 1]


def top_mean(attention, k):
    return np.argsort(attention.mean(axis=0))[::-1][:k]


def top_keras(attention, k):
    return ops.top_k(ops.sum(attention, axis=0), k)[1]


def top_smallest(attention, k):
    return np.argsort(attention.sum(axis=0))[:k]


# ----------------------------------------------------------------------------------------------
# 09 slopes


def slope_lists_python(ns, costs):
    xs = [math.log(n) for n in ns]
    ys = [math.log(c) for c in costs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def slope_one_element(ns, costs):
    a = np.stack([np.log(ns), np.ones(len(ns))], axis=1)
    return np.linalg.lstsq(a, np.log(costs), rcond=None)[0][:1]


def slope_array_method(ns, costs):
    return np.polyfit(np.log(ns.astype(float)), np.log(costs), 1)[0]


def slope_through_origin(ns, costs):
    x, y = np.log(ns), np.log(costs)
    return float(np.sum(x * y) / np.sum(x * x))


def slope_ratio(ns, costs):
    return float(np.mean(np.log(costs) / np.log(ns)))


def slope_log_n_only(ns, costs):
    return np.polyfit(np.log(ns), costs, 1)[0]


def slope_swapped(ns, costs):
    return np.polyfit(np.log(costs), np.log(ns), 1)[0]


def slope_sorted_endpoints(ns, costs):
    order = np.argsort(ns)
    x, y = np.log(np.asarray(ns)[order]), np.log(np.asarray(costs)[order])
    return float((y[-1] - y[0]) / (x[-1] - x[0]))


def slope_mixed_logs(ns, costs):
    return float(np.polyfit(np.log10(ns), np.log(costs), 1)[0])


def slope_scipy(ns, costs):
    from scipy import stats
    return stats.linregress(np.log2(ns), np.log2(costs)).slope


# ----------------------------------------------------------------------------------------------
# 10 Sinkhorn and EM


def sinkhorn_while(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    i = 0
    while i < steps:
        p /= p.sum(axis=-2, keepdims=True)
        p /= p.sum(axis=-1, keepdims=True)
        i += 1
    return p


def sinkhorn_softmax_every_round(logits, steps):
    from scipy.special import softmax
    p = logits
    for _ in range(steps):
        p = softmax(p, axis=-2)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_no_exp(logits, steps):
    p = logits
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_columns_only(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
    return p


def sinkhorn_range_from_one(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(1, steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_global_max(logits, steps):
    p = np.exp(logits - logits.max())
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_extra_round(logits, steps):
    return sinkhorn_while(logits, steps + 1)


def sinkhorn_in_place(logits, steps):
    logits -= logits.max(axis=-2, keepdims=True)
    p = np.exp(logits)
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sinkhorn_fixed_axes(logits, steps):
    p = np.exp(logits - logits.max(axis=0, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=0, keepdims=True)
        p = p / p.sum(axis=1, keepdims=True)
    return p


def _softmax_rows(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def em_einsum(features, memory):
    z = _softmax_rows(np.einsum("nd,sd->ns", features, memory))
    return np.einsum("ns,nd->sd", z, features) / z.sum(axis=0)[:, None]


def em_keras(features, memory):
    z = ops.softmax(ops.matmul(features, ops.transpose(memory)), axis=-1)
    return ops.matmul(ops.transpose(z), features) / ops.sum(z, axis=0)[:, None]


def em_unstable(features, memory):
    e = np.exp(features @ memory.T)
    z = e / e.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em_hard(features, memory):
    assign = (features @ memory.T).argmax(axis=1)
    z = np.eye(memory.shape[0])[assign]
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em_distance(features, memory):
    d2 = ((features[:, None, :] - memory[None, :, :]) ** 2).sum(-1)
    z = _softmax_rows(-d2)
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em_divide_by_n(features, memory):
    z = _softmax_rows(features @ memory.T)
    return z.T @ features / features.shape[0]


def em_no_move(features, memory):
    return memory


def em_responsibilities(features, memory):
    return _softmax_rows(features @ memory.T)


def em_mean_rows_wrong(features, memory):
    z = _softmax_rows(features @ memory.T)
    return (z.T @ features) / z.sum(axis=1)[: memory.shape[0], None]


# (checker, answer, passes, words the "Likely mistake" must contain when it fails)
LEARNER_BANK = [
    (C.check_standardize, std_keepdims_float32, True, None),
    (C.check_standardize, std_divide_255, False, "divided by 255"),
    (C.check_standardize, std_test_stats_for_both, False, "come from the test images"),
    (C.check_standardize, std_both_sets, False, "training and test images together"),
    (C.check_standardize, std_in_place, False, "in-place operation"),
    (C.check_standardize, std_variance, False, "variance"),
    (C.check_standardize, std_swapped_pair, False, "wrong order"),
    (C.check_standardize, std_min_max, False, "min-max"),
    (C.check_standardize, std_only_train, False, "return both"),
    (C.check_extract_patches, patches_slices, True, None),
    (C.check_extract_patches, patches_loop_stops_early, False, "last column of patches"),
    (C.check_extract_patches, patches_grid_not_flat, False, "reshape to"),
    (C.check_extract_patches, patches_hw_swapped, False, "height and width swapped"),
    (C.check_extract_patches, patches_squeezed, False, "squeeze"),
    (C.check_extract_patches, patches_normalized, False, "times 0.003922"),
    (C.check_scaled_dot_product_attention, sdpa_swapped_pair, False, "wrong order"),
    (C.check_scaled_dot_product_attention, sdpa_causal, False, "causal mask"),
    (C.check_scaled_dot_product_attention, sdpa_raw_logits, False, "raw logits"),
    (C.check_scaled_dot_product_attention, sdpa_max_over_queries, False,
     "taken over the queries"),
    (C.check_external_attention, ea_tf, True, None),
    (C.check_external_attention, ea_swapped_pair, False, "wrong order"),
    (C.check_external_attention, ea_raw_logits, False, "raw logits"),
    (C.check_external_attention, ea_unstable, False, "overflows"),
    (C.check_external_attention, ea_fixed_axes, False, "counted from the front"),
    (C.check_external_attention, ea_plain_softmax, False, "runs over the memory axis S"),
    (C.check_double_normalization, dn_mutates, False, "in-place operation"),
    (C.check_split_heads, split_einops_like, True, None),
    (C.check_split_heads, split_global_heads, False, "fixed number of heads"),
    (C.check_split_heads, split_transposed_dh_n, False, "(B, H, dh, N)"),
    (C.check_split_heads, split_heads_last, False, "c % H"),
    (C.check_split_heads, split_squeezed, False, "squeeze"),
    (C.check_merge_heads, merge_keras, True, None),
    (C.check_merge_heads, merge_average, False, "averaged"),
    (C.check_merge_heads, merge_sum, False, "summed"),
    (C.check_merge_heads, merge_concat_wrong_axis, False, "along the patch axis"),
    (C.check_merge_heads, merge_no_reshape, False, "new axis"),
    (C.check_merge_heads, merge_first_head, False, "only the first head"),
    (C.check_merge_heads, merge_wrong_transpose, False, "interleaved"),
    (C.check_merge_heads, merge_in_place_view, False, "in-place operation"),
    (C.check_external_attention_layer, LayerEinsum, True, None),
    (C.check_external_attention_layer, LayerBatchFromShape, False, "batch axis"),
    (C.check_external_attention_layer, LayerDropout, False, "dropout"),
    (C.check_external_attention_layer, LayerSumOverN, False, "l1 step"),
    (C.check_external_attention_layer, LayerConfigOnlyBase, False, "get_config"),
    (C.check_transformer_block, block_add_layers, True, None),
    (C.check_transformer_block, block_dropout, False, "dropout"),
    (C.check_transformer_block, block_final_norm, False, "too many"),
    (C.check_transformer_block, block_returns_pair, False, "more than the output"),
    (C.check_parameter_count, count_loops, True, None),
    (C.check_parameter_count, count_always_equal, False, "no single part"),
    (C.check_parameter_count, count_side_not_squared, False, "not its square"),
    (C.check_parameter_count, count_no_classifier, False, "classifier is not counted"),
    (C.check_parameter_count, count_per_part_list, False, "add the parts up"),
    (C.check_learning_rate_schedule, schedule_tf_where, True, None),
    (C.check_learning_rate_schedule, schedule_plain_function, False, "plain function"),
    (C.check_learning_rate_schedule, schedule_warm_from_peak, False, "starts at the peak"),
    (C.check_learning_rate_schedule, schedule_int_division, False, "the warm-up is not"),
    (C.check_train_step, step_apply_method, True, None),
    (C.check_train_step, step_by_hand, False, "never ran"),
    (C.check_train_step, step_new_optimizer, False, "never ran"),
    (C.check_train_step, step_numpy_loss, False, "leaves TensorFlow"),
    (C.check_train_step, step_returns_grads, False, "return the loss"),
    (C.check_train_step, step_loss_after_update, False, "before the update"),
    (C.check_train_step, step_twice, False, "one step per call"),
    (C.check_attention_to_pixels, pixels_repeat_numpy, True, None),
    (C.check_attention_to_pixels, pixels_loops, True, None),
    (C.check_attention_to_pixels, pixels_repeat_flat, False, "consecutive pixels"),
    (C.check_attention_to_pixels, pixels_one_axis, False, "one axis"),
    (C.check_attention_to_pixels, pixels_normalized, False, "rescaled"),
    (C.check_attention_to_pixels, pixels_column_major, False, "transposed"),
    (C.check_attention_to_pixels, pixels_grid_only, False, "not blown up"),
    (C.check_attention_to_pixels, pixels_off_by_one, False, "only at the last"),
    (C.check_attention_to_pixels, pixels_sorted, False, "at other positions"),
    (C.check_attention_to_pixels, pixels_transposed, False, "transposed"),
    (C.check_top_units, top_keras, True, None),
    (C.check_top_units, top_mean, True, None),
    (C.check_top_units, top_threshold, False, "sorted by index"),
    (C.check_top_units, top_argpartition, False, "without sorting"),
    (C.check_top_units, top_totals, False, "not the indices"),
    (C.check_top_units, top_one_based, False, "count from 1"),
    (C.check_top_units, top_votes, False, "argmax"),
    (C.check_top_units, top_off_by_one, False, "too many"),
    (C.check_top_units, top_smallest, False, "least attention"),
    (C.check_fit_slope, slope_lists_python, True, None),
    (C.check_fit_slope, slope_scipy, True, None),
    (C.check_fit_slope, slope_one_element, False, "1-element"),
    (C.check_fit_slope, slope_array_method, False, "python list"),
    (C.check_fit_slope, slope_through_origin, False, "through the origin"),
    (C.check_fit_slope, slope_ratio, False, "point by point"),
    (C.check_fit_slope, slope_log_n_only, False, "only n is in log scale"),
    (C.check_fit_slope, slope_swapped, False, "axes are swapped"),
    (C.check_fit_slope, slope_mixed_logs, False, "mixed logarithm bases"),
    (C.check_fit_slope, slope_sorted_endpoints, False, "uses only the"),
    (C.check_sinkhorn, sinkhorn_while, True, None),
    (C.check_sinkhorn, sinkhorn_softmax_every_round, False, "every round"),
    (C.check_sinkhorn, sinkhorn_no_exp, False, "exponential is missing"),
    (C.check_sinkhorn, sinkhorn_columns_only, False, "rows are never normalized"),
    (C.check_sinkhorn, sinkhorn_range_from_one, False, "steps - 1"),
    (C.check_sinkhorn, sinkhorn_global_max, False, "not along the softmax's own axis"),
    (C.check_sinkhorn, sinkhorn_extra_round, False, "one round too many"),
    (C.check_sinkhorn, sinkhorn_in_place, False, "in-place operation"),
    (C.check_sinkhorn, sinkhorn_fixed_axes, False, "counted from the front"),
    (C.check_em_step, em_einsum, True, None),
    (C.check_em_step, em_keras, True, None),
    (C.check_em_step, em_unstable, False, "overflows"),
    (C.check_em_step, em_hard, False, "hard assignments"),
    (C.check_em_step, em_distance, False, "squared distances"),
    (C.check_em_step, em_divide_by_n, False, "number of patches"),
    (C.check_em_step, em_no_move, False, "did not move"),
    (C.check_em_step, em_responsibilities, False, "responsibilities (N, S) came back"),
    (C.check_em_step, em_mean_rows_wrong, False, "weighted sums"),
]
