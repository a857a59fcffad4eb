"""Quiet by default: no TensorFlow C++ start-up log where a learner starts (notebook, doctor).

``import eanet_course`` (first, or at start-up in ``.venv``: ``make setup`` writes a ``.pth`` line,
``QUIET_PTH`` in the Makefile) filters TensorFlow's start-up lines while ``tensorflow`` is
imported, and sets ``TF_CPP_MIN_LOG_LEVEL`` unless the user did. These tests count the stderr
lines a learner would see, with the environment's own ``TF_CPP_MIN_LOG_LEVEL`` removed (``make
test`` sets it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from eanet_course._quiet import START_UP_LINE, has_gpu_driver

ROOT = Path(__file__).resolve().parents[1]
QUIET_PTH = re.search(r"^QUIET_PTH := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def _learner_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env | extra


def _unwanted(lines: list[str]) -> list[str]:
    """Lines a learner should not see: all of them without a GPU driver; else start-up lines."""
    return lines if not has_gpu_driver() else [line for line in lines
                                               if START_UP_LINE.match(line) or "cuInit" in line]


def test_filter_drops_start_up_lines_and_keeps_warnings(tmp_path):
    """A stand-in ``tensorflow`` that logs like the real one: its I lines go, the rest stays."""
    fake = tmp_path / "tensorflow"
    fake.mkdir()
    (fake / "__init__.py").write_text(textwrap.dedent("""\
        import os, sys, warnings
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                    b"written to STDERR\\n")
        os.write(2, b"I0000 00:00:1796468110.278209    4421 port.cc:153] oneDNN custom ops\\n")
        os.write(2, b"W0000 00:00:1796468110.278209    4421 gpu.cc:9] a real warning\\n")
        warnings.warn("a Python warning")
        print("level", os.environ["TF_CPP_MIN_LOG_LEVEL"])
        """))
    probe = [sys.executable, "-c", "import eanet_course, tensorflow"]
    env = _learner_env(PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path)]))
    done = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr
    assert "a real warning" in done.stderr and "UserWarning: a Python warning" in done.stderr
    assert done.stdout.strip() == f"level {'2' if has_gpu_driver() else '3'}"
    # The user's own setting wins; 0 (everything) turns the filter off.
    done = subprocess.run(probe, env=env | {"TF_CPP_MIN_LOG_LEVEL": "0"}, capture_output=True,
                          text=True, timeout=60)
    assert "oneDNN" in done.stderr and done.stdout.strip() == "level 0"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch) -> str:
    """A kernel of this Python that starts as ``.venv``'s do: the Makefile's .pth line first."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "eanet_course_quiet.pth").write_text(QUIET_PTH + "\n")
    spec = tmp_path / "kernels" / "venv-probe"
    spec.mkdir(parents=True)
    start = ("import site, sys; site.addsitedir(sys.argv.pop(1)); "
             "from ipykernel.kernelapp import launch_new_instance; launch_new_instance()")
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", start, str(site), "-f", "{connection_file}"],
        "display_name": "venv probe", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    for name, value in _learner_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    return "venv-probe"


def test_notebook_00_first_cell_and_doctor_say_nothing_on_stderr(venv_kernel, tmp_path):
    """Notebook 00's first code cell (it imports keras before eanet_course), then TensorFlow's
    first device query (where CUDA is probed), in a kernel started as ``make lab`` starts one;
    and ``python -m eanet_course doctor``, run meanwhile."""
    from nbclient import NotebookClient

    doctor = subprocess.Popen([sys.executable, "-m", "eanet_course", "doctor"], cwd=ROOT,
                              env=_learner_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)

    source = nbformat.read(ROOT / "notebooks" / "00_setup_and_data.ipynb", as_version=4)
    first = next(cell for cell in source.cells if cell.cell_type == "code")
    assert re.search(r"^import keras", first.source, re.M), "the probe wants keras imported first"
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(first.source),
        nbformat.v4.new_code_cell("tf.config.list_physical_devices()")])
    NotebookClient(notebook, kernel_name=venv_kernel, timeout=300,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    stderr = [line for cell in notebook.cells for out in cell.outputs
              if out.get("name") == "stderr" for line in out.text.splitlines()]
    assert _unwanted(stderr) == [], "\n".join(stderr)
    out, err = doctor.communicate(timeout=300)
    assert doctor.returncode == 0 and "GPU" in out, err
    assert _unwanted(err.splitlines()) == [], err
