"""How patches talk: the Jacobian blocks d out_i / d x_j between different patches.

With the double normalization, the softmax over N connects every patch with every other one;
with a plain softmax over S there is no path at all, in one layer and in a whole EANet (patch
embedding, LayerNorm and MLP act on each patch alone); only the final pooling mixes patches.
"""

import keras
import numpy as np
import pytest

from eanet_course.config import get_profile
from eanet_course.influence import cross_patch_share, patch_influence
from eanet_course.layers import ExternalAttention
from eanet_course.models import build_eanet

OFF = ~np.eye(12, dtype=bool)


def _tokens(n=12, d=16, seed=0):
    return np.random.default_rng(seed).normal(size=(1, n, d)).astype("float32")


def test_influence_of_a_known_function_is_its_permutation():
    # out_i = 2 * x_{i+1}: each output patch depends on exactly one input patch, with norm 2*sqrt(d).
    x = _tokens()
    influence = patch_influence(lambda t: 2.0 * keras.ops.roll(t, -1, axis=1), x)
    expected = np.roll(np.eye(12), 1, axis=1) * 2.0 * np.sqrt(16)
    np.testing.assert_allclose(influence, expected, atol=1e-6)
    assert cross_patch_share(influence).min() == pytest.approx(1.0)


def test_influence_of_image_patches_groups_the_right_pixels():
    # A function that only keeps patch 0's pixels: every output depends on input patch 0 alone.
    image = np.random.default_rng(1).normal(size=(1, 4, 4, 3)).astype("float32")

    def first_patch_everywhere(images):
        patch = keras.ops.reshape(images[:, :2, :2, :], (1, 1, 12))
        return keras.ops.repeat(patch, 4, axis=1)  # (1, N=4, 12)

    influence = patch_influence(first_patch_everywhere, image, patch_size=2)
    np.testing.assert_allclose(influence[:, 0], np.sqrt(12), rtol=1e-6)
    assert np.all(influence[:, 1:] == 0)


@pytest.mark.parametrize("normalization", ["double", "softmax"])
def test_one_layer(normalization):
    layer = ExternalAttention(16, num_heads=2, dim_coefficient=2, normalization=normalization)
    influence = patch_influence(layer, _tokens())
    assert np.all(np.diag(influence) > 0.01)
    if normalization == "softmax":
        assert np.all(influence[OFF] == 0.0), "a plain softmax over S is a per-patch MLP"
    else:
        assert np.all(influence[OFF] > 1e-4), "the softmax over N links every pair of patches"
        assert cross_patch_share(influence).min() > 1e-3


@pytest.mark.parametrize("num_blocks", [1, 3])
def test_whole_eanet_with_softmax_keeps_patches_apart_until_the_pooling(num_blocks):
    base = get_profile("ci").replace(num_blocks=num_blocks)
    image = np.random.default_rng(2).normal(size=(1, *base.input_shape)).astype("float32")
    shares = {}
    for normalization in ("double", "softmax"):
        config = base.replace(attention_normalization=normalization)
        model = build_eanet(config)
        patches_out = keras.Model(model.input, model.get_layer(f"block_{num_blocks - 1}").output[0])
        influence = patch_influence(patches_out, image, patch_size=config.patch_size)
        off = ~np.eye(config.num_patches, dtype=bool)
        assert np.all(np.diag(influence) > 0)
        if normalization == "softmax":
            assert np.all(influence[off] == 0.0), "no path between patches before the pooling"
        else:
            assert np.all(influence[off] > 0)
        shares[normalization] = cross_patch_share(influence).mean()
        # The pooled class probabilities depend on every patch, whatever the normalization.
        pooled = patch_influence(lambda t: keras.ops.expand_dims(model(t), 1), image,
                                 patch_size=config.patch_size)
        assert np.all(pooled > 0)
    assert shares["softmax"] == 0.0 < shares["double"]


def test_bad_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="patch_size=P"):
        patch_influence(lambda t: t, np.zeros((2, 4, 3)))
    with pytest.raises(ValueError, match=r"must return \(1, N, d\)"):
        patch_influence(lambda t: t[0], np.zeros((1, 4, 3)))
