"""Re-check an answer in fresh processes, out of reach of the learner's kernel.

:func:`recheck` takes a submitted notebook's cells and one checker cell
(``checks.check_x(f)``) and judges ``f`` again from its source:

- the **learner process** (in the :class:`~eanet_course.grading.sandbox.Sandbox`) runs the code
  the answer depends on (:func:`program`: the statements that define the names it uses, and
  theirs, in notebook order), then answers calls of ``f``; only arrays, numbers, strings and
  tuples of them cross, as ``.npy`` bytes read with ``allow_pickle=False`` and JSON, never a pickle;
- the **checker process** (``python -I``, no learner code ever runs in it) imports
  ``eanet_course.checks`` from the read-only copy of the package, runs the checker with a proxy
  for ``f`` that forwards each call to the learner process, and prints the verdict.

So whatever the learner's code does to its own process (rebind ``checks``, patch a checker,
``CheckResult.__bool__`` or ``numpy.allclose``), the checker's objects are not there to patch.

The checkers that hand the learner's code objects rather than arrays (a Keras layer class, a
model built from the learner's block, a config, a schedule, a train step: :data:`OBJECT_CHECKERS`)
cannot work through arrays: checker and learner code then share one fresh, sandboxed process.
The checker is imported before any learner code runs, and the kernel's objects are not there;
but code run while it is judged (the class's methods, the function's body) could patch the
checker's modules in that process. Those verdicts are marked as such.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Checkers that pass the learner's code objects, not arrays (see the module's docstring).
OBJECT_CHECKERS = frozenset({"check_external_attention_layer", "check_transformer_block",
                             "check_parameter_count", "check_learning_rate_schedule",
                             "check_train_step"})
#: The length prefix of each message between the two processes.
_HEADER = struct.Struct("!I")


@dataclass(frozen=True)
class Verdict:
    """What the checker process said: ``passed``, its feedback ``message``, and whether the
    checker shared its process with learner code (``shared``)."""

    passed: bool
    message: str
    shared: bool = False


# --- which cells an answer needs ---------------------------------------------------------------

def _tree(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:  # IPython magics, shell escapes: not Python, never part of a program
        return None


def _bound(tree: ast.AST) -> set[str]:
    """Every name a cell binds anywhere (top level, function locals, arguments, imports)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _binds(node: ast.stmt) -> set[str]:
    """The names a top-level statement binds (what later statements can use)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    return {n.id for n in ast.walk(node)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


def _free(tree: ast.AST) -> set[str]:
    """The names a statement (or cell) reads that it does not bind itself."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used - _bound(tree)


def _statements(source: str) -> list[tuple[str, set[str], set[str]]]:
    """A cell as ``(source, binds, reads)`` units: one per top-level statement, or the whole cell
    as one unit where two statements share a line. Empty for a cell that is not Python."""
    tree = _tree(source)
    if tree is None:
        return []
    lines = source.splitlines()
    spans = [(min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]),
              node.end_lineno) for node in tree.body]
    if any(a[1] >= b[0] for a, b in zip(spans, spans[1:])):
        return [(source, set().union(*map(_binds, tree.body)), _free(tree))]
    return [("\n".join(lines[first - 1:last]), _binds(node), _free(node))
            for (first, last), node in zip(spans, tree.body)]


def program(cells: list[str], names: set[str]) -> list[str]:
    """The statements of ``cells`` that define ``names``, and those they need, as cells.

    ``cells`` are the code cells before the checker cell. Each needed name comes from the last
    top-level statement that binds it (its value when the checker calls the answer); the chosen
    statements keep their order and their cells (one cell's error does not stop the next). A cell's other
    statements (the notebook's ``import keras`` beside ``import numpy as np``, a training run)
    are left out: they cannot change what the answer computes from the checker's inputs.
    """
    units = [(cell, *unit) for cell, source in enumerate(cells)
             for unit in _statements(source)]
    last = {name: index for index, unit in enumerate(units) for name in unit[2]}
    chosen: set[int] = set()
    todo = list(names)
    while todo:
        index = last.get(todo.pop())
        if index is not None and index not in chosen:
            chosen.add(index)
            todo.extend(units[index][3])
    grouped: dict[int, list[str]] = {}
    for index in sorted(chosen):
        grouped.setdefault(units[index][0], []).append(units[index][1])
    return ["\n".join(statements) for statements in grouped.values()]


# --- the wire: arrays as .npy, the rest as JSON ------------------------------------------------

def _encode(value, blobs: list[bytes]):
    if hasattr(value, "numpy") and callable(value.numpy) and not isinstance(value, np.ndarray):
        try:
            value = value.numpy()
        except Exception:  # noqa: BLE001 -- a symbolic tensor has no value: described below
            pass
    if isinstance(value, (np.ndarray, np.generic)) and np.asarray(value).dtype != object:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(value), allow_pickle=False)
        blobs.append(buffer.getvalue())
        return {"array": len(blobs) - 1, "scalar": isinstance(value, np.generic)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list":
                [_encode(v, blobs) for v in value]}
    return {"object": type(value).__name__, "repr": repr(value)[:200]}


def _opaque(name: str, text: str):
    """A stand-in for an object that cannot cross: its type's name and its repr."""
    cls = type(name, (), {"__repr__": lambda self: text})
    return cls()


def _decode(data, blobs: list[bytes]):
    if "array" in data:
        array = np.load(io.BytesIO(blobs[data["array"]]), allow_pickle=False)
        return array[()] if data["scalar"] else array
    if "value" in data:
        return data["value"]
    if "tuple" in data:
        return tuple(_decode(v, blobs) for v in data["tuple"])
    if "list" in data:
        return [_decode(v, blobs) for v in data["list"]]
    return _opaque(data["object"], data["repr"])


def send(stream, header: dict, blobs: list[bytes] = ()) -> None:
    """One message: a JSON header (with the blobs' sizes), then the blobs."""
    header = {**header, "sizes": [len(b) for b in blobs]}
    raw = json.dumps(header).encode()
    stream.write(_HEADER.pack(len(raw)) + raw + b"".join(blobs))
    stream.flush()


def _read_exactly(stream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError("the other process ended")
        data += chunk
    return data


def receive(stream) -> tuple[dict, list[bytes]]:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    header = json.loads(_read_exactly(stream, size))
    return header, [_read_exactly(stream, n) for n in header["sizes"]]


# --- the learner process -----------------------------------------------------------------------

def _run_cells(cells: list[str], namespace: dict, seconds: float) -> list[str]:
    """Run each cell like a notebook does (an error stops that cell, not the next); each may
    take ``seconds``. Returns one line per cell that failed."""
    import signal

    def time_up(signum, frame):
        raise TimeoutError(f"still running after {seconds:g} s")

    signal.signal(signal.SIGALRM, time_up)
    errors = []
    for index, source in enumerate(cells):
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
        try:
            exec(compile(source, f"<cell {index}>", "exec"), namespace)  # noqa: S102
        except BaseException as error:  # noqa: BLE001 -- a notebook goes on after an error
            errors.append(f"{type(error).__name__}: {error}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    return errors


def learner_main() -> None:
    """Run the learner's cells, then answer calls of the named function until stdin closes.

    Started by the checker process, inside the sandbox. The protocol streams are the original
    stdin and stdout; the learner's own prints go to stderr.
    """
    inbox = os.fdopen(os.dup(0), "rb")
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)
    header, _ = receive(inbox)
    namespace = {"__name__": "__main__", "display": print}
    errors = _run_cells(header["cells"], namespace, header["cell_seconds"])
    fn = namespace.get(header["name"])
    send(outbox, {"ready": callable(fn), "errors": errors,
                  "type": type(fn).__name__})
    while True:
        try:
            request, blobs = receive(inbox)
        except EOFError:
            return
        args = _decode(request["args"], blobs)
        blobs = []
        try:
            reply = {"result": _encode(fn(*args), blobs)}
        except NotImplementedError as error:
            reply = {"stub": str(error)}
        except SystemExit as error:
            reply = {"exit": repr(error.code)}
        except BaseException as error:  # noqa: BLE001 -- the checker turns it into feedback
            blobs = []
            reply = {"error": type(error).__name__, "message": str(error)[:500]}
        send(outbox, reply, blobs)


# --- the checker process -----------------------------------------------------------------------

class _Remote:
    """Stands for the learner's function in the checker process: each call runs in the
    learner process; a call that does not finish (the checker's time limit) ends that process,
    and the next call starts a fresh one.

    :meth:`start` starts the learner process (its imports and cells are not timed as a call);
    a function that is not there is reported by the first call, as feedback."""

    def __init__(self, command: list[str], cells: list[str], name: str, cell_seconds: float):
        self.command, self.cells, self.name = command, cells, name
        self.cell_seconds = cell_seconds
        self.process: subprocess.Popen | None = None
        self.missing: str | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        send(self.process.stdin, {"cells": self.cells, "name": self.name,
                                  "cell_seconds": self.cell_seconds})
        try:
            ready, _ = receive(self.process.stdout)
        except EOFError:
            ready = {"ready": False, "type": "gone", "errors": ["the process ended"]}
        if not ready["ready"]:
            failed = "".join(f"\n  {line}" for line in ready["errors"][:3])
            self.missing = (f"`{self.name}` is not defined as a function by the cells it needs "
                            f"(it is {ready['type']}){':' if failed else '.'}{failed}")
            self.close()

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __call__(self, *args):
        if self.missing:
            raise NameError(self.missing)
        if self.process is None:
            self.start()
            return self(*args)
        try:
            blobs: list[bytes] = []
            send(self.process.stdin, {"args": _encode(args, blobs)}, blobs)
            reply, blobs = receive(self.process.stdout)
        except EOFError:
            self.close()
            raise RuntimeError("your code ended the Python process it ran in") from None
        except BaseException:
            self.close()  # the time limit, or a broken pipe: this process is of no more use
            raise
        if "result" in reply:
            return _decode(reply["result"], blobs)
        if "stub" in reply:
            raise NotImplementedError(reply["stub"])
        if "exit" in reply:
            raise SystemExit(reply["exit"])
        kind = getattr(builtins, reply["error"], None)  # ValueError stays a ValueError
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            kind = type(reply["error"], (Exception,), {})
        raise kind(reply["message"])


def checker_main() -> None:
    """Judge one answer: read the job (JSON on stdin), print the verdict (JSON on stdout)."""
    job = json.loads(sys.stdin.read())
    from eanet_course.checks import _core

    import eanet_course.checks as checks
    _core.TIME_LIMIT_S = float(job["call_seconds"])
    check = getattr(checks, job["checker"])
    remote = _Remote(job["learner"], job["cells"], job["name"], job["cell_seconds"])
    try:
        remote.start()
        result = check(remote)
    finally:
        remote.close()
    print(json.dumps({"passed": bool(result.passed), "message": result.message}))


def shared_main() -> None:
    """For :data:`OBJECT_CHECKERS`: import the checker, then run the learner's cells, then
    judge, in this one (sandboxed) process. The verdict goes to a copy of stdout made before
    any learner code ran; the learner's prints go to stderr."""
    verdict = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    job = json.loads(sys.stdin.read())
    from eanet_course.checks import _core

    import eanet_course.checks as checks
    _core.TIME_LIMIT_S = float(job["call_seconds"])
    check, result_type = getattr(checks, job["checker"]), _core.CheckResult
    namespace = {"__name__": "__main__", "display": print}
    errors = _run_cells(job["cells"], namespace, job["cell_seconds"])
    if job["name"] not in namespace:
        failed = "".join(f"\n  {line}" for line in errors[:3])
        result = result_type(False, f"✗ {job['checker']}: `{job['name']}` is not defined by the "
                                    f"cells it needs.{failed}")
    else:
        result = check(namespace[job["name"]])
    passed = type(result) is result_type and object.__getattribute__(result, "passed") is True
    verdict.write(json.dumps({"passed": passed, "message": str(result.message)}) + "\n")
    verdict.flush()
    os._exit(0)  # no learner atexit hook may write after the verdict


# --- the grader's side -------------------------------------------------------------------------

def _bootstrap(package: str, main: str) -> list[str]:
    """``python -I`` that imports this module from ``package`` only, and runs ``main``."""
    code = (f"import sys; sys.path.insert(0, {package!r}); "
            f"from eanet_course.grading import fresh; fresh.{main}()")
    return [sys.executable, "-I", "-c", code]


def recheck(cells: list[str], checker: str, name: str, sandbox, workdir: str | Path | None = None
            ) -> Verdict:
    """Judge the function (or class) ``name`` that ``cells`` define with ``checks.<checker>``,
    out of any kernel: see the module's docstring.

    ``cells`` are the submission's code cells before the checker cell; ``sandbox`` a
    :class:`~eanet_course.grading.sandbox.Sandbox`. Never raises on the learner's code.
    """
    from eanet_course.grading.sandbox import PACKAGE_INSIDE, ProcessGroup

    limits = sandbox.limits
    inside = PACKAGE_INSIDE if sandbox.bwrap else str(sandbox.package)
    needed = program(cells, {name})
    job = {"checker": checker, "name": name, "cells": needed,
           "call_seconds": limits.call_seconds, "cell_seconds": limits.cell_seconds}
    shared = checker in OBJECT_CHECKERS
    # The whole re-check gets the time of each cell it runs plus each call it may make.
    seconds = limits.cell_seconds * (len(needed) + 1) + limits.call_seconds * 12
    group = ProcessGroup.make(limits.processes)
    with tempfile.TemporaryDirectory(prefix="eanet-recheck-") as scratch:
        work = Path(workdir) if workdir else Path(scratch)
        learner = sandbox.wrap(_bootstrap(inside, "shared_main" if shared else "learner_main"),
                               work, group=group, seconds=seconds)
        if shared:
            command = learner
        else:
            job["learner"] = learner
            command = _bootstrap(str(sandbox.package), "checker_main")
        try:
            done = subprocess.run(command, input=json.dumps(job), capture_output=True,
                                  text=True, timeout=seconds, cwd=work,
                                  env=sandbox.environment() if not shared else None)
            line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
            answer = json.loads(line)
            passed, message = answer["passed"] is True, str(answer["message"])
        except subprocess.TimeoutExpired:
            passed, message = False, (f"✗ {checker}: your code was still running after "
                                      f"{seconds} s, the time this re-check may take.")
        except (ValueError, KeyError, TypeError):
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            passed, message = False, (f"✗ {checker}: the re-check gave no verdict (exit status "
                                      f"{done.returncode}): your code ended its process or "
                                      f"wrote over its output.\n{tail}")
        finally:
            if group:
                group.close()
    return Verdict(passed, message, shared)
