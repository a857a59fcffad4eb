"""Give every course notebook the kernelspec ipykernel writes, so that JupyterLab opens it clean.

Usage: ``python scripts/set-kernelspec.py`` (from anywhere). Only ``metadata.kernelspec`` of the
notebooks in notebooks/, solutions/, exercises/ and instructor/source/ changes; each file is
rewritten as nbformat writes it (one-space indent), so a diff shows that one line.
``tests/test_kernelspec.py`` checks the result.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("notebooks", "solutions", "exercises", "instructor/source")
# ipykernel's own kernel.json for its "python3" kernel.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def main() -> int:
    changed = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.ipynb")):
            if ".ipynb_checkpoints" in path.parts:
                continue
            notebook = json.loads(path.read_text(encoding="utf-8"))
            if notebook["metadata"].get("kernelspec") == KERNELSPEC:
                continue
            notebook["metadata"]["kernelspec"] = KERNELSPEC
            partial = path.with_name(path.name + ".partial")
            partial.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                               encoding="utf-8")
            os.replace(partial, path)  # atomic: an interrupted run leaves every file whole
            changed.append(path.relative_to(ROOT))
    print(f"{len(changed)} notebooks given ipykernel's kernelspec" + "".join(
        f"\n  {p}" for p in changed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
