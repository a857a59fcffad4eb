"""Every plotting function draws what it says, returns its Figure, and refuses bad input clearly."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.colors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from eanet_course import reference, viz  # noqa: E402

RNG = np.random.default_rng(0)
GREY = (RNG.random((8, 8, 1)) * 255).astype(np.uint8)
COLOUR = RNG.normal(size=(32, 32, 3)).astype(np.float32)  # a normalized image


def _images(fig: Figure) -> list:
    return [image for ax in fig.axes for image in ax.get_images()]


@pytest.fixture(autouse=True)
def no_open_figures():
    yield
    left_open = plt.get_fignums()
    plt.close("all")
    assert left_open == [], "a viz function left a pyplot figure open"


def test_show_images_titles_each_image_with_its_class_name():
    labels = np.eye(3)[[2, 0, 1, 2]]  # one-hot labels work as well as ints
    fig = viz.show_images(RNG.random((4, 8, 8, 1)), labels, class_names=["a", "b", "c"], ncols=2)
    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["c", "a", "b", "c"]
    assert len(_images(fig)) == 4


def test_show_images_rescales_floats_and_uint8_to_unit_range():
    fig = viz.show_images(np.stack([COLOUR * 7 + 3, COLOUR]))
    for image in _images(fig):
        data = image.get_array()
        assert data.min() == pytest.approx(0.0) and data.max() == pytest.approx(1.0)
    grey = _images(viz.show_images(GREY[None]))[0]
    np.testing.assert_allclose(grey.get_array(), GREY[..., 0] / 255.0, atol=1e-6)
    assert grey.get_cmap().name == "gray"


def test_show_images_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="one per image"):
        viz.show_images(RNG.random((3, 8, 8)), labels=[0, 1])
    with pytest.raises(ValueError, match="one class name per class"):
        viz.show_images(RNG.random((2, 8, 8)), labels=[0, 2], class_names=["a", "b"])


@pytest.mark.parametrize("images, message", [
    (COLOUR, "look like one image"),  # one (H, W, 3) image is not 32 images of 32x3 pixels
    (GREY, "look like one image"),
    (np.zeros((0, 8, 8, 3)), "got shape"),
    (np.zeros((2, 8, 8, 4)), "C = 1 or 3"),
])
def test_show_images_refuses_what_is_not_a_batch_of_images(images, message):
    with pytest.raises(ValueError, match=message):
        viz.show_images(images)


def test_class_balance_counts_each_class():
    fig = viz.plot_class_balance([0, 1, 1, 3, 3, 3], class_names=list("abcd"))
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights == [1, 2, 0, 3]


@pytest.mark.parametrize("labels, message", [
    ([0, 1, 4], "one class name per class"), ([0, -1], "one class name per class"),
    ([], "No labels"),
])
def test_class_balance_refuses_labels_that_are_not_classes(labels, message):
    with pytest.raises(ValueError, match=message):
        viz.plot_class_balance(labels, class_names=["a", "b"])


def test_show_patches_numbers_the_patches_and_pulls_them_apart():
    fig = viz.show_patches(COLOUR, 8)
    grid, apart = fig.axes
    assert "N = 16" in grid.get_title()
    assert [t.get_text() for t in grid.texts] == [str(i) for i in range(16)]
    mosaic = apart.get_images()[0].get_array()
    assert mosaic.shape == (4 * 8 + 3 * 2, 4 * 8 + 3 * 2, 3)  # 4x4 patches, 2-pixel gaps
    # Patch 6 is row 1, column 2: the same pixels as reference.extract_patches gives.
    expected = reference.extract_patches(COLOUR[None], 8)[0, 6].reshape(8, 8, 3)
    lo, hi = COLOUR.min(), COLOUR.max()
    np.testing.assert_allclose(mosaic[10:18, 20:28], (expected - lo) / (hi - lo), atol=1e-5)
    gap = np.asarray(matplotlib.colors.to_rgb(viz.GAP_COLOUR), dtype=mosaic.dtype)
    assert (mosaic[8:10] == gap).all()  # a gap between patch rows, in the gap colour


def test_show_patches_names_valid_patch_sizes():
    with pytest.raises(ValueError, match=r"patch_size among \[1, 2, 4, 8\]"):
        viz.show_patches(GREY, 3)


def test_position_similarity_tiles_cosine_similarities():
    emb = RNG.normal(size=(9, 5))
    mosaic = _images(viz.plot_position_similarity(emb, 3))[0].get_array()
    assert mosaic.shape == (11, 11)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    # Tile (1, 2) is patch 5's similarity to the 3x3 grid of positions.
    np.testing.assert_allclose(mosaic[4:7, 8:11], (unit @ unit[5]).reshape(3, 3), atol=1e-12)
    assert mosaic[5, 5] == pytest.approx(1.0)  # patch 4 with itself, in the middle tile
    with pytest.raises(ValueError, match="grid_size"):
        viz.plot_position_similarity(emb, 4)
    with pytest.raises(ValueError, match="grid_size"):
        viz.plot_position_similarity(emb, 3.0)


def test_attention_matrix_draws_the_map_with_labels():
    scores = RNG.random((16, 8))
    fig = viz.plot_attention_matrix(scores, title="block 0", xlabel="unit", ylabel="patch")
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), scores)
    assert (ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) == ("block 0", "unit", "patch")
    with pytest.raises(ValueError, match="one head"):
        viz.plot_attention_matrix(RNG.random((2, 16, 8)))


def test_normalizations_show_raw_plain_softmax_and_double_norm():
    logits = RNG.normal(size=(6, 4)) * 3
    raw, plain, double = (image.get_array() for image in _images(viz.plot_normalizations(logits)))
    np.testing.assert_allclose(raw, logits)
    np.testing.assert_allclose(plain, reference.softmax(logits, axis=-1))
    np.testing.assert_allclose(double, reference.double_normalization(logits))
    assert not np.allclose(plain, double)


def test_overlay_fills_each_patch_with_its_score():
    scores = np.arange(16.0)
    fig = viz.plot_attention_overlay(GREY, scores, 2)
    picture, heat = _images(fig)
    assert picture.get_cmap().name == "gray"
    assert heat.get_array().shape == (8, 8)
    assert heat.get_array()[2, 6] == 7.0  # pixel (2, 6) is in patch row 1, column 3
    assert 0 < heat.get_alpha() < 1
    assert len(fig.axes[0].lines) == 6  # 3 inner grid lines each way
    assert fig.axes[1].get_ylabel() == "attention"  # a colour bar says what the colours mean


def test_overlay_colour_scale_starts_at_zero():
    # Nearly uniform attention must look nearly uniform, not stretched over the whole colour map.
    scores = np.full(16, 1 / 16) + RNG.normal(0, 1e-6, 16)
    heat = _images(viz.plot_attention_overlay(GREY, scores, 2))[1]
    assert heat.get_clim() == (0.0, scores.max())
    signed = _images(viz.plot_attention_overlay(GREY, scores - 0.1, 2))[1]
    assert signed.get_clim() == ((scores - 0.1).min(), (scores - 0.1).max())


def test_overlay_draws_into_a_given_axes():
    fig, ax = plt.subplots()
    plt.close(fig)
    assert viz.plot_attention_overlay(COLOUR, RNG.random(64), 4, ax=ax) is fig
    assert len(ax.get_images()) == 2


def test_overlay_refuses_a_score_count_that_does_not_fit_the_grid():
    with pytest.raises(ValueError, match="one score per patch"):
        viz.plot_attention_overlay(GREY, RNG.random(15), 2)


def test_grids_of_overlays_refuse_a_wrong_patch_size_before_drawing():
    # 16 patches are a 4x4 grid with P = 2; P = 4 gives 4 patches. The autouse fixture checks
    # that no half-drawn figure is left open.
    with pytest.raises(ValueError, match="one score per patch"):
        viz.plot_memory_units(GREY, RNG.random((16, 4)), 4)
    with pytest.raises(ValueError, match="one score per patch"):
        viz.plot_self_attention_rows(GREY, RNG.random((16, 16)), 4, rows=[0])
    with pytest.raises(ValueError, match="not an integer"):
        viz.plot_self_attention_rows(GREY, RNG.random((16, 16)), 2, rows=[1.5])


def test_top_units_rank_by_attention_mass():
    scores = np.zeros((4, 5))
    scores[:, 3] = 0.6
    scores[:, 1] = 0.3
    scores[:2, 0] = 0.1
    assert viz.top_units(scores, 2).tolist() == [3, 1]
    assert viz.top_units(scores, 99).tolist() == [3, 1, 0, 2, 4]


def test_memory_units_shows_requested_units_or_the_busiest_sixteen():
    scores = RNG.random((16, 4))
    fig = viz.plot_memory_units(GREY, scores, 2, units=[3, 1])
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["unit 3", "unit 1"]
    np.testing.assert_allclose(fig.axes[0].get_images()[1].get_array()[::2, ::2].ravel(),
                               scores[:, 3])
    assert len(viz.plot_memory_units(GREY, scores, 2).axes) == 4
    wide = RNG.random((16, 40))
    shown = [ax for ax in viz.plot_memory_units(GREY, wide, 2).axes if ax.get_images()]
    assert [int(ax.get_title().split()[1][:-1]) for ax in shown] == viz.top_units(wide, 16).tolist()
    with pytest.raises(ValueError, match="out of range"):
        viz.plot_memory_units(GREY, scores, 2, units=[4])


def test_self_attention_rows_outline_the_query_patch():
    scores = RNG.random((16, 16))
    fig = viz.plot_self_attention_rows(GREY, scores, 2, rows=[5, 0])
    assert [ax.get_title() for ax in fig.axes] == ["query patch 5", "query patch 0"]
    outline = fig.axes[0].patches[0]
    assert outline.get_xy() == (1.5, 1.5)  # patch 5: row 1, column 1
    np.testing.assert_allclose(fig.axes[1].get_images()[1].get_array()[::2, ::2].ravel(),
                               scores[0])
    with pytest.raises(ValueError, match="plot_memory_units"):
        viz.plot_self_attention_rows(GREY, RNG.random((16, 4)), 2, rows=[0])


HISTORY = {"loss": [2.0, 1.0, 0.5], "val_loss": [2.1, 1.4, 1.2],
           "accuracy": [0.2, 0.5, 0.8], "val_accuracy": [0.1, 0.4, 0.6],
           "top5_accuracy": [0.5, 0.8, 0.9], "val_top5_accuracy": [0.4, 0.7, 0.8]}


def _curves(fig: Figure) -> dict:
    return {line.get_label(): list(line.get_ydata()) for ax in fig.axes for line in ax.lines}


def test_history_plots_training_and_validation_curves():
    curves = _curves(viz.plot_history(HISTORY))
    assert curves["train loss"] == HISTORY["loss"]
    assert curves["validation loss"] == HISTORY["val_loss"]
    assert curves["validation top5_accuracy"] == HISTORY["val_top5_accuracy"]
    assert len(curves) == 6


def test_history_reads_a_csv_logger_file(tmp_path):
    path = tmp_path / "history.csv"
    keys = sorted(HISTORY)
    lines = [",".join(["epoch", *keys])]
    lines += [",".join([str(e), *(str(HISTORY[k][e]) for k in keys)]) for e in range(3)]
    path.write_text("\n".join(lines) + "\n")
    assert _curves(viz.plot_history(path)) == _curves(viz.plot_history(HISTORY))


def test_history_without_accuracy_has_one_panel_labelled_loss():
    fig = viz.plot_history({"loss": [2.0, 1.0], "val_loss": [2.5, 1.5]})
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss"]


def test_history_refuses_what_is_not_a_history():
    with pytest.raises(TypeError, match="CSVLogger"):
        viz.plot_history([1, 2, 3])
    with pytest.raises(ValueError, match="loss"):
        viz.plot_history({"accuracy": [0.5]})
    with pytest.raises(ValueError, match="validation_freq=1"):
        viz.plot_history({"loss": [2.0, 1.5, 1.0, 0.8], "val_loss": [1.8, 1.1]})


def test_input_distributions_share_bins_and_report_statistics():
    fig = viz.plot_input_distributions(RNG.normal(0, 1, 500), RNG.normal(3, 1, 500))
    bars = fig.axes[0].patches
    assert len(bars) == 120  # 60 bins for each of the two histograms
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    means = [float(label.split("mean ")[1].split(",")[0]) for label in labels]
    assert labels[0].startswith("training inputs") and labels[1].startswith("test inputs")
    assert abs(means[0]) < 0.2 and abs(means[1] - 3) < 0.2
    with pytest.raises(ValueError, match="test_values holds 1 NaN"):
        viz.plot_input_distributions([0.0, 1.0], [0.0, np.nan])


def _bench(peak: bool) -> dict:
    rows = [{"layer": layer, "N": n, "time_ms": 0.01 * n ** power,
             "peak_mb": float(n ** power) if peak else None}
            for layer, power in (("external", 1), ("self", 2)) for n in (16, 64, 256)]
    slopes = {"external": {"time": 1.0, "memory": 1.0, "range": [16, 256]},
              "self": {"time": 2.0, "memory": 2.0, "range": [16, 256]}}
    return {"machine": "test", "quick": True, "embed_dim": 64, "batch_size": 8, "num_heads": 4,
            "rows": rows, "slopes": slopes}


def test_scaling_plots_time_and_memory_with_slopes_in_the_legend():
    fig = viz.plot_scaling(_bench(peak=True))
    time_ax, memory_ax = fig.axes
    assert time_ax.get_xscale() == time_ax.get_yscale() == "log"
    # The slopes were fitted over the large N only: the legend says which.
    assert [line.get_label() for line in time_ax.lines] == [
        "external (slope 1.00 over N in [16, 256])", "self (slope 2.00 over N in [16, 256])"]
    assert list(memory_ax.lines[1].get_ydata()) == [256.0, 4096.0, 65536.0]


def test_scaling_without_memory_has_only_the_time_panel():
    assert len(viz.plot_scaling(_bench(peak=False)).axes) == 1
    with pytest.raises(ValueError, match="bench.attention.run"):
        viz.plot_scaling({"slopes": {}})
    with pytest.raises(ValueError, match="bench.attention.run"):
        viz.plot_scaling({"rows": [], "slopes": {}})


# ---- colour scales and titles a reader can read --------------------------------------------

def _white_at(image, value: float) -> bool:
    """Whether ``image`` draws ``value`` in its diverging colour map's middle (near white)."""
    return np.allclose(image.cmap(image.norm(value))[:3], image.cmap(0.5)[:3], atol=0.02)


def test_signed_and_centred_values_get_a_diverging_scale_white_at_their_centre():
    logits = RNG.normal(size=(9, 4)) + 0.7  # mostly positive: the centre is not the middle
    raw = _images(viz.plot_normalizations(logits))[0]
    assert raw.get_cmap().name == viz.DIVERGING and _white_at(raw, 0.0)
    assert raw.norm.vmin == pytest.approx(-raw.norm.vmax)  # as far down as up
    similarity = _images(viz.plot_position_similarity(RNG.normal(size=(9, 5)), 3))[0]
    assert similarity.get_cmap().name == viz.DIVERGING and _white_at(similarity, 0.0)
    assert (similarity.norm.vmin, similarity.norm.vmax) == (-1.0, 1.0)
    ratios = _images(viz.plot_attention_matrix(RNG.uniform(0.5, 3.0, size=(4, 6)), center=1.0))[0]
    assert ratios.get_cmap().name == viz.DIVERGING and _white_at(ratios, 1.0)
    weights = _images(viz.plot_attention_matrix(RNG.random((4, 6))))[0]
    assert weights.get_cmap().name == viz.HEATMAP  # attention weights: sequential, as before
    with pytest.raises(ValueError, match="center must be a finite number"):
        viz.plot_attention_matrix(RNG.random((4, 6)), center=float("nan"))


@pytest.mark.parametrize("draw", [
    lambda: viz.plot_memory_units(GREY, RNG.random((16, 16)), 2),
    lambda: viz.show_images(RNG.random((16, 8, 8)), np.arange(16) % 3, ncols=8),
    lambda: viz.plot_normalizations(RNG.normal(size=(9, 4))),
], ids=["memory_units", "show_images", "normalizations"])
def test_panel_titles_read_at_ten_points_once_the_figure_fits_the_page(draw):
    fig = draw()
    shrink = min(1.0, viz.GRID_WIDTH / fig.get_figwidth())  # shown at most GRID_WIDTH wide
    sizes = [ax.title.get_fontsize() * shrink for ax in fig.axes if ax.get_title()]
    assert sizes and min(sizes) >= viz.TITLE_SIZE - 1e-9, sizes
