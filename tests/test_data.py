"""The loaders and the tf.data pipelines: real layouts, hostile files, seeds, the contrast trap."""

from __future__ import annotations

import os
import pickle
import urllib.error

import numpy as np
import pytest
from _cifar_fixtures import write_cifar

from eanet_course import data
from eanet_course.config import get_profile


# --- CIFAR-100 from local files ----------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("as_tar", [True, False], ids=["tar.gz", "folder"])
@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
def test_cifar_reads_real_layout(tmp_path, as_tar, label_mode, protocol):
    path, splits = write_cifar(tmp_path, as_tar=as_tar, protocol=protocol)
    (x_train, y_train), (x_test, y_test) = data.load_cifar100(path, label_mode=label_mode)
    column = 1 if label_mode == "fine" else 2
    for x, y, name in ((x_train, y_train, "train"), (x_test, y_test, "test")):
        assert x.dtype == np.uint8 and x.shape == (len(splits[name][0]), 32, 32, 3)
        np.testing.assert_array_equal(x, splits[name][0])
        np.testing.assert_array_equal(y, splits[name][column])
        assert y.shape == (len(x),) and np.issubdtype(y.dtype, np.integer)


def test_cifar_pixel_order_is_channel_planes_to_hwc(tmp_path):
    """data[i] holds the red plane, then green, then blue, each row-major: check by index."""
    path, _ = write_cifar(tmp_path)
    (x_train, _), _ = data.load_cifar100(path)
    raw = pickle.loads(_member(path, "train"), encoding="bytes")[b"data"]
    row, col = 3, 17
    for channel in range(3):
        assert x_train[2, row, col, channel] == raw[2, channel * 1024 + row * 32 + col]


def _member(archive, name):
    import tarfile

    with tarfile.open(archive) as tar:
        return tar.extractfile(f"cifar-100-python/{name}").read()


def test_cifar_refuses_tampered_pickle_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            import os

            return os.system, (f"touch {marker}",)

    evil = pickle.dumps({b"data": Exploit(), b"fine_labels": [0]}, protocol=2)
    path, _ = write_cifar(tmp_path, members={"train": evil})
    with pytest.raises(ValueError, match=r"Refusing to load .*system.*tampered"):
        data.load_cifar100(path)
    assert not marker.exists()


def test_cifar_truncated_archive_is_a_clear_error(tmp_path):
    path, _ = write_cifar(tmp_path, n_train=40)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated, corrupt"):
        data.load_cifar100(path)


def test_cifar_missing_path_and_bad_label_mode(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-100-python.tar.gz"):
        data.load_cifar100(tmp_path / "nowhere.tar.gz")
    with pytest.raises(ValueError, match="label_mode"):
        data.load_cifar100(tmp_path, label_mode="medium")


# --- CIFAR-100 download cache ------------------------------------------------------------------

@pytest.fixture
def fake_network(monkeypatch, tmp_path):
    """Point EANET_HOME at an empty folder and replace Keras's downloader; returns its log."""
    from keras.src.utils import file_utils

    monkeypatch.setenv("EANET_HOME", str(tmp_path / "home"))
    calls = []

    def install(behaviour):
        def urlretrieve(url, target, progress=None):
            calls.append(url)
            behaviour(target)

        monkeypatch.setattr(file_utils, "urlretrieve", urlretrieve)
        return calls

    return install


def test_cifar_offline_says_how_to_go_on_and_leaves_nothing(fake_network):
    def offline(target):
        with open(target, "wb") as f:  # a partial download, then the network fails
            f.write(b"\x1f\x8b partial")
        raise urllib.error.URLError("Temporary failure in name resolution")

    calls = fake_network(offline)
    cached = data.cifar100_cache_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"an old truncated copy")  # fails the hash check, so it is fetched again
    with pytest.raises(ConnectionError) as error:
        data.load_cifar100()
    assert calls == [data.CIFAR100_URL]
    assert "path=" in str(error.value) and "EANET_DATASET=digits" in str(error.value)
    # The message says why the cached copy is gone: its checksum.
    assert f"the cached {cached} had the SHA-256 " in str(error.value)
    assert f"not CIFAR-100's {data.CIFAR100_SHA256[:12]}..., and was removed" in str(error.value)
    assert list(cached.parent.iterdir()) == []


@pytest.mark.parametrize("make", [os.mkfifo, lambda path: path.symlink_to("/dev/zero")],
                         ids=["a named pipe", "a link to /dev/zero"])
def test_a_cached_archive_that_is_no_file_is_refused_unread(fake_network, make):
    calls = fake_network(lambda target: pytest.fail("downloaded"))
    cached = data.cifar100_cache_path()
    cached.parent.mkdir(parents=True, exist_ok=True)
    make(cached)
    with pytest.raises(ValueError, match=f"{cached} is not a regular file.*delete {cached}"):
        data.load_cifar100()
    assert calls == [] and os.path.lexists(cached)


def test_cifar_corrupt_download_is_removed(fake_network):
    fake_network(lambda target: open(target, "wb").write(b"not the archive"))
    with pytest.raises(ValueError, match="corrupt and was removed"):
        data.load_cifar100()
    assert list(data.cifar100_cache_path().parent.iterdir()) == []


def test_cifar_download_is_moved_into_the_cache_only_when_whole(fake_network, tmp_path,
                                                                  monkeypatch):
    archive, splits = write_cifar(tmp_path)
    monkeypatch.setattr(data, "CIFAR100_SHA256", data._sha256(archive, fix=""))
    cached = data.cifar100_cache_path()

    def download(target):
        assert not cached.exists()  # the archive is written elsewhere while it downloads
        with open(target, "wb") as f:
            f.write(archive.read_bytes())

    calls = fake_network(download)
    (x_train, _), _ = data.load_cifar100()
    np.testing.assert_array_equal(x_train, splits["train"][0])
    assert sorted(p.name for p in cached.parent.iterdir()) == [cached.name]
    data.load_cifar100()  # the second time from the cache, with no download
    assert calls == [data.CIFAR100_URL]


# --- digits ------------------------------------------------------------------------------------

def test_digits_is_a_fixed_stratified_split():
    (x_train, y_train), (x_test, y_test) = data.load_digits()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.uint8 and x_train.max() == 255 and x_train.min() == 0
    assert np.bincount(y_test, minlength=10).min() >= 35  # every digit is in the test set
    (x_again, _), _ = data.load_digits()
    np.testing.assert_array_equal(x_train, x_again)


def test_load_dataset_names():
    assert data.load_dataset("digits")[0][0].shape[1:] == (8, 8, 1)
    with pytest.raises(ValueError, match="choose one of"):
        data.load_dataset("mnist")
    assert len(data.CIFAR100_CLASSES) == len(set(data.CIFAR100_CLASSES)) == 100


# --- pipelines ---------------------------------------------------------------------------------

CONFIG = get_profile("ci").replace(batch_size=128)


def _first_batches(ds, k=2):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(k)]


def test_pipeline_is_deterministic_under_a_seed():
    a, b = (_first_batches(data.make_datasets(CONFIG).train) for _ in range(2))
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    (xc, _), _ = _first_batches(data.make_datasets(CONFIG.replace(seed=7)).train)
    assert not np.array_equal(a[0][0], xc)


def test_pipeline_shapes_split_and_statistics():
    (x_train, _), (x_test, _) = data.load_digits()
    ds = data.make_datasets(CONFIG)
    counts = {name: sum(len(y) for _, y in getattr(ds, name))
              for name in ("train", "validation", "test")}
    assert counts == {"train": 1150, "validation": 287, "test": 360}
    images, labels = next(iter(ds.test))
    assert images.dtype == "float32" and images.shape == (128, 8, 8, 1)
    assert labels.shape == (128, 10) and np.all(labels.numpy().sum(axis=1) == 1)
    # The statistics come from the 80% training split, not from all training images.
    order = np.random.default_rng(CONFIG.seed).permutation(len(x_train))
    fit = x_train[order[:1150]].astype(np.float64)
    np.testing.assert_allclose(ds.mean, [fit.mean()], rtol=1e-5)
    np.testing.assert_allclose(ds.std, [fit.std()], rtol=1e-5)
    np.testing.assert_allclose(images.numpy(), ds.normalize(x_test[:128]), atol=1e-5)
    assert ds.class_names == data.DIGITS_CLASSES


def test_pipeline_refuses_mismatched_arrays():
    with pytest.raises(ValueError, match="config.replace"):
        cifar_shaped = (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, int))
        data.make_datasets(CONFIG, arrays=(cifar_shaped, cifar_shaped))


def assert_same_distribution(train_inputs: np.ndarray, test_inputs: np.ndarray) -> None:
    """Training and inference inputs must look alike to the model."""
    assert abs(train_inputs.mean() - test_inputs.mean()) < 0.2
    assert 0.75 < train_inputs.std() / test_inputs.std() < 1.33
    assert abs(np.mean(train_inputs == 0) - np.mean(test_inputs == 0)) < 0.02


def _course_inputs():
    ds = data.make_datasets(CONFIG)
    return next(iter(ds.train))[0].numpy(), next(iter(ds.test))[0].numpy()


def _keras_example_inputs():
    (x_train, _), (x_test, _) = data.load_digits()
    augment = data.keras_example_augmentation(x_train.astype(np.float32), "digits")
    train = augment(x_train[:128].astype(np.float32), training=True)
    test = augment(x_test[:128].astype(np.float32), training=False)
    return np.asarray(train), np.asarray(test)


def test_training_and_test_inputs_share_a_distribution():
    assert_same_distribution(*_course_inputs())


def test_the_keras_example_order_fails_that_check():
    """Normalize-then-RandomContrast clips every negative value to 0 in training only."""
    train, test = _keras_example_inputs()
    assert np.mean(train == 0) > 0.25 and np.mean(test == 0) < 0.01
    with pytest.raises(AssertionError):
        assert_same_distribution(train, test)


def _digits_with(**changes):
    """The digits arrays with some replaced: x_train, y_train, x_test or y_test."""
    (x_train, y_train), (x_test, y_test) = data.load_digits()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
              **changes}
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def _with_nan(images):
    images = images.astype(np.float32)
    images[3, 2, 1, 0] = np.nan
    return images


@pytest.mark.parametrize("changes,fix", [
    ({"x_train": _with_nan(data.load_digits()[0][0])},
     r"x_train has 1 NaN or infinite pixels; pass raw pixels in \[0, 255\]"),
    ({"y_test": np.full(360, 10)},
     r"y_test runs from 10 to 10, but num_classes=10 means classes 0 \.\. 9"),
    ({"y_train": -np.ones(1437, np.int64)}, r"y_train runs from -1 to -1"),
    ({"y_train": np.zeros(1437, np.float32)}, r"y_train must hold one integer class per image"),
    ({"y_train": np.zeros((1437, 10), np.int64)}, r"labels.argmax\(-1\)"),
    ({"y_test": np.zeros(12, np.int64)}, r"shape \(360,\), got int64 of shape \(12,\)"),
    ({"x_test": np.zeros((0, 8, 8, 1), np.uint8), "y_test": np.zeros(0, np.int64)},
     r"x_test holds no images"),
    ({"x_train": np.zeros((1, 8, 8, 1), np.uint8), "y_train": np.zeros(1, np.int64)},
     r"x_train has 1 images: validation_split=0.2 leaves 0 for validation"),
])
def test_pipeline_refuses_bad_arrays_where_they_enter(changes, fix):
    with pytest.raises(ValueError, match=fix):
        data.make_datasets(CONFIG, arrays=_digits_with(**changes))


def test_pipeline_takes_keras_style_labels_of_shape_n_by_1():
    (x_train, y_train), (x_test, y_test) = data.load_digits()
    column = data.make_datasets(CONFIG, arrays=((x_train, y_train[:, None]),
                                                (x_test, y_test[:, None])))
    flat = data.make_datasets(CONFIG)
    for ours, theirs in zip(_first_batches(column.test, 1), _first_batches(flat.test, 1)):
        np.testing.assert_array_equal(ours[1], theirs[1])


def test_cifar_images_come_back_writable(tmp_path):
    path, _ = write_cifar(tmp_path)
    (x_train, _), _ = data.load_cifar100(path)
    x_train[0, 0, 0] = 7
    assert (x_train[0, 0, 0] == 7).all()
