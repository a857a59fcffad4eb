"""Profiles and the refusal of configs that cannot build a model."""

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
