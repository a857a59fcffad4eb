"""No combination of profile and data set is degenerate: every one cuts its images into at least
16 patches (a 4 x 4 grid), and so does every figure the notebooks derive from the config.

The notebooks draw patch grids, attention maps and Jacobians from ``config.num_patches`` and
``config.image_size // config.patch_size`` (the grid's side); notebook 04 follows the centre patch
of that grid and about 8 output patches ``range(0, N, max(1, N // 8))``; notebook 09 compares
``config`` with two CIFAR-100 variants; ``train --dataset`` and ``bench epoch`` swap the data set
with ``config.replace(dataset=...)``.
"""

import itertools

import pytest

from eanet_course.config import DATASETS, MIN_PATCHES, PROFILES, get_profile, patch_size_for

COMBINATIONS = list(itertools.product(sorted(PROFILES), sorted(DATASETS)))


def test_every_profile_and_data_set_is_covered():
    assert MIN_PATCHES == 16
    assert len(COMBINATIONS) == 6 and {"digits", "cifar100"} <= set(DATASETS)


@pytest.mark.parametrize("profile,dataset", COMBINATIONS, ids=lambda v: str(v))
def test_at_least_16_patches_on_every_combination(monkeypatch, profile, dataset):
    monkeypatch.setenv("EANET_PROFILE", profile)
    monkeypatch.setenv("EANET_DATASET", dataset)
    config = get_profile()
    side = config.image_size // config.patch_size
    assert config.dataset == dataset and config.image_size % config.patch_size == 0
    assert config.num_patches == side**2 >= MIN_PATCHES, (profile, dataset, config.patch_size)
    # Notebook 04: the followed centre patch has a neighbour on every side, and ~8 output rows.
    centre_row, centre_col = divmod((side // 2) * side + side // 2, side)
    assert 0 < centre_row < side - 1 and 0 < centre_col < side - 1
    assert len(range(0, config.num_patches, max(1, config.num_patches // 8))) >= 8
    # Notebook 09's variants and the CLI's --dataset go through the same replace.
    for variant in (config.replace(dataset="cifar100", patch_size=2), config.replace(dataset=dataset)):
        assert variant.num_patches >= MIN_PATCHES
    if PROFILES[profile].dataset == dataset:
        assert config == PROFILES[profile], "a profile on its own data set is left as shipped"


def test_the_cifar100_profiles_keep_their_patch_sizes():
    assert PROFILES["paper"].patch_size == 2 and PROFILES["laptop"].patch_size == 4
    assert PROFILES["ci"].replace(dataset="cifar100").patch_size == PROFILES["ci"].patch_size


def test_the_laptop_profile_cuts_the_digits_into_2x2_patches():
    config = PROFILES["laptop"].replace(dataset="digits")
    assert (config.patch_size, config.num_patches) == (2, 16)
    assert PROFILES["laptop"].replace(dataset="digits", patch_size=4).num_patches == 4, \
        "a patch size given explicitly is kept"


@pytest.mark.parametrize("image_size,patch_size,expected", [
    (8, 4, 2), (8, 2, 2), (8, 8, 2), (8, 1, 1), (32, 4, 4), (32, 16, 8), (32, 3, 2), (2, 1, 1),
])
def test_patch_size_for_keeps_a_size_that_fits_else_the_largest_smaller_one(image_size, patch_size,
                                                                           expected):
    assert patch_size_for(image_size, patch_size) == expected
