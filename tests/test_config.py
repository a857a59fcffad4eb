"""Profiles and the refusal of configs that cannot build a model."""

import dataclasses
import json

import numpy as np
import pytest

from eanet_course.config import DATASETS, PROFILES, EANetConfig, get_profile


def test_profiles_are_valid_and_named(monkeypatch):
    monkeypatch.delenv("EANET_PROFILE", raising=False)
    monkeypatch.delenv("EANET_DATASET", raising=False)
    assert set(PROFILES) == {"ci", "laptop", "paper"}
    assert get_profile() == PROFILES["laptop"]
    assert get_profile("ci").dataset == "digits"
    assert get_profile("paper").num_patches == 256


def test_environment_picks_profile_and_dataset(monkeypatch):
    monkeypatch.setenv("EANET_PROFILE", "paper")
    monkeypatch.setenv("EANET_DATASET", "digits")
    config = get_profile()
    assert (config.dataset, config.input_shape, config.num_classes) == ("digits", (8, 8, 1), 10)
    assert config.num_blocks == PROFILES["paper"].num_blocks
    assert (config.patch_size, config.num_patches) == (2, 16)
    monkeypatch.setenv("EANET_PROFILE", "laptop")
    assert get_profile().num_patches == 16, "the laptop profile's 4x4 patches become 2x2 on digits"


def test_unknown_profile_names_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"Unknown profile 'fast'; choose one of "
                                         r"\['ci', 'laptop', 'paper'\] \(set EANET_PROFILE"):
        get_profile("fast")
    monkeypatch.setenv("EANET_PROFILE", "gpu")
    with pytest.raises(ValueError, match="EANET_PROFILE"):
        get_profile()


def test_unknown_dataset_is_refused(monkeypatch):
    monkeypatch.setenv("EANET_DATASET", "mnist")
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        get_profile("ci")


@pytest.mark.parametrize("changes,fix", [
    ({"patch_size": 3}, r"image_size=32 is not divisible by patch_size=3; pick a patch_size "
                        r"that divides it \(e\.g\. \[1, 2, 4, 8, 16, 32\]\)"),
    ({"embed_dim": 30}, r"embed_dim=30 is not divisible by num_heads=4; pick num_heads among "
                        r"\[1, 2, 3, 5, 6, 10, 15, 30\]"),
    ({"memory_units": 0}, r"memory_units=0 must be an integer >= 1 \(or None for the default\)"),
    ({"memory_units": -4}, "memory_units=-4 must be an integer >= 1"),
    ({"memory_units": 2.5}, "memory_units=2.5 must be an integer >= 1"),
    ({"embed_dim": 2, "num_heads": 1}, "lower dim_coefficient or set memory_units"),
    ({"attention_dropout": 1.5}, r"attention_dropout=1.5 must be a number in \[0, 1\)"),
    ({"num_blocks": 0}, "num_blocks=0 must be a positive integer"),
    ({"validation_split": 0.0}, "validation_split"),
])
def test_configs_that_cannot_build_a_model_are_refused(changes, fix):
    with pytest.raises(ValueError, match=fix):
        get_profile("laptop").replace(**changes)


def test_a_bool_memory_units_is_refused_by_the_config():
    with pytest.raises(ValueError, match="memory_units=True"):
        get_profile("ci").replace(memory_units=True)


@pytest.mark.parametrize("name", ["attention_dropout", "learning_rate", "weight_decay",
                                  "validation_split"])
def test_a_non_number_is_a_value_error_naming_the_field(name):
    with pytest.raises(ValueError, match=f"{name}='0.1' must be a number"):
        get_profile("ci").replace(**{name: "0.1"})


def test_replace_dataset_sets_its_shape():
    config = EANetConfig().replace(dataset="digits", patch_size=2)
    assert (config.image_size, config.channels, config.num_classes) == DATASETS["digits"]
    assert config.num_patches == 16


@pytest.mark.parametrize("changes,fix", [
    ({"learning_rate": float("nan")}, r"learning_rate=nan must be a number > 0, and finite"),
    ({"learning_rate": float("inf")}, r"learning_rate=inf must be a number > 0, and finite"),
    ({"weight_decay": float("nan")}, r"weight_decay=nan must be a number >= 0, and finite"),
    ({"weight_decay": float("-inf")}, r"weight_decay=-inf must be a number >= 0"),
    ({"seed": 1.5}, r"seed=1.5 must be an integer >= 0"),
    ({"seed": "42"}, r"seed='42' must be an integer >= 0"),
    ({"seed": -1}, r"seed=-1 must be an integer >= 0"),
    ({"seed": True}, r"seed=True must be an integer >= 0"),
])
def test_non_finite_rates_and_non_integer_seeds_are_refused(changes, fix):
    with pytest.raises(ValueError, match=fix):
        get_profile("ci").replace(**changes)


def test_numpy_numbers_are_accepted_and_stored_as_python_numbers():
    config = get_profile("ci").replace(embed_dim=np.int64(32), seed=np.uint8(7),
                                       memory_units=np.int32(5), learning_rate=np.float32(0.5))
    assert config == get_profile("ci").replace(embed_dim=32, seed=7, memory_units=5,
                                               learning_rate=0.5)
    assert type(config.embed_dim) is int and type(config.seed) is int
    assert type(config.memory_units) is int and type(config.learning_rate) is float
    json.dumps(dataclasses.asdict(config))  # a run folder writes it as JSON
    with pytest.raises(ValueError, match="num_heads=np.True_ must be a positive integer"):
        get_profile("ci").replace(num_heads=np.bool_(True))


def test_divisor_hints_stay_short_for_huge_sizes():
    """Listing every divisor of 10**15 one by one would not finish (this test would hang); the
    hint searches up to 4096 and shows the smallest and the largest."""
    with pytest.raises(ValueError, match=r"pick num_heads among \[1, 2, 4, 5, 8, 10, \.\.\., "
                                         r"100000000000000, 125000000000000, 200000000000000, "
                                         r"250000000000000, 500000000000000, 1000000000000000\]"):
        get_profile("ci").replace(embed_dim=10**15, num_heads=3)
