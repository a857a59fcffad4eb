"""The parts of grading that need neither nbgrader nor a class: which cells an answer needs, the
wire between the two processes, the limits file, and a re-check (with and without bubblewrap).
The whole class is graded in tests/test_hostile_class.py."""

import io

import numpy as np
import pytest

from eanet_course.grading import Limits, Sandbox, program, readonly_package, recheck
from eanet_course.grading import fresh
from eanet_course.grading.sandbox import remove_readonly

RIGHT = ["import numpy as np\nimport os",
         "def helper(x):\n    return np.transpose(x, (0, 2, 1, 3))",
         "def merge_heads(x):\n    b, h, n, dh = x.shape\n"
         "    return helper(x).reshape(b, n, h * dh)"]


def test_an_answer_needs_the_cells_that_define_its_names_and_theirs():
    cells = ["import numpy as np", "big = np.ones(3)  # unused",
             "def helper(x):\n    return np.abs(x)",
             "helper = 3  # rebound later: not what the answer sees",
             "def helper(x):\n    return np.sign(x)",
             "def f(x):\n    import sys\n    y = helper(x)\n    return y",
             "import sys\nsys.exit('a bare exit')"]
    assert program(cells, {"f"}) == [cells[0], cells[4], cells[5]]
    assert program(cells, {"g"}) == []
    # Statements, not whole cells: the notebook's heavy imports stay out of a NumPy answer.
    imports = "import keras\nimport numpy as np\n\n\n@staticmethod\ndef unused():\n    pass"
    answer = "def f(x):\n    return np.abs(x)\n\nkeras.config.set_floatx('float16')"
    assert program([imports, answer], {"f"}) == ["import numpy as np",
                                                 "def f(x):\n    return np.abs(x)"]
    assert program(["import keras; import numpy as np", answer], {"f"})[0] == \
        "import keras; import numpy as np", "statements that share a line stay together"
    assert program(["%matplotlib inline", "def f():\n    pass"], {"f"}) == ["def f():\n    pass"]
    # A helper defined after the answer, in the same cell, is there when the answer is called.
    later = "def f(x):\n    return g(x)\ndef g(x):\n    return x"
    assert program([later + "\nprint('left out')"], {"f"}) == [later]


def test_only_arrays_numbers_strings_and_tuples_cross_and_never_a_pickle():
    blobs: list[bytes] = []
    value = (np.arange(6.0).reshape(2, 3), [1, 2.5, "x", None, True], np.float32(2.0))
    data = fresh._encode(value, blobs)
    stream = io.BytesIO()
    fresh.send(stream, {"result": data}, blobs)
    stream.seek(0)
    header, received = fresh.receive(stream)
    back = fresh._decode(header["result"], received)
    assert np.array_equal(back[0], value[0]) and back[1] == [1, 2.5, "x", None, True]
    assert back[2] == 2.0 and isinstance(back[2], np.floating)
    # An object (or an object array, which only a pickle could carry) becomes a described stand-in.
    blobs = []
    opaque = fresh._decode(fresh._encode(np.array([object()], dtype=object), blobs), blobs)
    assert type(opaque).__name__ == "ndarray" and "object" in repr(opaque)
    assert blobs == []


def test_the_limits_file_is_read_and_checked(tmp_path):
    pytest.importorskip("tomllib", reason="Python 3.11, like nbgrader")
    assert Limits.load(tmp_path) == Limits()
    (tmp_path / "sandbox.toml").write_text("memory_mb = 1024\ncell_seconds = 5\n")
    assert Limits.load(tmp_path) == Limits(memory_mb=1024, cell_seconds=5)
    (tmp_path / "sandbox.toml").write_text("memory = 1024\n")
    with pytest.raises(ValueError, match="unknown setting.*memory_mb"):
        Limits.load(tmp_path)
    (tmp_path / "sandbox.toml").write_text("processes = -1\n")
    with pytest.raises(ValueError, match="processes must be a positive whole number"):
        Limits.load(tmp_path)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    path = readonly_package(root)
    yield path
    remove_readonly(root)


def test_a_recheck_judges_the_source_not_the_kernel_even_without_bubblewrap(package):
    """The fallback (limits only; with bubblewrap, tests/test_hostile_class.py)."""
    sandbox = Sandbox(Limits(call_seconds=2, cell_seconds=5), package, use_bwrap=False)
    assert "submissions run under resource limits only" in sandbox.lost
    assert recheck(RIGHT, "check_merge_heads", "merge_heads", sandbox).passed
    # Right shape, wrong values, and the checker's numpy.allclose patched where the answer runs.
    cheat = ["import numpy as np",
             "def merge_heads(x):\n    np.allclose = lambda *a, **k: True\n"
             "    b, h, n, dh = x.shape\n    return np.zeros((b, n, h * dh))"]
    verdict = recheck(cheat, "check_merge_heads", "merge_heads", sandbox)
    assert not verdict.passed and "largest difference" in verdict.message
    stub = ["def merge_heads(x):\n    raise NotImplementedError()"]
    assert "not implemented yet" in recheck(stub, "check_merge_heads", "merge_heads",
                                            sandbox).message
    missing = recheck(["x = 1"], "check_merge_heads", "merge_heads", sandbox)
    assert not missing.passed and "`merge_heads` is not defined" in missing.message
