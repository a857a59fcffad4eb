"""Every notebook opens with its orientation block; the glossary defines every letter once.

The block is the notebook's first markdown cell, with lines that start ``**Time:**`` (one short
sentence: a reading time, the measured run time of the cells, and a link to ``MEASURED.md``, the
page that says how every figure was measured), ``**Prerequisites:**`` and ``**Paper:**`` (with
the arXiv link), and a link to ``GLOSSARY.md``. The test covers every ``notebooks/NN_*.ipynb``
that exists.
"""

import ast
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GLOSSARY = ROOT / "notebooks" / "GLOSSARY.md"
ARXIV = "https://arxiv.org/abs/2105.02358"


def _first_cell(path):
    cell = json.loads(path.read_text())["cells"][0]
    return cell["cell_type"], "".join(cell["source"])


def _line(text, prefix):
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected one line starting {prefix!r}, found {len(lines)}"
    return lines[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_orientation_block(path):
    kind, text = _first_cell(path)
    assert kind == "markdown", f"{path.name}: the first cell must be the markdown orientation block"
    time = _line(text, "**Time:**")
    assert re.search(r"about \d+ minutes", time), f"{path.name}: **Time:** gives no reading time"
    assert re.search(r"\d+(\.\d+)? (s|min)\b", time), f"{path.name}: **Time:** gives no measured time"
    assert "](MEASURED.md)" in time, f"{path.name}: **Time:** must link MEASURED.md (how it was measured)"
    assert len(time) <= 260 and time.rstrip(".").count(". ") == 0, \
        f"{path.name}: **Time:** must be one short sentence, not {len(time)} characters"
    assert len(_line(text, "**Prerequisites:**")) > len("**Prerequisites:**") + 5
    assert ARXIV in _line(text, "**Paper:**"), f"{path.name}: **Paper:** must link {ARXIV}"
    assert "](GLOSSARY.md)" in text, f"{path.name}: the orientation block must link GLOSSARY.md"


def test_the_course_has_at_least_its_first_ten_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:10] == [f"{i:02d}" for i in range(10)]


def _glossary_names():
    """The first column of every table: letters in LaTeX (``$d_h$``), code names in code spans."""
    names = []
    for line in GLOSSARY.read_text().splitlines():
        if line.startswith("|"):
            name = line.split("|")[1].strip().replace("`", "").replace("$", "")
            if name not in ("name", "---"):
                names.append(name)
    return names


def test_glossary_defines_every_letter_once():
    names = _glossary_names()
    required = {"B", "N", "d", "d_h", "H", "S", "P", "dim_coefficient", "total heads", "num_heads",
                "M_k", "M_v", "F", r"F_{\mathrm{out}}", "A", "K", "Q, V", "c", "mlp_dim",
                "DoubleNorm", "memory unit", "profile"}
    missing = required - set(names)
    assert not missing, f"GLOSSARY.md does not define {sorted(missing)}"
    repeated = sorted({name for name in names if names.count(name) > 1})
    assert not repeated, f"GLOSSARY.md defines {repeated} more than once"


def test_notebook_05_traces_shapes_with_pairwise_distinct_sizes():
    """B, N, H, dh and S of the shape trace all differ, so a wrong axis shows as a wrong size."""
    from eanet_course.layers import ExternalAttention

    cells = json.loads((ROOT / "notebooks" / "05_multi_head_external_attention.ipynb").read_text())
    sources = ["".join(c["source"]) for c in cells["cells"] if c["cell_type"] == "code"]
    defining = [s for s in sources if "trace_sizes = " in s]
    assert len(defining) == 1, "notebook 05 defines its trace sizes once, as trace_sizes = {...}"
    literal = re.search(r"trace_sizes = (\{[^}]*\})", defining[0]).group(1)
    sizes = ast.literal_eval(literal)
    layer = ExternalAttention(sizes["d"], num_heads=sizes["num_heads"],
                              dim_coefficient=sizes["dim_coefficient"], memory_units=sizes["S"])
    traced = {"B": sizes["B"], "N": sizes["N"], "H": layer.total_heads, "dh": layer.head_dim,
              "S": layer.memory_units}
    assert len(set(traced.values())) == 5, f"sizes must be pairwise distinct: {traced}"
    # ... and the trace itself uses them.
    tracing = [s for s in sources if "show(" in s and "reshape(B, N, H, dh)" in s]
    assert tracing, "the shape trace reshapes with the trace sizes B, N, H, dh"
