"""One test harness for every layer, in the style of keras-hub's ``run_layer_test``.

:func:`run_layer_test` checks what a layer owes Keras, for a given set of constructor arguments:

1. **every constructor argument is set, each to a distinct value**, none to its default (unless
   named in ``same_as_default``), so that a swap of two arguments or a lost one shows;
2. ``get_config()`` holds each argument with its value, ``from_config`` gives back the same
   config, and every sublayer that takes an argument of the same name got the same value;
3. outputs are equal after ``from_config`` with the weights copied;
4. ``mixed_float16`` and ``mixed_bfloat16`` work, per layer (``dtype=``) and as the global
   policy: float32 variables, outputs in the compute dtype, every sublayer on the layer's
   policy, finite outputs close to float32's;
5. a model holding the layer saves to ``.keras`` and loads back with ``safe_mode=True``, with
   equal outputs.

The last tests run it on layers broken on purpose (two dropout rates swapped, ``memory_units``
dropped from ``get_config``): the harness must fail on each.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest

from eanet_course import layers as layers_module
from eanet_course.layers import (
    ExternalAttention,
    LayerNormalization,
    PatchEmbedding,
    PatchExtract,
    SelfAttention,
    TransformerBlock,
)

#: Keys every Keras layer's config has; not constructor arguments of ours.
BASE_KEYS = {"name", "trainable", "dtype"}
#: How far a mixed-precision output may be from float32's, relative to its largest value:
#: bfloat16 keeps 8 bits of mantissa (0.4%), and a block adds several roundings.
MIXED_TOLERANCE = 0.05


def _arguments(cls) -> dict[str, inspect.Parameter]:
    return {name: p for name, p in inspect.signature(cls.__init__).parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _check_arguments(cls, init_kwargs: dict, same_as_default: tuple[str, ...]) -> None:
    arguments = _arguments(cls)
    missing = sorted(set(arguments) - set(init_kwargs))
    assert not missing, f"{cls.__name__}: set every constructor argument; missing {missing}"
    defaults = [name for name, p in arguments.items()
                if name not in same_as_default and init_kwargs[name] == p.default]
    assert not defaults, f"{cls.__name__}: {defaults} are set to their defaults"
    values = list(init_kwargs.items())
    clashes = [(a, b) for i, (a, x) in enumerate(values) for b, y in values[i + 1:] if x == y]
    assert not clashes, f"{cls.__name__}: arguments with equal values hide swaps: {clashes}"


def _check_config(layer, init_kwargs: dict) -> dict:
    cls = type(layer)
    config = layer.get_config()
    for name, value in init_kwargs.items():
        assert name in config, f"{cls.__name__}.get_config() lacks {name!r}"
        assert config[name] == value, (
            f"{cls.__name__}.get_config()[{name!r}] is {config[name]!r}, but {value!r} was passed")
    assert cls.from_config(config).get_config() == config, f"{cls.__name__}: from_config"
    for sublayer in layer._flatten_layers(include_self=False):
        shared = set(sublayer.get_config()) & set(init_kwargs) - BASE_KEYS
        for name in shared:
            got = sublayer.get_config()[name]
            assert got == init_kwargs[name], (
                f"{cls.__name__}: sublayer {sublayer.name!r} got {name}={got!r}, but "
                f"{init_kwargs[name]!r} was passed")
    return config


def _output(layer, x) -> np.ndarray:
    return np.asarray(keras.ops.cast(layer(x, training=False), "float32"))


def _check_policy(make, x, weights, expected: np.ndarray, policy: str, where: str) -> None:
    layer = make()
    assert layer.dtype_policy.name == policy, where
    layer.build(x.shape)
    layer.set_weights(weights)
    out = layer(x, training=False)
    compute = keras.mixed_precision.DTypePolicy(policy).compute_dtype
    assert keras.backend.standardize_dtype(out.dtype) == compute, f"{where}: {out.dtype}"
    assert all(v.dtype == "float32" for v in layer.weights), f"{where}: variables"
    off_policy = [s.name for s in layer._flatten_layers(include_self=False)
                  if s.dtype_policy.name != policy]
    assert not off_policy, f"{where}: sublayers {off_policy} are not on {policy}"
    got = np.asarray(keras.ops.cast(out, "float32"))
    assert np.isfinite(got).all(), f"{where}: non-finite outputs"
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, atol=MIXED_TOLERANCE * scale, err_msg=where)


def run_layer_test(cls, init_kwargs: dict, input_data: np.ndarray,
                   expected_output_shape: tuple, same_as_default: tuple[str, ...] = ()) -> None:
    """Run the checks of this module's docstring on ``cls(**init_kwargs)`` fed ``input_data``.

    ``same_as_default`` names arguments that may keep their default value (one case cannot
    give every argument a non-default value when another case covers it).
    """
    _check_arguments(cls, init_kwargs, same_as_default)
    layer = cls(**init_kwargs)
    expected = _output(layer, input_data)
    assert expected.shape == expected_output_shape, (expected.shape, expected_output_shape)
    config = _check_config(layer, init_kwargs)

    clone = cls.from_config(config)
    clone.build(input_data.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(_output(clone, input_data), expected, err_msg="from_config")

    for policy in ("mixed_float16", "mixed_bfloat16"):
        _check_policy(lambda: cls(**init_kwargs, dtype=policy), input_data, layer.get_weights(),
                      expected, policy, f"{cls.__name__}(dtype={policy!r})")
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            _check_policy(lambda: cls(**init_kwargs), input_data, layer.get_weights(),
                          expected, policy, f"{cls.__name__} under the global {policy}")
        finally:
            keras.mixed_precision.set_global_policy(previous)

    inputs = keras.Input(input_data.shape[1:])
    model = keras.Model(inputs, layer(inputs))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layer.keras"
        model.save(path)
        loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(input_data)), expected, atol=1e-6,
                               err_msg=".keras")


# --- every layer -----------------------------------------------------------------------------

RNG = np.random.default_rng(0)
IMAGES = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
FEATURES = RNG.normal(size=(2, 12, 16)).astype("float32")

EXTERNAL = dict(embed_dim=16, num_heads=2, dim_coefficient=8, memory_units=5,
                attention_dropout=0.1, projection_dropout=0.2)
BLOCK = dict(embed_dim=16, mlp_dim=24, num_heads=2, dim_coefficient=8, memory_units=5,
             key_dim=3, attention_dropout=0.1, projection_dropout=0.2, mlp_dropout=0.3)

CASES = {
    "PatchExtract": (PatchExtract, dict(patch_size=2), IMAGES, (2, 16, 12), ()),
    "PatchEmbedding": (PatchEmbedding, dict(num_patches=12, embed_dim=8),
                       FEATURES, (2, 12, 8), ()),
    "LayerNormalization": (LayerNormalization, dict(epsilon=1e-4), FEATURES, (2, 12, 16), ()),
    "ExternalAttention double": (ExternalAttention, {**EXTERNAL, "normalization": "double"},
                                 FEATURES, (2, 12, 16), ("normalization",)),
    "ExternalAttention softmax": (ExternalAttention, {**EXTERNAL, "normalization": "softmax"},
                                  FEATURES, (2, 12, 16), ()),
    "SelfAttention": (SelfAttention, dict(embed_dim=16, num_heads=2, key_dim=6,
                                          attention_dropout=0.1, projection_dropout=0.2),
                      FEATURES, (2, 12, 16), ()),
    "TransformerBlock external": (
        TransformerBlock, {**BLOCK, "attention": "external", "normalization": "double"},
        FEATURES, (2, 12, 16), ("attention", "normalization")),
    "TransformerBlock external softmax": (
        TransformerBlock, {**BLOCK, "attention": "external", "normalization": "softmax"},
        FEATURES, (2, 12, 16), ("attention",)),
    "TransformerBlock self": (
        TransformerBlock, {**BLOCK, "attention": "self", "normalization": "softmax"},
        FEATURES, (2, 12, 16), ()),
}


def test_every_public_layer_has_a_case():
    public = {getattr(layers_module, name) for name in layers_module.__all__
              if inspect.isclass(getattr(layers_module, name))}
    assert public == {case[0] for case in CASES.values()}


@pytest.mark.parametrize("case", list(CASES))
def test_layer(case):
    cls, init_kwargs, x, shape, same_as_default = CASES[case]
    run_layer_test(cls, init_kwargs, x, shape, same_as_default)


# --- the harness catches broken layers -------------------------------------------------------

class SwapsDropoutsInConfig(ExternalAttention):
    def get_config(self):
        config = super().get_config()
        config["attention_dropout"], config["projection_dropout"] = (
            config["projection_dropout"], config["attention_dropout"])
        return config


class ForgetsMemoryUnits(ExternalAttention):
    def get_config(self):
        config = super().get_config()
        del config["memory_units"]
        return config


class SwapsDropoutsInside(ExternalAttention):
    """Stores its arguments right but builds its dropouts the other way round (as a block that
    passes them positionally in the wrong order would)."""

    def __init__(self, embed_dim, num_heads=4, dim_coefficient=4, memory_units=None,
                 attention_dropout=0.0, projection_dropout=0.0, *args, **kwargs):
        super().__init__(embed_dim, num_heads, dim_coefficient, memory_units,
                         projection_dropout, attention_dropout, *args, **kwargs)


@pytest.mark.parametrize("broken,message", [
    (SwapsDropoutsInConfig, r"get_config\(\)\['attention_dropout'\] is 0.2, but 0.1 was passed"),
    (ForgetsMemoryUnits, r"get_config\(\) lacks 'memory_units'"),
])
def test_the_harness_catches_a_broken_config(broken, message):
    with pytest.raises(AssertionError, match=message):
        run_layer_test(broken, {**EXTERNAL, "normalization": "softmax"}, FEATURES, (2, 12, 16))


def test_the_harness_catches_dropouts_swapped_on_the_way_to_a_sublayer(monkeypatch):
    monkeypatch.setattr(layers_module, "ExternalAttention", SwapsDropoutsInside)
    with pytest.raises(AssertionError, match=r"sublayer 'attention' got "
                                             r"(attention_dropout=0.2|projection_dropout=0.1)"):
        run_layer_test(*CASES["TransformerBlock external softmax"][:4], ("attention",))


def test_the_harness_catches_a_lost_or_repeated_argument():
    with pytest.raises(AssertionError, match=r"missing \['memory_units'\]"):
        run_layer_test(ExternalAttention, {**{k: v for k, v in EXTERNAL.items()
                                              if k != "memory_units"}, "normalization": "softmax"},
                       FEATURES, (2, 12, 16))
    with pytest.raises(AssertionError, match=r"equal values hide swaps: "
                                             r"\[\('attention_dropout', 'projection_dropout'\)\]"):
        run_layer_test(ExternalAttention, {**EXTERNAL, "projection_dropout": 0.1,
                                           "normalization": "softmax"}, FEATURES, (2, 12, 16))
