"""The NumPy reference against the definitions written as plain loops (the ground truth's truth)."""

import numpy as np

from eanet_course import reference

RNG = np.random.default_rng(2)


def test_extract_patches_against_slicing():
    images = RNG.normal(size=(2, 6, 4, 3))
    patches = reference.extract_patches(images, 2)
    k = 0
    for row in range(3):
        for col in range(2):
            block = images[:, 2 * row:2 * row + 2, 2 * col:2 * col + 2, :]
            np.testing.assert_array_equal(patches[:, k], block.reshape(2, -1))
            k += 1


def test_double_normalization_against_loops():
    logits = RNG.normal(size=(5, 3)) * 3
    expected = np.empty_like(logits)
    for j in range(3):  # softmax down each memory unit's column (over patches)
        e = np.exp(logits[:, j])
        expected[:, j] = e / e.sum()
    for i in range(5):  # then each patch's row is scaled to sum to 1 (over memory units)
        expected[i] /= expected[i].sum()
    np.testing.assert_allclose(reference.double_normalization(logits), expected, rtol=1e-6)


def test_double_normalization_of_batched_logits_normalizes_each_map_on_its_own():
    """With leading batch and head axes, each (N, S) map is normalized alone: axes -2 and -1,
    not 0 and 1."""
    logits = RNG.normal(size=(2, 3, 5, 4)) * 3
    got = reference.double_normalization(logits)
    for b in range(2):
        for h in range(3):
            np.testing.assert_allclose(got[b, h], reference.double_normalization(logits[b, h]),
                                       rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=-1), 1.0)


def test_multi_head_external_attention_runs_each_head_on_its_block_of_channels():
    b, n, d, c, heads, s = 2, 5, 8, 2, 4, 3
    dh = d * c // heads
    x = RNG.normal(size=(b, n, d))
    w_in, b_in = RNG.normal(size=(d, d * c)), RNG.normal(size=d * c)
    m_k, b_k, m_v, b_v = (RNG.normal(size=shape) for shape in ((s, dh), (s,), (s, dh), (dh,)))
    w_out, b_out = RNG.normal(size=(d * c, d)), RNG.normal(size=d)
    out, scores = reference.multi_head_external_attention(
        x, w_in, b_in, m_k, b_k, m_v, b_v, w_out, b_out, num_heads=heads)
    assert out.shape == (b, n, d) and scores.shape == (b, heads, n, s)
    wide = x @ w_in + b_in
    merged = np.empty((b, n, d * c))
    for h in range(heads):
        channels = slice(h * dh, (h + 1) * dh)
        head_out, head_scores = reference.external_attention(wide[..., channels], m_k, m_v,
                                                             b_k, b_v)
        np.testing.assert_allclose(scores[:, h], head_scores, rtol=1e-10)
        merged[..., channels] = head_out
    np.testing.assert_allclose(out, merged @ w_out + b_out, rtol=1e-10)


def test_external_attention_is_two_linear_maps_around_the_normalization():
    f, m_k, m_v = RNG.normal(size=(7, 4)), RNG.normal(size=(3, 4)), RNG.normal(size=(3, 5))
    out, attention = reference.external_attention(f, m_k, m_v)
    assert out.shape == (7, 5) and attention.shape == (7, 3)
    np.testing.assert_allclose(attention.sum(axis=1), 1.0)
    for i in range(7):
        np.testing.assert_allclose(out[i], sum(attention[i, j] * m_v[j] for j in range(3)))


def test_scaled_dot_product_attention_against_loops():
    q, k, v = RNG.normal(size=(4, 8)), RNG.normal(size=(6, 8)), RNG.normal(size=(6, 2))
    out, weights = reference.scaled_dot_product_attention(q, k, v)
    for i in range(4):
        logits = np.array([q[i] @ k[j] for j in range(6)]) / np.sqrt(8)
        w = np.exp(logits) / np.exp(logits).sum()
        np.testing.assert_allclose(weights[i], w, rtol=1e-6)
        np.testing.assert_allclose(out[i], w @ v, rtol=1e-6)


def test_split_and_merge_heads_are_inverse_and_split_channels_in_blocks():
    x = RNG.normal(size=(2, 5, 12))
    heads = reference.split_heads(x, 3)
    assert heads.shape == (2, 3, 5, 4)
    np.testing.assert_array_equal(heads[:, 1], x[:, :, 4:8])
    np.testing.assert_array_equal(reference.merge_heads(heads), x)


def test_softmax_is_stable_for_large_logits():
    out = reference.softmax(np.array([1000.0, 1000.0, -1000.0]))
    np.testing.assert_allclose(out, [0.5, 0.5, 0.0])
