"""Measurements that take hours, shipped with the course, and the learner's own reruns.

A *record* is one measurement with its provenance::

    {"name": "limits",
     "provenance": {"command": "python -m eanet_course bench limits", "commit": "9b88dcd...",
                    "date": "2026-12-05T11:02:03Z", "machine": {"cpu": "...", "cores": 2,
                    "system": "Linux"}, "wall_time_s": 7203.1,
                    "versions": {"python": "3.11.7", "tensorflow": "2.20.0", ...}},
     "data": {...}}

The course ships its records as package data (``eanet_course/results/<name>.json``), read with
:func:`load`; a learner's own rerun (a benchmark's ``--save``) goes to
``$EANET_HOME/results/<name>.json`` and never touches the shipped file, so a notebook can show
both, each labelled with :func:`label`. Maintainers refresh a shipped record with ``--ship``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from eanet_course.paths import atomic_write, eanet_home

__all__ = ["NAME_CHARS", "label", "load", "machine", "provenance", "record", "save"]

#: The characters a record's name may hold (it becomes a file name).
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_LIBRARIES = ("tensorflow", "keras", "numpy", "scikit-learn")
_MAX_BYTES = 16 * 2**20  # a record is a few hundred kB at most


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or set(name) - NAME_CHARS:
        raise ValueError(f"A result's name is lower-case letters, digits, '_' or '-'; got {name!r}"
                         " (e.g. 'limits').")
    return name


def machine() -> dict[str, Any]:
    """The CPU model (from ``/proc/cpuinfo`` where there is one), its cores and the OS."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "system": platform.system()}


def _commit() -> str | None:
    """The git commit of the package's checkout, or None (an installed wheel has none)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def provenance(command: str, wall_time_s: float) -> dict[str, Any]:
    """Where a measurement comes from: command, commit, UTC date, machine, wall time, versions."""
    versions = {"python": platform.python_version()}
    for library in _LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            versions[library] = None
    return {"command": command, "commit": _commit(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "machine": machine(), "wall_time_s": round(float(wall_time_s), 1),
            "versions": versions}


def record(name: str, data: Any, *, command: str, wall_time_s: float) -> dict[str, Any]:
    """``data`` wrapped with its name and :func:`provenance` (nothing written)."""
    return {"name": _check_name(name), "provenance": provenance(command, wall_time_s),
            "data": data}


def _shipped_path(name: str) -> Path:
    return Path(str(resources.files(__name__).joinpath(f"{name}.json")))


def _mine_path(name: str) -> Path:
    return eanet_home() / "results" / f"{name}.json"


def save(name: str, data: Any, *, command: str, wall_time_s: float, ship: bool = False) -> Path:
    """Write ``data`` with its provenance atomically; return the file's path.

    Args:
        name: the record's name, e.g. ``"limits"``.
        data: anything JSON can hold.
        command: the command that reruns the measurement.
        wall_time_s: how long the measurement took, in seconds of one process: a measurement
            run in shards side by side (``bench limits --shard``) adds up its shards' times.
        ship: False (default): the learner's own copy, ``$EANET_HOME/results/<name>.json``.
            True: the package's shipped file (for maintainers, in a checkout).
    """
    path = _shipped_path(_check_name(name)) if ship else _mine_path(_check_name(name))
    with atomic_write(path) as file:
        json.dump(record(name, data, command=command, wall_time_s=wall_time_s), file, indent=1)
        file.write("\n")
    return path


def load(name: str, which: str = "shipped") -> dict[str, Any] | None:
    """A record: ``which="shipped"`` (the course's) or ``"mine"`` (``$EANET_HOME``'s).

    Returns None where there is no such file. A file that is not a regular file, is larger than
    a record can be, or is not a record raises ``ValueError`` naming the file and the fix.
    """
    if which not in ("shipped", "mine"):
        raise ValueError(f"which={which!r}; use 'shipped' (the course's) or 'mine' (yours).")
    path = (_shipped_path if which == "shipped" else _mine_path)(_check_name(name))
    if not path.exists():
        return None
    fix = ("reinstall the course" if which == "shipped"
           else "delete it and rerun the benchmark with --save")
    if not path.is_file() or path.stat().st_size > _MAX_BYTES:
        raise ValueError(f"{path} is not a regular file of at most {_MAX_BYTES >> 20} MiB; {fix}.")
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {fix}.") from None
    if not (isinstance(found, dict) and found.get("name") == name
            and isinstance(found.get("provenance"), dict) and "data" in found):
        raise ValueError(f"{path} is not a '{name}' record (name, provenance, data); {fix}.")
    return found


def label(found: dict[str, Any], which: str = "shipped") -> str:
    """One line to print beside a figure: whose it is, where and when it was measured, how."""
    where = found["provenance"]
    host = where.get("machine") or {}
    commit = (where.get("commit") or "no commit")[:9]
    seconds = float(where.get("wall_time_s") or 0)
    took = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return (f"{which}: measured on {host.get('cpu', '?')}, {host.get('cores', '?')} cores, "
            f"{str(where.get('date', '?'))[:10]} (commit {commit}), {took} of measuring: "
            f"{where.get('command', '?')}")
