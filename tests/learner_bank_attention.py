"""A second learner bank for the attention checkers (exercises 01 to 05): extract_patches,
scaled_dot_product_attention, double_normalization, external_attention, split_heads and
merge_heads. Written from the ★ Build cells' contracts as a class reads them, not from the
checkers' code: the right answers in other styles, the slips a learner makes before a hint.
Each entry is (checker, answer, passes, words the "Likely mistake" line must contain).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import tensorflow as tf
from keras import ops

from eanet_course import checks as C

# ----------------------------------------------------------------------------------------------
# 01 extract_patches


def xp_preallocated_float32(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    out = np.zeros((b, (h // p) * (w // p), p * p * c), dtype=np.float32)
    n = 0
    for r in range(h // p):
        for q in range(w // p):
            out[:, n] = images[:, r * p:(r + 1) * p, q * p:(q + 1) * p, :].reshape(b, -1)
            n += 1
    return out


def xp_sliding_window(images, patch_size):
    p = patch_size
    windows = np.lib.stride_tricks.sliding_window_view(images, (p, p), axis=(1, 2))
    windows = windows[:, ::p, ::p]  # (B, rows, cols, C, P, P)
    windows = windows.transpose(0, 1, 2, 4, 5, 3)  # (B, rows, cols, P, P, C)
    b, rows, cols = windows.shape[:3]
    return windows.reshape(b, rows * cols, -1)


def xp_keras_tolist(images, patch_size):
    patches = ops.image.extract_patches(ops.convert_to_tensor(images), patch_size)
    b = ops.shape(patches)[0]
    return ops.convert_to_numpy(ops.reshape(patches, (b, -1, ops.shape(patches)[-1]))).tolist()


def xp_pixels_column_major(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    grid = images.reshape(b, h // p, p, w // p, p, c)
    return np.einsum("bxpyqc->bxyqpc", grid).reshape(b, -1, p * p * c)


def xp_first_image_only(images, patch_size):
    image = images[0]
    h, w, c = image.shape
    p = patch_size
    patches = [image[r:r + p, q:q + p].reshape(-1) for r in range(0, h, p) for q in range(0, w, p)]
    return np.array(patches)[None]


def xp_grayscale(images, patch_size):
    gray = images.mean(axis=-1, keepdims=True)  # one channel is enough?
    b, h, w, c = gray.shape
    p = patch_size
    grid = gray.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def xp_overlapping(images, patch_size):
    p = patch_size
    patches = tf.image.extract_patches(images, [1, p, p, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
    return tf.reshape(patches, (images.shape[0], -1, p * p * images.shape[-1]))


def xp_fixed_patch_size(images, patch_size):
    p = 4  # the notebook's patch size
    b, h, w, c = images.shape
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def xp_batch_last(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(1, 3, 0, 2, 4, 5)
    return grid.reshape((h // p) * (w // p), b, p * p * c)


def xp_shape_set_in_place(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    images.shape = (b, h // p, p, w // p, p, c)  # changes the caller's array
    return images.transpose(0, 1, 3, 2, 4, 5).reshape(b, -1, p * p * c)


def xp_rgb_to_bgr(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    grid = images[..., ::-1].reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
    return grid.reshape(b, -1, p * p * c)


def xp_pixel_major(images, patch_size):
    b, h, w, c = images.shape
    p = patch_size
    grid = images.reshape(b, h // p, p, w // p, p, c).transpose(0, 2, 4, 1, 3, 5)
    return grid.reshape(b, -1, p * p * c)


# ----------------------------------------------------------------------------------------------
# 02 scaled_dot_product_attention


def sd_loops_float32(q, k, v):
    q, k, v = (np.asarray(a, np.float32) for a in (q, k, v))
    lead = q.shape[:-2]
    qs, ks, vs = (a.reshape(-1, *a.shape[-2:]) for a in (q, k, v))
    outs, weights = [], []
    for qi, ki, vi in zip(qs, ks, vs):
        logits = qi @ ki.T / np.sqrt(np.float32(qi.shape[-1]))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        w = e / e.sum(axis=1, keepdims=True)
        outs.append(w @ vi)
        weights.append(w)
    return (np.array(outs).reshape(*lead, *outs[0].shape),
            np.array(weights).reshape(*lead, *weights[0].shape))


def sd_scipy_scaled_q(q, k, v):
    q = q / math.sqrt(q.shape[-1])  # scale the queries first: same logits
    w = scipy.special.softmax(np.einsum("...qd,...kd->...qk", q, k), axis=-1)
    return np.einsum("...qk,...kv->...qv", w, v), w


def sd_keras_ops(q, k, v):
    q, k, v = (ops.convert_to_tensor(a, "float32") for a in (q, k, v))
    logits = ops.matmul(q, ops.swapaxes(k, -1, -2)) / ops.sqrt(ops.cast(ops.shape(q)[-1],
                                                                         "float32"))
    w = ops.softmax(logits, axis=-1)
    return ops.matmul(w, v), w


def sd_logsumexp(q, k, v):
    logits = np.matmul(q, np.swapaxes(k, -1, -2)) / np.sqrt(q.shape[-1])
    w = np.exp(logits - scipy.special.logsumexp(logits, axis=-1, keepdims=True))
    return (w @ v).tolist(), w.tolist()


def sd_scale_dv(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(v.shape[-1])
    w = scipy.special.softmax(logits, axis=-1)
    return w @ v, w


def sd_scale_n_keys(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(k.shape[-2])
    w = scipy.special.softmax(logits, axis=-1)
    return w @ v, w


def sd_scale_after_softmax(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2)
    w = scipy.special.softmax(logits, axis=-1) / np.sqrt(q.shape[-1])
    return w @ v, w


def sd_no_keepdims(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1)
    return w @ v, w


def sd_fixed_3d_transpose(q, k, v):
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])  # written for (B, N, d)
    w = scipy.special.softmax(logits, axis=-1)
    return w @ v, w


def sd_log_softmax(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    w = scipy.special.log_softmax(logits, axis=-1)
    return scipy.special.softmax(logits, axis=-1) @ v, w


def sd_not_divided(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    w = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return w @ v, w


def sd_scales_q_in_place(q, k, v):
    q /= np.sqrt(q.shape[-1])
    w = scipy.special.softmax(q @ np.swapaxes(k, -1, -2), axis=-1)
    return w @ v, w


def sd_float16(q, k, v):
    q, k, v = (a.astype(np.float16) for a in (q, k, v))
    logits = q @ np.swapaxes(k, -1, -2) / np.float16(np.sqrt(q.shape[-1]))
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    w = e / e.sum(axis=-1, keepdims=True)
    return w @ v, w


def sd_one_sum(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    w = e / e.sum()
    return w @ v, w


def sd_output_unnormalized(q, k, v):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    out = e @ v  # the weighted sum taken too early
    return out, e / e.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# 04 double_normalization


def dn2_float64_einsum(logits):
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - np.max(logits, axis=-2, keepdims=True))
    p = e / np.einsum("...ns->...s", e)[..., None, :]
    return p / np.einsum("...ns->...n", p)[..., None]


def dn2_tf_ops(logits):
    t = tf.convert_to_tensor(logits)
    p = tf.nn.softmax(t, axis=-2)
    return p / tf.reduce_sum(p, axis=-1, keepdims=True)


def dn2_keras_float32(logits):
    p = ops.softmax(ops.convert_to_tensor(logits, "float32"), axis=-2)
    return ops.convert_to_numpy(p / ops.sum(p, axis=-1, keepdims=True))


def dn2_no_keepdims(logits):
    e = np.exp(logits - logits.max(axis=-2, keepdims=True))
    p = e / e.sum(axis=-2, keepdims=True)
    return p / p.sum(axis=-1)


def dn2_divide_by_max(logits):
    p = scipy.special.softmax(logits, axis=-2)
    return p / p.max(axis=-1, keepdims=True)


def dn2_l2(logits):
    p = scipy.special.softmax(logits, axis=-2)
    return p / np.linalg.norm(p, axis=-1, keepdims=True)


def dn2_big_epsilon(logits):
    p = scipy.special.softmax(logits, axis=-2)
    return p / (p.sum(axis=-1, keepdims=True) + 1e-3)


def dn2_l1_of_logits(logits):
    s = logits / np.abs(logits).sum(axis=-1, keepdims=True)  # "l1" on the logits first
    return scipy.special.softmax(s, axis=-2)


def dn2_mean_not_sum(logits):
    p = scipy.special.softmax(logits, axis=-2)
    return p / p.mean(axis=-1, keepdims=True)


def dn2_log_domain_wrong(logits):
    log_p = scipy.special.log_softmax(logits, axis=-2)
    return log_p - scipy.special.logsumexp(log_p, axis=-1, keepdims=True)  # forgot the exp


def dn2_first_map_only(logits):
    flat = logits.reshape(-1, *logits.shape[-2:])
    p = scipy.special.softmax(flat[0], axis=0)
    return np.broadcast_to(p / p.sum(axis=1, keepdims=True), logits.shape)


def dn2_square(logits):
    p = scipy.special.softmax(logits, axis=-2) ** 2  # "sharpen" the map
    return p / p.sum(axis=-1, keepdims=True)


def dn2_keras_normalize(logits):
    p = ops.softmax(ops.convert_to_tensor(logits), axis=-2)
    return ops.normalize(p, axis=-1, order=1)


def dn2_dot_t(logits):
    p = scipy.special.softmax(logits.T, axis=-1).T  # softmax over N, written for one (N, S) map
    return p / p.sum(axis=-1, keepdims=True)


# ----------------------------------------------------------------------------------------------
# 03 external_attention


def ea2_loops_float32(features, m_k, m_v):
    f = np.asarray(features, np.float32).reshape(-1, *features.shape[-2:])
    outs, maps = [], []
    for one in f:
        logits = one @ m_k.T.astype(np.float32)
        e = np.exp(logits - logits.max(axis=0))
        a = e / e.sum(axis=0)
        a = a / a.sum(axis=1)[:, None]
        maps.append(a)
        outs.append(a @ m_v.astype(np.float32))
    lead = features.shape[:-2]
    return (np.array(outs).reshape(*lead, *outs[0].shape),
            np.array(maps).reshape(*lead, *maps[0].shape))


def ea2_keras_einsum(features, m_k, m_v):
    logits = ops.einsum("...nd,sd->...ns", ops.convert_to_tensor(features),
                        ops.convert_to_tensor(m_k))
    a = ops.softmax(logits, axis=-2)
    a = a / ops.sum(a, axis=-1, keepdims=True)
    return ops.einsum("...ns,sv->...nv", a, ops.convert_to_tensor(m_v)), a


def ea2_scipy_tuple_list(features, m_k, m_v):
    a = scipy.special.softmax(np.matmul(features, np.transpose(m_k)), axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return [np.matmul(a, m_v), a]


def ea2_no_transpose(features, m_k, m_v):
    logits = features @ m_k
    a = scipy.special.softmax(logits, axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v, a


def ea2_sqrt_scale(features, m_k, m_v):
    logits = features @ m_k.T / np.sqrt(features.shape[-1])  # as in self-attention
    a = scipy.special.softmax(logits, axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v, a


def ea2_output_over_n(features, m_k, m_v):
    a = scipy.special.softmax(features @ m_k.T, axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v / features.shape[-2], a  # "an average over the patches"


def ea2_normalizes_memory_in_place(features, m_k, m_v):
    m_k /= np.linalg.norm(m_k, axis=1, keepdims=True)
    a = scipy.special.softmax(features @ m_k.T, axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v, a


def ea2_max_over_s(features, m_k, m_v):
    logits = features @ m_k.T
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    a = e / e.sum(axis=-2, keepdims=True)
    a = a / a.sum(axis=-1, keepdims=True)
    return a @ m_v, a


def ea2_attention_s_by_n(features, m_k, m_v):
    logits = np.einsum("...nd,sd->...sn", features, m_k)  # (..., S, N)
    a = scipy.special.softmax(logits, axis=-1)
    a = a / a.sum(axis=-2, keepdims=True)
    return np.einsum("...sn,sv->...nv", a, m_v), a


def ea2_output_before_l1(features, m_k, m_v):
    p = scipy.special.softmax(features @ m_k.T, axis=-2)
    out = p @ m_v  # the output taken one step too early
    return out, p / p.sum(axis=-1, keepdims=True)


def ea2_no_keepdims(features, m_k, m_v):
    a = scipy.special.softmax(features @ m_k.T, axis=-2)
    a = a / a.sum(axis=-1)
    return a @ m_v, a


def ea2_residual(features, m_k, m_v):
    a = scipy.special.softmax(features @ m_k.T, axis=-2)
    a = a / a.sum(axis=-1, keepdims=True)
    return features + a @ m_v, a  # EANet has a residual


# ----------------------------------------------------------------------------------------------
# 05 split_heads


def sh_einsum(x, num_heads):
    b, n, width = x.shape
    return np.einsum("bnhd->bhnd", x.reshape(b, n, num_heads, width // num_heads))


def sh_tf(x, num_heads):
    b, n, _ = x.shape
    return tf.transpose(tf.reshape(x, [b, n, num_heads, -1]), [0, 2, 1, 3])


def sh_loops_tolist(x, num_heads):
    b, n, width = x.shape
    dh = width // num_heads
    out = np.empty((b, num_heads, n, dh))
    for h in range(num_heads):
        out[:, h] = x[:, :, h * dh:(h + 1) * dh]
    return out.tolist()


def sh_heads_first(x, num_heads):
    return np.stack(np.split(x, num_heads, axis=-1), axis=0)  # (H, B, N, dh)


def sh_stack_last(x, num_heads):
    return np.stack(np.split(x, num_heads, axis=-1), axis=-1)  # (B, N, dh, H)


def sh_fixed_batch(x, num_heads):
    b = 2  # the notebook's batch
    _, n, width = x.shape
    return x.reshape(b, n, num_heads, width // num_heads).transpose(0, 2, 1, 3)


def sh_swapaxes_1_3(x, num_heads):
    b, n, width = x.shape
    return x.reshape(b, n, num_heads, width // num_heads).swapaxes(1, 3)


def sh_shape_in_place(x, num_heads):
    b, n, width = x.shape
    x.shape = (b, n, num_heads, width // num_heads)
    return x.transpose(0, 2, 1, 3)


def sh_loop_drops_last(x, num_heads):
    b, n, width = x.shape
    dh = width // num_heads
    return np.stack([x[:, :, i * dh:(i + 1) * dh] for i in range(num_heads - 1)], axis=1)


def sh_tf_default_transpose(x, num_heads):
    b, n, width = x.shape
    return tf.transpose(tf.reshape(x, (b, n, num_heads, width // num_heads)))


def sh_float_dh(x, num_heads):
    b, n, width = x.shape
    return x.reshape(b, n, num_heads, width / num_heads).transpose(0, 2, 1, 3)


def sh_heads_on_patches(x, num_heads):
    b, n, width = x.shape
    dh = width // num_heads
    return x.reshape(b, num_heads, n, dh, order="F")


def sh_tf_split_stack(x, num_heads):
    return tf.stack(tf.split(x, num_heads, axis=-1), axis=1)


# ----------------------------------------------------------------------------------------------
# 05 merge_heads


def mh_swapaxes_minus_one(x):
    b, h, n, dh = x.shape
    return x.swapaxes(1, 2).reshape(b, n, -1)


def mh_einsum_float32(x):
    b, h, n, dh = x.shape
    return np.einsum("bhnd->bnhd", x.astype(np.float32)).reshape(b, n, h * dh)


def mh_keras_concatenate(x):
    t = ops.convert_to_tensor(x)
    return ops.concatenate([t[:, i] for i in range(t.shape[1])], axis=-1)


def mh_fixed_heads(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n, 4 * dh)  # 4 heads in the notebook


def mh_reversed_heads(x):
    return np.concatenate([x[:, i] for i in range(x.shape[1] - 1, -1, -1)], axis=-1)


def mh_drops_last_head(x):
    return np.concatenate([x[:, i] for i in range(x.shape[1] - 1)], axis=-1)


def mh_rows_of_heads(x):
    b, h, n, dh = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, n * h, dh)


def mh_squeezed(x):
    b, h, n, dh = x.shape
    return np.squeeze(x.transpose(0, 2, 1, 3).reshape(b, n, h * dh))


def mh_max_over_heads(x):
    return x.max(axis=1)


def mh_into_batch(x):
    b, h, n, dh = x.shape
    return x.reshape(b * h, n, dh)


def mh_shape_misread(x):
    b, n, h, dh = x.shape  # the letters in the wrong order
    return x.transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def mh_float16(x):
    b, h, n, dh = x.shape
    return x.astype(np.float16).transpose(0, 2, 1, 3).reshape(b, n, h * dh)


def mh_concatenate_x(x):
    return np.concatenate(x, axis=-1)


BANK = [
    (C.check_extract_patches, xp_preallocated_float32, True, None),
    (C.check_extract_patches, xp_sliding_window, True, None),
    (C.check_extract_patches, xp_keras_tolist, True, None),
    (C.check_extract_patches, xp_pixels_column_major, False, "inside a patch"),
    (C.check_extract_patches, xp_first_image_only, False, "only the first entry along axis -3 (b)"),
    (C.check_extract_patches, xp_grayscale, False, "channels are averaged"),
    (C.check_extract_patches, xp_overlapping, False, "patches that overlap"),
    (C.check_extract_patches, xp_fixed_patch_size, False, "a fixed patch size"),
    (C.check_extract_patches, xp_batch_last, False, "(N, B, P*P*C)"),
    (C.check_extract_patches, xp_shape_set_in_place, False, "in-place operation"),
    (C.check_extract_patches, xp_rgb_to_bgr, False, "channel order reversed"),
    (C.check_extract_patches, xp_pixel_major, False, "transposed in the wrong order"),
    (C.check_scaled_dot_product_attention, sd_loops_float32, True, None),
    (C.check_scaled_dot_product_attention, sd_scipy_scaled_q, True, None),
    (C.check_scaled_dot_product_attention, sd_keras_ops, True, None),
    (C.check_scaled_dot_product_attention, sd_logsumexp, True, None),
    (C.check_scaled_dot_product_attention, sd_scale_dv, False, "d_v"),
    (C.check_scaled_dot_product_attention, sd_scale_n_keys, False, "number of keys"),
    (C.check_scaled_dot_product_attention, sd_scale_after_softmax, False, "after the softmax"),
    (C.check_scaled_dot_product_attention, sd_no_keepdims, False, "keepdims"),
    (C.check_scaled_dot_product_attention, sd_fixed_3d_transpose, False,
     "count axes from the end"),
    (C.check_scaled_dot_product_attention, sd_log_softmax, False, "logarithms of the right ones"),
    (C.check_scaled_dot_product_attention, sd_not_divided, False, "not divided by their sum"),
    (C.check_scaled_dot_product_attention, sd_scales_q_in_place, False, "in-place operation"),
    (C.check_scaled_dot_product_attention, sd_float16, False, "low-precision"),
    (C.check_scaled_dot_product_attention, sd_one_sum, False, "one sum for the whole"),
    (C.check_scaled_dot_product_attention, sd_output_unnormalized, False,
     "before they are divided by their sum"),
    (C.check_double_normalization, dn2_float64_einsum, True, None),
    (C.check_double_normalization, dn2_tf_ops, True, None),
    (C.check_double_normalization, dn2_keras_float32, True, None),
    (C.check_double_normalization, dn2_keras_normalize, True, None),
    (C.check_double_normalization, dn2_no_keepdims, False, "keepdims"),
    (C.check_double_normalization, dn2_divide_by_max, False, "maximum, not by its sum"),
    (C.check_double_normalization, dn2_l2, False, "l2"),
    (C.check_double_normalization, dn2_big_epsilon, False, "epsilon"),
    (C.check_double_normalization, dn2_l1_of_logits, False, "wrong order"),
    (C.check_double_normalization, dn2_mean_not_sum, False, "a mean where a sum belongs"),
    (C.check_double_normalization, dn2_log_domain_wrong, False, "logarithms of the right ones"),
    (C.check_double_normalization, dn2_first_map_only, False, "only the first entry along axis -3"),
    (C.check_double_normalization, dn2_square, False, "squared"),
    (C.check_double_normalization, dn2_dot_t, False, "first (batch) axis"),
    (C.check_external_attention, ea2_loops_float32, True, None),
    (C.check_external_attention, ea2_keras_einsum, True, None),
    (C.check_external_attention, ea2_scipy_tuple_list, True, None),
    (C.check_external_attention, ea2_no_transpose, False, "transpose"),
    (C.check_external_attention, ea2_sqrt_scale, False, "sqrt(d)"),
    (C.check_external_attention, ea2_output_over_n, False, "1 over the length"),
    (C.check_external_attention, ea2_normalizes_memory_in_place, False, "in-place operation"),
    (C.check_external_attention, ea2_max_over_s, False, "memory axis S"),
    (C.check_external_attention, ea2_attention_s_by_n, False, "(S, N)"),
    (C.check_external_attention, ea2_output_before_l1, False, "before the l1 step"),
    (C.check_external_attention, ea2_no_keepdims, False, "keepdims"),
    (C.check_external_attention, ea2_residual, False, "residual"),
    (C.check_split_heads, sh_einsum, True, None),
    (C.check_split_heads, sh_tf, True, None),
    (C.check_split_heads, sh_loops_tolist, True, None),
    (C.check_split_heads, sh_tf_split_stack, True, None),
    (C.check_split_heads, sh_heads_first, False, "(H, B, N, dh)"),
    (C.check_split_heads, sh_stack_last, False, "(B, N, dh, H)"),
    (C.check_split_heads, sh_fixed_batch, False, "fixed number"),
    (C.check_split_heads, sh_swapaxes_1_3, False, "(B, dh, H, N)"),
    (C.check_split_heads, sh_shape_in_place, False, "in-place operation"),
    (C.check_split_heads, sh_loop_drops_last, False, "off-by-one"),
    (C.check_split_heads, sh_tf_default_transpose, False, "(dh, H, N, B)"),
    (C.check_split_heads, sh_float_dh, False, "integer division"),
    (C.check_split_heads, sh_heads_on_patches, False, "fortran order"),
    (C.check_merge_heads, mh_swapaxes_minus_one, True, None),
    (C.check_merge_heads, mh_einsum_float32, True, None),
    (C.check_merge_heads, mh_keras_concatenate, True, None),
    (C.check_merge_heads, mh_fixed_heads, False, "fixed number"),
    (C.check_merge_heads, mh_reversed_heads, False, "blocks come in reverse order"),
    (C.check_merge_heads, mh_drops_last_head, False, "off-by-one"),
    (C.check_merge_heads, mh_rows_of_heads, False, "reshape to"),
    (C.check_merge_heads, mh_squeezed, False, "squeeze"),
    (C.check_merge_heads, mh_max_over_heads, False, "maximum over the heads"),
    (C.check_merge_heads, mh_into_batch, False, "folded into the batch axis"),
    (C.check_merge_heads, mh_shape_misread, False, "reshape to"),
    (C.check_merge_heads, mh_float16, False, "low-precision"),
    (C.check_merge_heads, mh_concatenate_x, False, "runs over x's first axis"),
]
