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
    with pytest.raises(ValueError, match=r"choose one of \['ci', 'laptop', 'paper'\]"):
        get_profile("fast")
    monkeypatch.setenv("EANET_PROFILE", "gpu")
    with pytest.raises(ValueError, match="EANET_PROFILE"):
        get_profile()


def test_unknown_dataset_is_refused(monkeypatch):
    monkeypatch.setenv("EANET_DATASET", "mnist")
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'"):
        get_profile("ci")


@pytest.mark.parametrize("changes,fix", [
    ({"patch_size": 3}, "image_size=32 is not divisible by patch_size=3"),
    ({"embed_dim": 30}, "embed_dim=30 is not divisible by num_heads=4"),
    ({"memory_units": 0}, "memory_units=0 must be >= 1"),
    ({"attention_dropout": 1.5}, r"attention_dropout=1.5 must be in \[0, 1\)"),
    ({"num_blocks": 0}, "num_blocks=0 must be a positive integer"),
    ({"validation_split": 0.0}, "validation_split"),
])
def test_configs_that_cannot_build_a_model_are_refused(changes, fix):
    with pytest.raises(ValueError, match=fix):
        get_profile("laptop").replace(**changes)


def test_replace_dataset_sets_its_shape():
    config = EANetConfig().replace(dataset="digits", patch_size=2)
    assert (config.image_size, config.channels, config.num_classes) == DATASETS["digits"]
    assert config.num_patches == 16
