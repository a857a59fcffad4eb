"""A second learner bank for the course group of checkers (exercises 00, 08, 09, 10):
``standardize``, ``attention_to_pixels``, ``top_units``, ``fit_slope``, ``sinkhorn``, ``em_step``.

Written from the exercises' ★ Build cells as a class reads them, not from the checkers: right
answers in styles the other banks lack (loops, keras.ops, TensorFlow, lists, float32, scaling
vectors), and slips the other banks lack (operator precedence, statistics over the wrong axes, a
fixed size from the notebook, interpolation, flat indices, rounding, a convergence loop, an
attention-style 1/sqrt(d), an old memory mixed in...). ``test_checker_bank.py`` runs ``BANK``.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from keras import ops

from eanet_course import checks as C

# ----------------------------------------------------------------------------------------------
# 00 standardize


def std2_channel_loop(train, test):
    outs_train, outs_test = [], []
    for c in range(train.shape[-1]):
        channel = train[..., c].astype(float)
        m, s = channel.mean(), channel.std()
        outs_train.append((channel - m) / s)
        outs_test.append((test[..., c] - m) / s)
    return np.stack(outs_train, axis=-1), np.stack(outs_test, axis=-1)


def std2_keras_ops_list(train, test):
    train = ops.cast(train, "float32")
    test = ops.cast(test, "float32")
    mean = ops.mean(train, axis=(0, 1, 2))
    std = ops.std(train, axis=(0, 1, 2))
    return [(train - mean) / std, (test - mean) / std]


def std2_scaled_first_eps(train, test):
    train, test = train / 255.0, test / 255.0
    flat = train.reshape(-1, train.shape[-1])
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return (train - mean) / (std + 1e-8), (test - mean) / (std + 1e-8)


def std2_precedence(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return train - mean / std, test - mean / std


def std2_axes_0_1(train, test):
    mean, std = train.mean(axis=(0, 1)), train.std(axis=(0, 1))
    return (train - mean) / std, (test - mean) / std


def std2_per_pixel(train, test):
    mean, std = train.mean(axis=0), train.std(axis=0)
    return (train - mean) / std, (test - mean) / std


def std2_times_std(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) * std, (test - mean) * std


def std2_mean_of_image_stds(train, test):
    mean = train.mean(axis=(0, 1, 2))
    std = train.std(axis=(1, 2)).mean(axis=0)
    return (train - mean) / std, (test - mean) / std


def std2_three_channels(train, test):
    flat = train.reshape(-1, 3).astype(float)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    return (train - mean) / std, (test - mean) / std


def std2_returns_stats(train, test):
    return train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))


def std2_test_not_shifted(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) / std, test / std


def std2_floor_division(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) // std, (test - mean) // std


def std2_channels_first(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (np.moveaxis((train - mean) / std, -1, 1), np.moveaxis((test - mean) / std, -1, 1))


def std2_with_stats(train, test):
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return (train - mean) / std, (test - mean) / std, (mean, std)


def std2_global_mean_channel_std(train, test):
    mean, std = train.mean(), train.std(axis=(0, 1, 2))
    return (train - mean) / std, (test - mean) / std


# ----------------------------------------------------------------------------------------------
# 08 attention_to_pixels


def pix2_list_comprehension(scores, size, p):
    side = size // p
    return [[scores[(r // p) * side + c // p] for c in range(size)] for r in range(size)]


def pix2_broadcast_reshape(scores, size, p):
    side = size // p
    grid = np.asarray(scores).reshape(side, 1, side, 1)
    return np.broadcast_to(grid, (side, p, side, p)).reshape(size, size)


def pix2_fancy_index_tf(scores, size, p):
    grid = tf.reshape(tf.constant(scores), (size // p, size // p))
    rows = tf.range(size) // p
    return tf.gather(tf.gather(grid, rows, axis=0), rows, axis=1)


def pix2_fixed_side(scores, size, p):
    grid = scores.reshape(4, 4)  # the notebook's 8 x 8 image of 2 x 2 patches
    return np.kron(grid, np.ones((p, p)))


def pix2_repeat_by_side(scores, size, p):
    side = size // p
    grid = scores.reshape(side, side)
    return np.repeat(np.repeat(grid, side, axis=0), side, axis=1)


def pix2_integer_canvas(scores, size, p):
    side = size // p
    out = np.zeros((size, size), dtype=int)
    for i in range(side):
        for j in range(side):
            out[i * p:(i + 1) * p, j * p:(j + 1) * p] = scores[i * side + j]
    return out


def pix2_wrong_stride(scores, size, p):
    side = size // p
    out = np.zeros((size, size))
    for i in range(side):
        for j in range(side):
            out[i * p:(i + 1) * p, j * p:(j + 1) * p] = scores[(i * p + j) % scores.size]
    return out


def pix2_bilinear(scores, size, p):
    side = size // p
    grid = ops.reshape(ops.convert_to_tensor(scores, "float32"), (1, side, side, 1))
    return ops.image.resize(grid, (size, size), interpolation="bilinear")[0, :, :, 0]


def pix2_batch_axes_kept(scores, size, p):
    side = size // p
    grid = ops.reshape(ops.convert_to_tensor(scores, "float32"), (1, side, side, 1))
    return ops.image.resize(grid, (size, size), interpolation="nearest")


def pix2_shape_in_place(scores, size, p):
    side = size // p
    scores.shape = (side, side)
    return np.kron(scores, np.ones((p, p)))


def pix2_np_resize(scores, size, p):
    return np.resize(np.repeat(scores, p), (size, size))


def pix2_with_grid(scores, size, p):
    grid = scores.reshape(size // p, size // p)
    return np.kron(grid, np.ones((p, p))), grid


def pix2_columns_twice(scores, size, p):
    grid = np.reshape(scores, (size // p, size // p))
    return np.repeat(np.repeat(grid, p, axis=1), p, axis=1)


def pix2_flipped_rows(scores, size, p):
    side = size // p
    return np.flipud(np.kron(scores.reshape(side, side), np.ones((p, p))))


def pix2_skips_first_patch_row(scores, size, p):
    side = size // p
    out = np.zeros((size, size))
    for i in range(1, side):
        for j in range(side):
            out[i * p:(i + 1) * p, j * p:(j + 1) * p] = scores[i * side + j]
    return out


# ----------------------------------------------------------------------------------------------
# 08 top_units


def top2_reverse_slice(attention, k):
    return np.argsort(attention.sum(axis=0))[:-k - 1:-1]


def top2_tf_top_k(attention, k):
    return tf.math.top_k(tf.reduce_sum(attention, axis=0), k=k).indices


def top2_argmax_loop(attention, k):
    totals = attention.sum(axis=0).copy()
    chosen = []
    for _ in range(k):
        j = int(np.argmax(totals))
        chosen.append(j)
        totals[j] = -np.inf
    return tuple(chosen)


def top2_zeroes_columns(attention, k):
    chosen = []
    for _ in range(k):
        j = int(np.argmax(attention.sum(axis=0)))
        chosen.append(j)
        attention[:, j] = 0.0
    return np.array(chosen)


def top2_skips_largest(attention, k):
    return np.argsort(attention.sum(axis=0))[-k - 1:-1][::-1]


def top2_ranks(attention, k):
    order = np.argsort(-attention.sum(axis=0))
    return np.argsort(order)[:k]


def top2_flat_indices(attention, k):
    return np.argsort(-attention, axis=None)[:k]


def top2_pairs(attention, k):
    totals = attention.sum(axis=0)
    return sorted(enumerate(totals), key=lambda t: -t[1])[:k]


def top2_fixed_k(attention, k):
    return np.argsort(-attention.sum(axis=0))[:3]


def top2_mask(attention, k):
    totals = attention.sum(axis=0)
    return (totals >= np.sort(totals)[-k]).astype(int)


def top2_with_totals(attention, k):
    totals = attention.sum(axis=0)
    units = np.argsort(-totals)[:k]
    return units, totals[units]


def top2_mean_over_units(attention, k):
    return np.argsort(-attention.mean(axis=-1))[:k]


def top2_argmax_each_row(attention, k):
    return attention.argmax(axis=1)[:k]


def top2_units_of_largest_entries(attention, k):
    return np.argsort(-attention, axis=None)[:k] % attention.shape[1]


# ----------------------------------------------------------------------------------------------
# 09 fit_slope


def slope2_covariance(ns, costs):
    x, y = np.log(ns), np.log(costs)
    return float(np.cov(x, y)[0, 1] / np.var(x, ddof=1))


def slope2_normal_equations(ns, costs):
    x = np.log(np.asarray(ns, dtype=float))
    a = np.stack([x, np.ones_like(x)], axis=1)
    coef = np.linalg.solve(a.T @ a, a.T @ np.log(np.asarray(costs, dtype=float)))
    return coef[0].item()


def slope2_keras_ops(ns, costs):
    x = ops.log(ops.convert_to_tensor(ns, "float64"))
    y = ops.log(ops.convert_to_tensor(costs, "float64"))
    xc, yc = x - ops.mean(x), y - ops.mean(y)
    return ops.sum(xc * yc) / ops.sum(xc * xc)


def slope2_linregress_result(ns, costs):
    from scipy import stats
    return stats.linregress(np.log(ns), np.log(costs))


def slope2_rounded(ns, costs):
    return round(float(np.polyfit(np.log(ns), np.log(costs), 1)[0]), 2)


def slope2_int(ns, costs):
    return int(np.polyfit(np.log(ns), np.log(costs), 1)[0])


def slope2_math_log(ns, costs):
    return float(np.polyfit(math.log(ns), math.log(costs), 1)[0])


def slope2_ratio_of_means(ns, costs):
    return float(np.mean(np.log(costs)) / np.mean(np.log(ns)))


def slope2_last_two(ns, costs):
    x, y = np.log(ns), np.log(costs)
    return float((y[-1] - y[-2]) / (x[-1] - x[-2]))


def slope2_sorts_in_place(ns, costs):
    ns.sort()
    costs.sort()
    return float(np.polyfit(np.log(ns), np.log(costs), 1)[0])


def slope2_neighbour_mean(ns, costs):
    x, y = np.log(ns), np.log(costs)
    return float(np.mean(np.diff(y) / np.diff(x)))


def slope2_pointwise(ns, costs):
    return np.log(costs) / np.log(ns)


def slope2_string(ns, costs):
    return f"{np.polyfit(np.log(ns), np.log(costs), 1)[0]:.3f}"


# ----------------------------------------------------------------------------------------------
# 10 sinkhorn


def sk2_scaling_vectors(logits, steps):
    kernel = np.exp(logits - logits.max(axis=-2, keepdims=True))
    u = np.ones(kernel.shape[:-1] + (1,))
    for _ in range(steps):
        v = 1.0 / (kernel * u).sum(axis=-2, keepdims=True)
        u = 1.0 / (kernel * v).sum(axis=-1, keepdims=True)
    return u * kernel * v


def sk2_keras_ops(logits, steps):
    p = ops.softmax(ops.convert_to_tensor(logits, "float32"), axis=-2)
    for _ in range(steps):
        p = p / ops.sum(p, axis=-2, keepdims=True)
        p = p / ops.sum(p, axis=-1, keepdims=True)
    return p


def sk2_tf_float64(logits, steps):
    p = tf.nn.softmax(tf.constant(logits, tf.float64), axis=-2)
    p = p / tf.reduce_sum(p, axis=-1, keepdims=True)
    for _ in range(steps - 1):
        p = p / tf.reduce_sum(p, axis=-2, keepdims=True)
        p = p / tf.reduce_sum(p, axis=-1, keepdims=True)
    return p


def sk2_row_max(logits, steps):
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sk2_softmax_over_s_first(logits, steps):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sk2_half_rounds(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for i in range(steps):
        axis = -2 if i % 2 == 0 else -1
        p = p / p.sum(axis=axis, keepdims=True)
    return p


def sk2_until_converged(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(10_000):
        previous = p
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
        if np.abs(p - previous).max() < 1e-10:
            break
    return p


def sk2_clipped(logits, steps):
    p = np.exp(np.clip(logits, -50.0, 50.0))
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=-1, keepdims=True)
    return p


def sk2_transposed(logits, steps):
    p = np.exp(logits.T - logits.T.max(axis=-1, keepdims=True))  # (S, N): columns are rows now
    for _ in range(steps):
        p = p / p.sum(axis=-1, keepdims=True)
        p = p / p.sum(axis=-2, keepdims=True)
    return p


def sk2_no_keepdims(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-2)
        p = p / p.sum(axis=-1)
    return p


def sk2_total_sum(logits, steps):
    p = np.exp(logits - logits.max(axis=-2, keepdims=True))
    for _ in range(steps):
        p = p / p.sum(axis=-2, keepdims=True)
        p = p / p.sum(axis=(-2, -1), keepdims=True)
    return p


def sk2_log_domain_no_exp(logits, steps):
    from scipy.special import logsumexp
    lp = np.asarray(logits, dtype=float)
    for _ in range(steps):
        lp = lp - logsumexp(lp, axis=-2, keepdims=True)
        lp = lp - logsumexp(lp, axis=-1, keepdims=True)
    return lp


def sk2_with_scalings(logits, steps):
    kernel = np.exp(logits - logits.max(axis=-2, keepdims=True))
    u = np.ones(kernel.shape[:-1] + (1,))
    for _ in range(steps):
        v = 1.0 / (kernel * u).sum(axis=-2, keepdims=True)
        u = 1.0 / (kernel * v).sum(axis=-1, keepdims=True)
    return u * kernel * v, u, v


def sk2_loop_first_axis(logits, steps):
    out = []
    for m in logits:  # one (N, S) map at a time
        p = np.exp(m - m.max(axis=0, keepdims=True))
        for _ in range(steps):
            p = p / p.sum(axis=0, keepdims=True)
            p = p / p.sum(axis=1, keepdims=True)
        out.append(p)
    return np.stack(out)


# ----------------------------------------------------------------------------------------------
# 10 em_step


def em2_python_loops(features, memory):
    n, s = features.shape[0], memory.shape[0]
    new = np.zeros_like(memory, dtype=float)
    z = np.zeros((n, s))
    for i in range(n):
        sims = [float(features[i] @ memory[j]) for j in range(s)]
        top = max(sims)
        e = [math.exp(v - top) for v in sims]
        z[i] = [v / sum(e) for v in e]
    for j in range(s):
        new[j] = sum(z[i, j] * features[i] for i in range(n)) / z[:, j].sum()
    return new


def em2_tf(features, memory):
    f = tf.constant(features, tf.float32)
    z = tf.nn.softmax(tf.matmul(f, tf.constant(memory, tf.float32), transpose_b=True), axis=-1)
    return tf.matmul(z, f, transpose_a=True) / tf.reduce_sum(z, axis=0)[:, None]


def em2_scipy_logsumexp(features, memory):
    from scipy.special import logsumexp
    logits = features @ memory.T
    z = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    w = z / z.sum(axis=0)
    return np.einsum("ns,nd->sd", w, features)


def em2_sqrt_d(features, memory):
    logits = features @ memory.T / np.sqrt(features.shape[1])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em2_momentum(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return 0.5 * memory + 0.5 * (z.T @ features) / z.sum(axis=0)[:, None]


def em2_adds_memory(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return memory + (z.T @ features) / z.sum(axis=0)[:, None]


def em2_no_row_normalization(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em2_raw_dot_products(features, memory):
    z = features @ memory.T
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em2_transposed(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return (features.T @ z) / z.sum(axis=0)


def em2_updates_memory_in_place(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    memory[:] = (z.T @ features) / z.sum(axis=0)[:, None]
    return memory


def em2_cosine(features, memory):
    f = features / np.linalg.norm(features, axis=1, keepdims=True)
    m = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    logits = f @ m.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em2_global_max(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max())
    z /= z.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)[:, None]


def em2_with_responsibilities(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)[:, None], z


def em2_no_keepdims(features, memory):
    logits = features @ memory.T
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    z /= z.sum(axis=1, keepdims=True)
    return (z.T @ features) / z.sum(axis=0)


# (checker, answer, passes, words the "Likely mistake" must contain when it fails)
BANK = [
    (C.check_standardize, std2_channel_loop, True, None),
    (C.check_standardize, std2_keras_ops_list, True, None),
    (C.check_standardize, std2_scaled_first_eps, True, None),
    (C.check_standardize, std2_precedence, False, "parentheses"),
    (C.check_standardize, std2_axes_0_1, False, "wrong axes"),
    (C.check_standardize, std2_per_pixel, False, "per pixel"),
    (C.check_standardize, std2_times_std, False, "multiplied by the standard deviation"),
    (C.check_standardize, std2_mean_of_image_stds, False, "standard deviation"),
    (C.check_standardize, std2_three_channels, False, "fixed"),
    (C.check_standardize, std2_returns_stats, False, "statistics"),
    (C.check_standardize, std2_test_not_shifted, False, "test"),
    (C.check_standardize, std2_floor_division, False, "integer division"),
    (C.check_standardize, std2_channels_first, False, "transpose"),
    (C.check_standardize, std2_with_stats, False, "return exactly two"),
    (C.check_standardize, std2_global_mean_channel_std, False, "the shift (the mean) is not"),
    (C.check_attention_to_pixels, pix2_list_comprehension, True, None),
    (C.check_attention_to_pixels, pix2_broadcast_reshape, True, None),
    (C.check_attention_to_pixels, pix2_fancy_index_tf, True, None),
    (C.check_attention_to_pixels, pix2_fixed_side, False, "fixed"),
    (C.check_attention_to_pixels, pix2_repeat_by_side, False, "patches per side"),
    (C.check_attention_to_pixels, pix2_integer_canvas, False, "integer"),
    (C.check_attention_to_pixels, pix2_wrong_stride, False, "not its own patch"),
    (C.check_attention_to_pixels, pix2_bilinear, False, "interpolat"),
    (C.check_attention_to_pixels, pix2_batch_axes_kept, False, "extra ax"),
    (C.check_attention_to_pixels, pix2_shape_in_place, False, "in-place"),
    (C.check_attention_to_pixels, pix2_np_resize, False, "laid out"),
    (C.check_attention_to_pixels, pix2_with_grid, False, "alone"),
    (C.check_attention_to_pixels, pix2_columns_twice, False, "axis=1 both times"),
    (C.check_attention_to_pixels, pix2_flipped_rows, False, "reverse order along axis -2"),
    (C.check_attention_to_pixels, pix2_skips_first_patch_row, False, "never filled"),
    (C.check_top_units, top2_reverse_slice, True, None),
    (C.check_top_units, top2_tf_top_k, True, None),
    (C.check_top_units, top2_argmax_loop, True, None),
    (C.check_top_units, top2_zeroes_columns, False, "in-place"),
    (C.check_top_units, top2_skips_largest, False, "skips the largest"),
    (C.check_top_units, top2_ranks, False, "ranks"),
    (C.check_top_units, top2_flat_indices, False, "flat"),
    (C.check_top_units, top2_pairs, False, "pairs"),
    (C.check_top_units, top2_fixed_k, False, "fixed"),
    (C.check_top_units, top2_mask, False, "mask"),
    (C.check_top_units, top2_with_totals, False, "alone"),
    (C.check_top_units, top2_mean_over_units, False, "ranks patches"),
    (C.check_top_units, top2_argmax_each_row, False, "argmax"),
    (C.check_top_units, top2_units_of_largest_entries, False, "single"),
    (C.check_fit_slope, slope2_covariance, True, None),
    (C.check_fit_slope, slope2_normal_equations, True, None),
    (C.check_fit_slope, slope2_keras_ops, True, None),
    (C.check_fit_slope, slope2_linregress_result, False, "whole fit result"),
    (C.check_fit_slope, slope2_rounded, False, "rounded"),
    (C.check_fit_slope, slope2_int, False, "rounded"),
    (C.check_fit_slope, slope2_math_log, False, "math.log"),
    (C.check_fit_slope, slope2_ratio_of_means, False, "intercept"),
    (C.check_fit_slope, slope2_last_two, False, "last two points"),
    (C.check_fit_slope, slope2_sorts_in_place, False, "in-place"),
    (C.check_fit_slope, slope2_neighbour_mean, False, "neighbouring points"),
    (C.check_fit_slope, slope2_pointwise, False, "per point"),
    (C.check_fit_slope, slope2_string, False, "text"),
    (C.check_sinkhorn, sk2_scaling_vectors, True, None),
    (C.check_sinkhorn, sk2_keras_ops, True, None),
    (C.check_sinkhorn, sk2_tf_float64, True, None),
    (C.check_sinkhorn, sk2_row_max, False, "per row"),
    (C.check_sinkhorn, sk2_softmax_over_s_first, False, "per row"),
    (C.check_sinkhorn, sk2_half_rounds, False, "half a round"),
    (C.check_sinkhorn, sk2_until_converged, False, "converges"),
    (C.check_sinkhorn, sk2_clipped, False, "clip"),
    (C.check_sinkhorn, sk2_transposed, False, "transpose"),
    (C.check_sinkhorn, sk2_no_keepdims, False, "keepdims"),
    (C.check_sinkhorn, sk2_total_sum, False, "whole map"),
    (C.check_sinkhorn, sk2_log_domain_no_exp, False, "logarithm of the plan"),
    (C.check_sinkhorn, sk2_with_scalings, False, "alone"),
    (C.check_sinkhorn, sk2_loop_first_axis, False, "leading ax"),
    (C.check_em_step, em2_python_loops, True, None),
    (C.check_em_step, em2_tf, True, None),
    (C.check_em_step, em2_scipy_logsumexp, True, None),
    (C.check_em_step, em2_sqrt_d, False, "sqrt(d)"),
    (C.check_em_step, em2_momentum, False, "old memory"),
    (C.check_em_step, em2_adds_memory, False, "old memory"),
    (C.check_em_step, em2_no_row_normalization, False, "sum to 1 over the S"),
    (C.check_em_step, em2_raw_dot_products, False, "no softmax"),
    (C.check_em_step, em2_transposed, False, "transpose"),
    (C.check_em_step, em2_updates_memory_in_place, False, "in-place"),
    (C.check_em_step, em2_cosine, False, "cosine"),
    (C.check_em_step, em2_global_max, False, "each patch's largest"),
    (C.check_em_step, em2_with_responsibilities, False, "alone"),
    (C.check_em_step, em2_no_keepdims, False, "keepdims"),
]
