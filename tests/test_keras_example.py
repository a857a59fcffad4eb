"""The course's EANet computes exactly what the Keras example's own graph computes."""

import numpy as np

from eanet_course.bench.keras_example import build_keras_example
from eanet_course.config import get_profile
from eanet_course.data import keras_example_augmentation
from eanet_course.models import build_eanet


def test_the_example_graph_has_the_published_parameter_count():
    assert build_keras_example(get_profile("paper")).count_params() == 361_380


def test_build_eanet_equals_the_example_on_the_same_weights():
    # The paper profile's shapes (16 heads, S = 16 per head) with 2 blocks to stay fast.
    config = get_profile("paper").replace(num_blocks=2)
    example, course = build_keras_example(config), build_eanet(config)
    weights = example.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in course.get_weights()]
    rng = np.random.default_rng(0)
    course.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in weights])
    example.set_weights(course.get_weights())
    x = rng.normal(size=(4, *config.input_shape)).astype("float32")
    expected = example.predict(x, verbose=0)
    np.testing.assert_allclose(course.predict(x, verbose=0), expected, atol=1e-5)
    # Not trivially equal: the predictions differ from image to image.
    assert np.abs(expected - expected[:1]).max() > 1e-4


def test_the_example_puts_its_augmentation_inside_the_model():
    config = get_profile("ci")
    x = np.random.default_rng(0).integers(0, 256, (8, *config.input_shape), dtype=np.uint8)
    model = build_keras_example(config, keras_example_augmentation(x, config.dataset))
    assert model.layers[1].name == "data_augmentation"
    assert build_keras_example(config).count_params() == build_eanet(config).count_params()
