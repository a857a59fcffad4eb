"""The explorers' callbacks, driven without a browser: a control moves, the picture changes."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from eanet_course import reference, viz, widgets  # noqa: E402
from eanet_course.config import get_profile  # noqa: E402
from eanet_course.models import attention_model, build_eanet, build_vit  # noqa: E402

CONFIG = get_profile("ci")
IMAGES = np.random.default_rng(0).normal(size=(3, *CONFIG.input_shape)).astype("float32")
NAMES = [f"digit {i}" for i in range(10)]


@pytest.fixture(scope="module")
def eanet():
    return build_eanet(CONFIG)


@pytest.fixture(scope="module")
def explorer(eanet):
    return widgets.attention_explorer(eanet, IMAGES, labels=[7, 1, 4], class_names=NAMES)


def _moved(explorer, control, value):
    before = (explorer.picture.value, explorer.caption.value)
    control.value = value
    assert explorer.picture.value[:8] == b"\x89PNG\r\n\x1a\n"
    return explorer.picture.value != before[0] and explorer.caption.value != before[1]


def test_explorer_holds_every_block_s_scores(eanet, explorer):
    expected = attention_model(eanet).predict(IMAGES, verbose=0)
    assert len(explorer.scores) == CONFIG.num_blocks
    for got, want in zip(explorer.scores, expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert explorer.head.max == CONFIG.num_heads * CONFIG.dim_coefficient - 1
    assert explorer.unit.max == CONFIG.embed_dim // CONFIG.dim_coefficient - 1
    assert explorer.patch_size == CONFIG.patch_size
    assert explorer.image.options[0][0].startswith("0: digit 7 (predicted digit ")


@pytest.mark.parametrize("name, value", [("unit", 3), ("head", 2), ("block", 1), ("image", 2)])
def test_every_control_redraws_the_picture(explorer, name, value):
    assert _moved(explorer, getattr(explorer, name), value)
    overlay = explorer.figure.axes[0].get_images()[1].get_array()
    shown = explorer.current_scores()[:, explorer.unit.value]
    np.testing.assert_allclose(overlay[:: CONFIG.patch_size, :: CONFIG.patch_size].ravel(), shown)
    assert f"memory unit {explorer.unit.value} takes" in explorer.caption.value


def test_top_mode_shows_the_units_with_most_attention(explorer):
    explorer.mode.value = explorer.TOP
    try:
        titles = [ax.get_title() for ax in explorer.figure.axes if ax.get_images()]
        top = viz.top_units(explorer.current_scores(), 8)
        assert [int(t.split()[1][:-1]) for t in titles] == top.tolist()
        assert explorer.unit.disabled
    finally:
        explorer.mode.value = explorer.ONE
    assert not explorer.unit.disabled


def test_explorer_works_with_a_model_loaded_from_a_keras_file(eanet, tmp_path):
    import keras

    eanet.save(tmp_path / "best.keras")
    loaded = keras.models.load_model(tmp_path / "best.keras")
    fresh = widgets.attention_explorer(eanet, IMAGES)
    again = widgets.attention_explorer(loaded, IMAGES)
    np.testing.assert_allclose(again.scores[1], fresh.scores[1], rtol=1e-5, atol=1e-6)
    assert again.picture.value == fresh.picture.value


def test_explorer_of_a_vit_shows_where_a_query_patch_looks():
    vit = widgets.attention_explorer(build_vit(CONFIG), IMAGES[:1])
    assert vit.unit.description == "query patch" and vit.mode.disabled
    assert vit.unit.max == CONFIG.num_patches - 1
    assert _moved(vit, vit.unit, 5)
    assert vit.figure.axes[0].get_title() == "query patch 5"


def test_explorer_refuses_images_the_model_cannot_take(eanet):
    with pytest.raises(ValueError, match="normalize"):
        widgets.attention_explorer(eanet, IMAGES[0])


def test_patch_explorer_offers_the_patch_sizes_that_fit():
    image = (np.arange(64).reshape(8, 8, 1) * 4).astype(np.uint8)
    explorer = widgets.patch_explorer(image)
    assert explorer.patch_size.options == (1, 2, 4, 8)
    assert "<b>16</b> patches" in explorer.caption.value
    assert _moved(explorer, explorer.patch_size, 4)
    assert "<b>4</b> patches of 4&middot;4&middot;1 = 16 values" in explorer.caption.value
    assert "N = 4" in explorer.figure.axes[0].get_title()
    with pytest.raises(ValueError, match="not the batch"):
        widgets.patch_explorer(np.zeros((2, 8, 8, 3)))


def test_patch_explorer_caps_the_number_of_patches():
    assert widgets.patch_explorer(np.zeros((32, 32, 3))).patch_size.options == (2, 4, 8, 16, 32)


def test_normalization_explorer_scales_the_same_logits():
    explorer = widgets.normalization_explorer(seed=3)
    logits = explorer.logits.copy()
    assert _moved(explorer, explorer.scale, 5.0)
    raw, plain, double = (ax.get_images()[0].get_array() for ax in explorer.figure.axes[:3])
    np.testing.assert_allclose(raw, 5.0 * logits)
    np.testing.assert_allclose(double, reference.double_normalization(5.0 * logits))
    assert f"{reference.softmax(5.0 * logits).max(axis=-1).mean():.2f}" in explorer.caption.value
    np.testing.assert_array_equal(widgets.normalization_explorer(seed=3).logits, logits)


@pytest.mark.parametrize("kwargs,fix", [
    ({"labels": [7, 1]}, r"Got 3 images but 2 labels; pass one label per image"),
    ({"labels": np.eye(10)[:2]}, r"Got 3 images but 2 labels"),
    ({"labels": [7, 1, 10]}, r"Labels run from 1 to 10, but the model predicts classes 0 \.\. 9"),
    ({"class_names": NAMES[:3]}, r"class_names has 3 names but the model predicts 10 classes"),
    ({"labels": [7, 1, 4], "class_names": NAMES[:2]}, r"class_names has 2 names"),
])
def test_explorer_refuses_labels_and_names_that_do_not_fit(eanet, kwargs, fix):
    with pytest.raises(ValueError, match=fix):
        widgets.attention_explorer(eanet, IMAGES, **kwargs)


def test_explorers_take_numpy_integers_and_refuse_other_numbers(eanet):
    explorer = widgets.AttentionExplorer(eanet, IMAGES[:1], top_k=np.int64(3),
                                         patch_size=np.int32(CONFIG.patch_size))
    assert explorer.top_k == 3 and type(explorer.patch_size) is int
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 2.5"):
        widgets.AttentionExplorer(eanet, IMAGES[:1], top_k=2.5)
    assert widgets.normalization_explorer(np.int64(3)).logits.shape == (8, 6)
    with pytest.raises(ValueError, match="seed must be an integer >= 0, got -1"):
        widgets.normalization_explorer(-1)
