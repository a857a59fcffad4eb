"""Notebooks open clean: their kernelspec is what ipykernel writes, so JupyterLab leaves them
unmodified. exercises/ and instructor/source/ are generated from solutions/ with its metadata
(``exercises check``, a test, fails when they differ from what the generator writes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("set_kernelspec",
                                               ROOT / "scripts" / "set-kernelspec.py")
set_kernelspec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(set_kernelspec)
KERNELSPEC = set_kernelspec.KERNELSPEC
NOTEBOOKS = sorted(p for folder in set_kernelspec.FOLDERS for p in (ROOT / folder).rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)


def test_the_expected_kernelspec_is_ipykernels():
    from ipykernel.kernelspec import get_kernel_dict

    spec = get_kernel_dict()
    assert {"display_name": spec["display_name"], "language": spec["language"],
            "name": "python3"} == KERNELSPEC


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_notebook_names_ipykernels_kernelspec(notebook):
    metadata = json.loads(notebook.read_text(encoding="utf-8"))["metadata"]
    assert metadata.get("kernelspec") == KERNELSPEC, (
        f"{notebook.relative_to(ROOT)}: kernelspec {metadata.get('kernelspec')}; run "
        "python scripts/set-kernelspec.py")
