"""Hostile and huge files are refused cheaply: before they are read, with a ValueError naming the fix.

Each case is a file that CIFAR-100 (or a CSVLogger file, or a ``.keras`` model) cannot be: a
gzip bomb, a sparse or linked member, a device, a pipe, a pickle whose opcodes would allocate
gigabytes or crash NumPy, labels out of range. Run as a script, this file prints the table of
docs/design-notes.md: what each case did with the code of another checkout and with this one
(``python tests/test_hostile_files.py OLD_CHECKOUT``).
"""

from __future__ import annotations

import _codecs
import os
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _cifar_fixtures import (  # noqa: E402
    Reduce,
    batch_with,
    reduce_pickle,
    write_bomb_long_name,
    write_bomb_member,
    write_cifar,
    write_link_member,
    write_sparse_member,
)

GIB = 1 << 30
#: What a refusal may allocate (traced by ``tracemalloc``): a bomb's gigabyte must never be read.
PEAK_LIMIT = 16 << 20


def _numpy_reconstruct():
    from numpy._core.multiarray import _reconstruct

    return _reconstruct


def _folder_with(root: Path, make) -> Path:
    """A CIFAR-100 folder whose ``train`` is made by ``make(path)``."""
    folder, _ = write_cifar(root, as_tar=False)
    (folder / "train").unlink()
    make(folder / "train")
    return folder


def _sparse_file(path: Path, size: int = GIB) -> Path:
    """A file of ``size`` zero bytes that takes no disk space (a hole)."""
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def _text_file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def _in_archive(raw: bytes):
    return lambda root: write_cifar(root, members={"train": raw})[0]


#: case -> (make the file under a folder, what the ValueError must say).
CIFAR_CASES = {
    "gzip bomb: train is 1 GiB of zeros in 1 MB": (
        write_bomb_member,
        r"member 'cifar-100-python/train' declares 1,073,741,824 bytes, more than CIFAR-100's "
        r"\(161,280,000\)"),
    "gzip bomb: a 1 GiB entry before train": (
        lambda root: write_bomb_member(root, "junk"),
        r"entry 'cifar-100-python/junk' declares 1,073,741,824 bytes"),
    "tar long-name header of 1 GiB": (
        write_bomb_long_name, r"a tar header of 1,073,741,824 bytes"),
    "sparse train of 1 GiB, no data stored": (
        write_sparse_member, r"member 'cifar-100-python/train' is sparse"),
    "archive: train links to /dev/zero": (
        write_link_member, r"member 'cifar-100-python/train' is not a regular file"),
    "folder: train links to /dev/zero": (
        lambda root: _folder_with(root, lambda p: p.symlink_to("/dev/zero")),
        r"train is not a regular file, so it cannot be CIFAR-100's train file"),
    "folder: train is a named pipe": (
        lambda root: _folder_with(root, _fifo),
        r"train is not a regular file, so it cannot be CIFAR-100's train file"),
    "folder: train is a 1 GiB sparse file": (
        lambda root: _folder_with(root, _sparse_file),
        r"holds 1,073,741,824 bytes, more than CIFAR-100's train file can \(161,280,000\)"),
    "path is /dev/zero": (
        lambda root: Path("/dev/zero"), r"/dev/zero is not a regular file"),
    "pickle: memo slot 2**32 - 1": (
        _in_archive(b"\x80\x02}r\xff\xff\xff\xff."), r"memo slot 4,294,967,295"),
    "pickle: BINBYTES8 of 2**62 bytes": (
        _in_archive(b"\x80\x04\x8e" + (1 << 62).to_bytes(8, "little") + b"abc."),
        r"its pickle is malformed \(expected 4611686018427387904 bytes"),
    "pickle: 2,000,000 empty lists": (
        _in_archive(b"\x80\x02" + b"]" * 2_000_000 + b"."), r"more than 1,000,000 opcodes"),
    "pickle: object array state with a short list": (
        lambda root: _in_archive(batch_with(data=Reduce(
            _numpy_reconstruct(), (np.ndarray, (0,), b"b"),
            (1, (10**6,), np.dtype("O"), False, [1, 2]))))(root),
        r"its pickle asks for numpy.dtype\('O8'\)"),
    "pickle: _reconstruct of 10**10 bytes": (
        lambda root: _in_archive(reduce_pickle(
            _numpy_reconstruct(), (np.ndarray, (10**10,), b"b")))(root),
        r"its pickle asks for numpy _reconstruct\(\(10000000000,\), b'b'\)"),
    "pickle: numpy.ndarray((10**10,)) called": (
        _in_archive(reduce_pickle(np.ndarray, ((10**10,),))),
        r"its pickle asks for a direct call of numpy.ndarray"),
    "pickle: _codecs.encode(text, 'utf-16')": (
        _in_archive(reduce_pickle(_codecs.encode, ("abc", "utf-16"))),
        r"its pickle asks for _codecs.encode\(\.\.\., 'utf-16'\)"),
    "pickle: a uint8 array state of the wrong size": (
        lambda root: _in_archive(batch_with(data=Reduce(
            _numpy_reconstruct(), (np.ndarray, (0,), b"b"),
            (1, (10**6, 3072), np.dtype("u1"), False, b"x" * 100))))(root),
        r"array state \(shape \(1000000, 3072\), bytes of 100 bytes\)"),
    "pickle: one 1 MB string encoded 100 times (100 MB)": (
        _in_archive(b"\x80\x02X" + (1 << 20).to_bytes(4, "little") + b"a" * (1 << 20)
                    + b"q\x00" + b"c_codecs\nencode\nh\x00X\x06\x00\x00\x00latin1\x86R0" * 100
                    + b"N."),
        r"its pickle's calls would produce more bytes than the file holds \(1,051,787\)"),
    "labels: a fine label of 100": (
        _in_archive(batch_with(fine_labels=[100, 0, 1, 2])),
        r"fine_labels run from 0 to 100, outside 0 \.\. 99"),
    "labels: a fine label of -1": (
        _in_archive(batch_with(fine_labels=[-1, 0, 1, 2])),
        r"fine_labels run from -1 to 2, outside 0 \.\. 99"),
    "labels: a fine label of 2**70": (
        _in_archive(batch_with(fine_labels=[2**70, 0, 1, 2])),
        r"fine_labels run from 0 to 1180591620717411303424"),
    "labels: strings": (
        _in_archive(batch_with(fine_labels=["0", "1", "2", "3"])),
        r"fine_labels are not a list of integers"),
    "labels: fewer than images": (
        _in_archive(batch_with(fine_labels=[0, 1])), r"it has 4 images but 2 fine_labels"),
    "data: 4 images of 3 bytes": (
        _in_archive(batch_with(data=np.zeros((4, 3), np.uint8))),
        r"its data \(4, 3\) is not CIFAR-100's layout \(N, 3072\)"),
}


def refused_cheaply(load, path, message: str) -> str:
    """``load(path)`` raises a ``ValueError`` matching ``message`` and allocates (as
    ``tracemalloc`` traces it) less than :data:`PEAK_LIMIT` on the way; returns the message."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message) as refused:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{peak:,} bytes allocated to refuse {path}"
    return str(refused.value)


@pytest.mark.parametrize("case", list(CIFAR_CASES))
def test_hostile_cifar_files_are_refused_before_they_are_read(case, tmp_path):
    from eanet_course import data

    make, message = CIFAR_CASES[case]
    said = refused_cheaply(data.load_cifar100, make(tmp_path), message)
    assert "Download it again" in said or "pass cifar-100-python" in said


def test_a_real_layout_still_loads_after_the_checks(tmp_path):
    from eanet_course import data

    path, splits = write_cifar(tmp_path, n_train=50, n_test=20)
    (x_train, y_train), _ = data.load_cifar100(path)
    np.testing.assert_array_equal(x_train, splits["train"][0])
    np.testing.assert_array_equal(y_train, splits["train"][1])


# --- history files ---------------------------------------------------------------------------

HISTORY_CASES = {
    "/dev/zero": (lambda root: Path("/dev/zero"), r"/dev/zero is not a regular file"),
    "a named pipe": (lambda root: _fifo(root / "log.csv"), r"log.csv is not a regular file"),
    "a 1 GiB sparse file": (
        lambda root: _sparse_file(root / "log.csv"),
        r"holds 1,073,741,824 bytes, more than a CSVLogger file can \(10,000,000\)"),
    "a word for a number": (
        lambda root: _text_file(root / "log.csv", "epoch,loss\n0,abc\n"),
        r"log.csv: 'loss' in row 1 is 'abc', not a number"),
    "a short row": (
        lambda root: _text_file(root / "log.csv", "epoch,loss,accuracy\n0,1.0\n"),
        r"log.csv: 'accuracy' in row 1 is missing"),
}


@pytest.mark.parametrize("case", list(HISTORY_CASES))
def test_hostile_history_files_are_refused(case, tmp_path):
    from eanet_course import viz

    make, message = HISTORY_CASES[case]
    refused_cheaply(viz.plot_history, make(tmp_path), message)


# --- .keras files ----------------------------------------------------------------------------

def test_a_crafted_keras_file_is_refused_without_listing_every_divisor(tmp_path):
    """A config with embed_dim = 10**15 and 3 heads: listing the divisors one by one would not
    finish (this test would hang); the refusal names a few and the fix."""
    import json

    import keras

    from eanet_course.config import get_profile
    from eanet_course.models import build_eanet

    path = tmp_path / "model.keras"
    build_eanet(get_profile("ci")).save(path)
    crafted = tmp_path / "crafted.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(crafted, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "config.json":
                text = content.decode()
                config = json.loads(text)
                block = next(layer for layer in config["config"]["layers"]
                             if layer["class_name"] == "TransformerBlock")
                block["config"].update(embed_dim=10**15, num_heads=3)
                content = json.dumps(config).encode()
            target.writestr(item, content)
    # Keras wraps the layer's ValueError in a TypeError that quotes it.
    with pytest.raises((TypeError, ValueError),
                       match=r"pick num_heads among \[1, 2, 4, 5, 8, 10, \.\.\."):
        keras.models.load_model(crafted, safe_mode=True)


# --- the table -------------------------------------------------------------------------------

def _one_case(case: str, root: Path) -> str:
    """Load one case in this process (the caller measures it) and say how it ended."""
    if case in CIFAR_CASES:
        from eanet_course import data

        load = lambda: data.load_cifar100(CIFAR_CASES[case][0](root))  # noqa: E731
    else:
        from eanet_course import viz

        load = lambda: viz.plot_history(HISTORY_CASES[case][0](root))  # noqa: E731
    try:
        load()
    except BaseException as e:  # noqa: BLE001 -- the table reports whatever came out
        first = str(e).split("\n")[0]
        return f"{type(e).__name__}: {first[:110]}"
    return "loaded, no error"


def _table(old_checkout: str, seconds: int = 60, memory_gib: int = 4) -> None:
    """Run every case in a fresh process, once with ``old_checkout``'s package, once with this
    one's, under a ``memory_gib`` address-space limit and a ``seconds`` timeout, and print the
    table (Markdown) with each process's peak resident memory as ``/usr/bin/time`` measures it.

    TensorFlow is not imported (stand-in modules), so the peak is the loader's own.
    """
    import subprocess
    import tempfile

    here = Path(__file__).resolve().parent
    child = (
        "import resource, sys, types; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({memory_gib} << 30, {memory_gib} << 30)); "
        "sys.modules.update(tensorflow=types.ModuleType('tensorflow'), "
        "keras=types.ModuleType('keras')); "
        f"sys.path[:0] = [sys.argv[1], {str(here)!r}]; "
        "import test_hostile_files as t; from pathlib import Path; "
        "print(t._one_case(sys.argv[2], Path(sys.argv[3])))"
    )
    print("| case | before | peak RSS before | after | peak RSS after |")
    print("|---|---|---|---|---|")
    for case in [*CIFAR_CASES, *(f"plot_history: {c}" for c in HISTORY_CASES)]:
        name = case.removeprefix("plot_history: ")
        cells = []
        for checkout in (old_checkout, str(here.parent)):
            with tempfile.TemporaryDirectory() as root:
                # A session of its own, so that a timeout kills the loader, not only `time`.
                run = subprocess.Popen(
                    ["/usr/bin/time", "-f", "%M", sys.executable, "-c", child, checkout, name,
                     root], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    start_new_session=True)
                try:
                    out, err = run.communicate(timeout=seconds)
                except subprocess.TimeoutExpired:
                    os.killpg(run.pid, 9)
                    run.communicate()
                    cells += [f"still running after {seconds} s (killed)", "-"]
                    continue
            err_lines = err.strip().splitlines()
            if run.returncode == 0:
                outcome = out.strip().splitlines()[-1]
            else:  # `time` says "Command terminated by signal 11" or "exited with non-zero"
                outcome = "; ".join(line for line in err_lines[:-1] if "Command " in line)
                outcome = outcome or f"exit {run.returncode}"
            cells += [outcome.replace("|", "/"), f"{int(err_lines[-1]) / 1024:,.0f} MB"]
        print(f"| {case} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    _table(sys.argv[1])
