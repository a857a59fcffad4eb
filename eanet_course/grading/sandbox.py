"""The sandbox a submission's code runs in when a class is graded, and its limits.

:class:`Limits` reads ``sandbox.toml`` next to the course's ``nbgrader_config.py``.
:class:`Sandbox` wraps a command so that it runs:

- with **bubblewrap** (``bwrap``) where it is installed: a new mount, PID, network, IPC, UTS and
  user namespace; the system, the Python environment and a **read-only copy of the package**
  (only ``eanet_course/``: no ``solutions/``, no checkout) visible read-only; one working folder
  of its own writable; a private ``/tmp`` of bounded size; no network; no capabilities; every
  process killed when the sandbox's first process or its parent ends (``--die-with-parent``,
  PID namespace). The course, the gradebook, ``source/``, the solutions and the other
  submissions are not there at all.
- under **resource limits** in every case: address space per process (``RLIMIT_AS``: a
  ``MemoryError``, not a kill), file size, and processes (a ``pids`` cgroup where one can be
  made, see :class:`ProcessGroup`; else ``RLIMIT_NPROC``, which the kernel does not apply to
  root).

Without bwrap, only the limits remain: the code sees the filesystem and the network with the
grader's rights. :attr:`Sandbox.lost` says so in words, and the grade command prints it.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

#: The file next to ``nbgrader_config.py`` that holds the limits.
LIMITS_FILE = "sandbox.toml"
#: Where the read-only copy of the package appears inside the sandbox.
PACKAGE_INSIDE = "/opt/eanet-course"
#: Files of /etc a Python program needs (name resolution of localhost, users, time zone, TLS
#: roots); the rest of /etc is not shown.
ETC = ("passwd", "group", "hosts", "nsswitch.conf", "localtime", "ld.so.cache", "ld.so.conf",
       "ld.so.conf.d", "ssl", "alternatives", "fonts", "matplotlibrc", "mime.types")


@dataclass(frozen=True)
class Limits:
    """What one submission may use while it is graded (see ``instructor/sandbox.toml``)."""

    #: Address space of each process, in MiB (``RLIMIT_AS``); an allocation beyond it fails.
    memory_mb: int = 6144
    #: Processes and threads of one submission's grading together (TensorFlow starts a few
    #: dozen threads).
    processes: int = 256
    #: Wall time for one submission's whole grading, in seconds.
    submission_seconds: int = 1800
    #: Each cell, in seconds (nbgrader's ``ExecutePreprocessor.timeout``).
    cell_seconds: int = 120
    #: Each call of a learner's function while its answer is re-checked, in seconds.
    call_seconds: int = 20
    #: The private ``/tmp``, in MiB; also the largest file a process may write.
    tmp_mb: int = 512

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{LIMITS_FILE}: {field.name} must be a positive whole number, "
                                 f"got {value!r}.")

    @classmethod
    def load(cls, course: str | Path) -> Limits:
        """The limits in ``course/sandbox.toml`` (the defaults above for what it leaves out)."""
        path = Path(course) / LIMITS_FILE
        if not path.exists():
            return cls()
        try:
            import tomllib  # Python 3.11, like nbgrader; the course itself runs on 3.10
        except ImportError as error:
            raise ValueError(f"reading {path} needs Python 3.11 or newer, as nbgrader does "
                             "(make clean && make PYTHON=python3.11 instructor).") from error
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"{path} is not valid TOML ({error}); fix the line it names.") \
                from error
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; the settings are "
                             f"{', '.join(sorted(known))}.")
        return cls(**values)


@functools.cache
def bwrap() -> str | None:
    """The path of bubblewrap, or None where it is not installed or cannot make its namespaces
    here (a container that forbids user namespaces, say)."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    try:
        tried = subprocess.run([path, "--unshare-all", "--unshare-user", "--die-with-parent",
                                "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return path if tried.returncode == 0 else None


def readonly_package(into: str | Path) -> Path:
    """A read-only copy of the ``eanet_course`` package (the package folder alone) under
    ``into``; returns the folder to put on ``sys.path``."""
    source = Path(__file__).resolve().parents[1]
    root = Path(into) / "package"
    shutil.copytree(source, root / "eanet_course",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in sorted(root.rglob("*"), reverse=True) + [root]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return root


def remove_readonly(path: str | Path) -> None:
    """Remove a tree made by :func:`readonly_package` (its folders are not writable)."""
    for folder in [Path(path), *Path(path).rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(folder.stat().st_mode | stat.S_IWUSR)
    shutil.rmtree(path, ignore_errors=True)


class ProcessGroup:
    """A ``pids`` cgroup (v2, or v1's ``pids`` controller) that bounds the number of processes
    of one submission's grading and can kill them all; ``None`` from :meth:`make` where no
    cgroup can be made (not root, or no writable cgroup filesystem)."""

    def __init__(self, path: Path, procs: str):
        self.path, self.procs = path, procs

    @classmethod
    def make(cls, max_processes: int) -> ProcessGroup | None:
        name = f"eanet-grade-{uuid.uuid4().hex[:12]}"
        candidates = [Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup")]
        for base in candidates:
            if not (base / "cgroup.procs").exists() or not os.access(base, os.W_OK):
                continue
            if base.name != "pids":  # v2: the pids controller must be enabled for children
                controllers = (base / "cgroup.subtree_control")
                if not controllers.exists() or "pids" not in controllers.read_text().split():
                    continue
            path = base / name
            try:
                path.mkdir()
                (path / "pids.max").write_text(str(max_processes))
            except OSError:
                shutil.rmtree(path, ignore_errors=True)
                continue
            return cls(path, str(path / "cgroup.procs"))
        return None

    def enter_command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this group (a shell moves itself in, then execs it)."""
        return ["/bin/sh", "-c", f'echo $$ > {shlex.quote(self.procs)} && exec "$@"', "sh",
                *argv]

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in Path(self.procs).read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        """Kill every process left in the group, then remove it."""
        for _ in range(50):
            left = self.pids()
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        try:
            self.path.rmdir()
        except OSError:
            pass


def _python_roots() -> list[str]:
    """The folders the running Python needs: its environment and the installation under it."""
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    roots.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    return sorted(roots)


class Sandbox:
    """Wraps commands so that they run confined (see the module's docstring).

    ``package`` is the folder holding the read-only copy of ``eanet_course`` (from
    :func:`readonly_package`); ``use_bwrap`` False forces the fallback (limits only).
    """

    def __init__(self, limits: Limits, package: str | Path, use_bwrap: bool | None = None):
        self.limits, self.package = limits, Path(package)
        self.bwrap = bwrap() if use_bwrap in (None, True) else None
        if use_bwrap and self.bwrap is None:
            raise RuntimeError("bubblewrap (bwrap) is not installed, or cannot make namespaces "
                               "here: run scripts/ensure-bubblewrap.sh, or apt-get install "
                               "bubblewrap.")

    @property
    def lost(self) -> str | None:
        """What is not confined without bubblewrap (None with it)."""
        if self.bwrap:
            return None
        return ("bubblewrap (bwrap) is not installed, or cannot make namespaces on this "
                "machine, so submissions run under resource limits only: their code can read "
                "and write what the grader can (the course, the "
                "gradebook, source/, other submissions) and reach the network. Install it: "
                "scripts/ensure-bubblewrap.sh (Debian/Ubuntu: apt-get install bubblewrap).")

    def environment(self) -> dict[str, str]:
        """The environment inside: nothing of the grader's but a PATH, and the package copy."""
        inside = PACKAGE_INSIDE if self.bwrap else str(self.package)
        home = Path("/tmp/home") if self.bwrap else self.package.parent / "home"
        if not self.bwrap:
            home.mkdir(exist_ok=True)
        return {
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin",
                                     "/usr/bin", "/bin"]),
            "PYTHONPATH": inside, "HOME": str(home), "EANET_HOME": str(home / "eanet-home"),
            "MPLBACKEND": "agg", "LANG": "C.UTF-8",
            **{k: os.environ[k] for k in ("EANET_PROFILE", "EANET_DATASET", "TF_CPP_MIN_LOG_LEVEL",
                                          "PYTHONWARNINGS") if k in os.environ},
        }

    def wrap(self, argv: list[str], workdir: str | Path, *, source: str | Path | None = None,
             extra_binds: tuple = (), group: ProcessGroup | None = None,
             seconds: int | None = None) -> list[str]:
        """``argv`` confined, run in ``workdir`` (the one folder it may write, besides /tmp).

        ``source`` is the folder shown at ``workdir`` inside (default: ``workdir`` itself);
        ``extra_binds`` are more folders to share read-write at the same path (the kernel's
        connection folder); ``group`` the :class:`ProcessGroup` it starts in; ``seconds`` a
        wall-time limit, past which everything inside is killed.
        """
        limits = self.limits
        memory = limits.memory_mb * 2**20
        prlimit = ["prlimit", f"--as={memory}", f"--fsize={limits.tmp_mb * 2**20}",
                   f"--nproc={limits.processes}", "--core=0", "--"]
        missing = [tool for tool in ("prlimit", "timeout") if not shutil.which(tool)]
        if missing:
            raise RuntimeError(f"grading needs {' and '.join(missing)} (util-linux and "
                               "coreutils, on every Linux distribution); install them.")
        if seconds:
            prlimit += ["timeout", "--signal=KILL", str(seconds)]
        if group:
            prlimit = group.enter_command(prlimit)
        if not self.bwrap:
            return [*prlimit, "env", "-i", *(f"{k}={v}" for k, v in self.environment().items()),
                    *argv]
        box = [self.bwrap, "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000",
               "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
               "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_mb * 2**20),
               "--tmpfs", "/tmp", "--dir", "/tmp/home"]
        for name in ("usr", "lib", "lib32", "lib64", "bin", "sbin"):
            path = f"/{name}"
            if os.path.islink(path):
                box += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                box += ["--ro-bind", path, path]
        for name in ETC:
            box += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for root in _python_roots():
            box += ["--ro-bind", root, root]
        box += ["--ro-bind", str(self.package), PACKAGE_INSIDE]
        for folder in extra_binds:
            box += ["--bind", str(folder), str(folder)]
        box += ["--bind", str(source or workdir), str(workdir)]
        box += ["--chdir", str(workdir)]
        for key, value in self.environment().items():
            box += ["--setenv", key, value]
        return [*prlimit, *box, "--", *argv]
