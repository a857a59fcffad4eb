"""The machinery every checker shares: a safe, time-limited call and feedback that teaches.

A checker is a function ``body(fn) -> str`` wrapped by :func:`checker`. The wrapper makes it safe
for a classroom: it never raises (an exception, ``sys.exit``, an endless loop, a stub, a wrong
type or shape, NaN all become feedback), it judges in float32 whatever dtype policy the learner
set, and it restores that policy afterwards. The learner's function gets the checker's own input
arrays, compared with a snapshot after the call (an in-place edit is feedback); converting its
result to plain NumPy counts inside the time limit. Every failure ends in a "Likely mistake:"
line: a known mistake of the exercise, or else :func:`diagnose`'s account of how the result
relates to the right one (axes swapped or squeezed, entries dropped or reordered, off by a
factor or a shift, and where the values differ). It points to the next hint level
(:func:`eanet_course.checks.hint`), never to the answer.
"""

from __future__ import annotations

import copy
import ctypes
import html
import inspect
import itertools
import os
import re
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

NOT_IMPLEMENTED = "not implemented yet"
RTOL, ATOL = 1e-4, 1e-5
#: Seconds one call of the learner's function may take before the checker stops it.
TIME_LIMIT_S = 20.0

#: The right results of the checker now running (a cached or stored answer matches one).
_seen: list[np.ndarray] = []

#: The highest hint level each exercise's learner has asked for (``hint`` records it).
hints_seen: dict[str, int] = {}


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one checker: ``passed`` and the feedback ``message`` (plain text)."""

    passed: bool
    message: str

    @property
    def not_implemented(self) -> bool:
        """True when the learner's function is still the exercise's stub."""
        return not self.passed and NOT_IMPLEMENTED in self.message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        colour = "#1b7f3b" if self.passed else "#9a6700" if self.not_implemented else "#b42318"
        # JupyterLab's output <pre> breaks words anywhere (word-break: break-all): the box sets
        # its own wrapping, by words, and shows `code spans` as code.
        return (f'<div style="border-left: 6px solid {colour}; padding: 0.4em 0.8em; '
                f'margin: 0.3em 0"><pre style="margin: 0; white-space: pre-wrap; '
                f'word-break: normal; overflow-wrap: break-word">'
                f"{code_spans(html.escape(self.message))}</pre></div>")


def code_spans(escaped: str) -> str:
    """HTML-escaped text with each `code span` in <code> (the backticks dropped)."""
    return re.sub(r"`([^`\n]+)`", r'<code style="word-break: normal">\1</code>', escaped)


class Stub(Exception):
    """The learner's function raised ``NotImplementedError``."""


class Mistake(Exception):
    """Feedback for the learner: what was expected, what came back, the likely mistake."""


class Refused(BaseException):
    """Raised inside the learner's function when it does what the exercise forbids (a
    ``BaseException``, so that the learner's ``except Exception`` does not swallow it); the
    message is the feedback."""


class _TimeUp(BaseException):
    """Raised inside the learner's function when its time is up (not an ``Exception``, so that
    an ``except Exception`` in the learner's code does not swallow it)."""


def next_hint(exercise: str) -> str:
    """The line that sends the learner to the next hint level of ``exercise``."""
    level = min(3, hints_seen.get(exercise, 0) + 1)
    return f"Stuck? `checks.hint({exercise!r}, {level})` gives hint {level} of 3."


@contextmanager
def float32_policy() -> Iterator[None]:
    """Keras' dtype policy and floatx set to float32 for the checker's work, then restored.

    Keras is touched only when the learner's session has imported it (otherwise no policy can
    have been changed, and a NumPy exercise stays free of TensorFlow's import time).
    """
    keras = sys.modules.get("keras")
    if keras is None:
        yield
        return
    policy, floatx = keras.config.dtype_policy(), keras.config.floatx()
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        keras.config.set_dtype_policy(policy)


def checker(exercise: str, limit_factor: float = 1.0) -> Callable:
    """Turn ``body(fn)`` (which returns a success note or raises :class:`Mistake`) into a safe
    checker for the exercise named ``exercise`` (the name :func:`hint` knows it by).

    Each call of the learner's function may take ``limit_factor * TIME_LIMIT_S`` seconds (more
    for checkers that build Keras models).
    """

    def decorate(body: Callable) -> Callable[[Callable], CheckResult]:
        name = body.__name__

        def check(fn: Callable) -> CheckResult:
            if not callable(fn):
                return CheckResult(False, f"✗ {name}: expected your function, got "
                                          f"{type(fn).__name__} {fn!r:.60}.\nPass the function "
                                          "itself, without calling it: "
                                          f"{name}(my_function).")
            _seen.clear()
            try:
                with float32_policy(), _limit(limit_factor * TIME_LIMIT_S), \
                        np.errstate(all="ignore"):  # wrong answers may divide by 0
                    note = body(fn)
            except Stub:
                return CheckResult(False, f"… {name}: {NOT_IMPLEMENTED}. Replace the "
                                          "`raise NotImplementedError()` with your code, then run "
                                          f"this cell again.\nStuck before you start? "
                                          f"`checks.hint({exercise!r}, 1)` gives the idea.")
            except Mistake as mistake:
                return CheckResult(False, f"✗ {name}: not right yet.\n{mistake}\n"
                                          + next_hint(exercise))
            except KeyboardInterrupt:
                raise
            except BaseException as e:  # noqa: BLE001 -- a checker never raises on learner code
                return CheckResult(False, f"✗ {name}: not right yet.\nYour code could not be "
                                          f"judged: {type(e).__name__}: {str(e)[:400]}"
                                          f"{_learner_line(e)}.\n{explain_error(e)}\n"
                                          + next_hint(exercise))
            return CheckResult(True, f"✓ {name}: correct. {note}")

        # Not functools.wraps: help() would show body's signature, which returns a str.
        check.__name__, check.__qualname__, check.__doc__ = name, body.__qualname__, body.__doc__
        check.exercise = exercise
        return check

    return decorate


# ----------------------------------------------------------------------------------------------
# Time limit: SIGALRM on the main thread (it stops Python loops and sleeps); elsewhere a watchdog
# that raises in the calling thread. Neither can stop one long C call (a TensorFlow op) midway:
# the limit takes effect when it returns.

_limit_s: list[float] = []  # the limit in force (a stack: checkers may call one another)


@contextmanager
def _limit(seconds: float) -> Iterator[None]:
    _limit_s.append(seconds)
    try:
        yield
    finally:
        _limit_s.pop()


def _run_limited(fn: Callable, args: tuple, seconds: float):
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def time_up(signum, frame):
            raise _TimeUp()

        previous = signal.signal(signal.SIGALRM, time_up)
        # Repeats every 0.5 s after the first alarm, in case the learner's code catches one.
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
        try:
            return fn(*args)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    lock, state = threading.Lock(), {"done": False}
    thread_id = threading.get_ident()

    def watchdog():
        with lock:
            if not state["done"]:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                           ctypes.py_object(_TimeUp))

    timer = threading.Timer(seconds, watchdog)
    timer.daemon = True
    timer.start()
    try:
        return fn(*args)
    finally:
        with lock:
            state["done"] = True
        timer.cancel()


def _snapshot(value):
    """A copy of an array input (or a list of numbers) to compare with after the call; None for
    anything else (models, layers, tensors: the checker does not watch those)."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return copy.deepcopy(value)
    return None


def _unchanged(value, snapshot) -> bool:
    if isinstance(snapshot, np.ndarray):
        return (isinstance(value, np.ndarray) and value.shape == snapshot.shape
                and bool(np.array_equal(value, snapshot, equal_nan=snapshot.dtype.kind == "f")))
    try:
        return bool(np.array_equal(np.asarray(value, dtype=object),
                                   np.asarray(snapshot, dtype=object)))
    except (TypeError, ValueError):
        return repr(value) == repr(snapshot)


def _parameter_names(fn: Callable, count: int) -> list[str]:
    try:
        names = [p.name for p in inspect.signature(fn).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    return [f"`{names[i]}`" if i < len(names) else f"argument {i + 1}" for i in range(count)]


#: NumPy and TensorFlow errors learners meet, and what they usually mean.
#: Errors of functions that take one number, called on a whole sequence.
SCALAR_FUNCTION_ERRORS = ("only length-1 arrays", "only size-1 arrays",
                          "only 0-dimensional arrays", "must be real number, not",
                          "only integer scalar arrays")

ERROR_CAUSES = [
    (("axes don't match array",),
     "a transpose with a fixed list of axes, written for one number of axes: the inputs here "
     "have another. Swap the last two axes only (np.swapaxes(k, -1, -2)) and count axes from "
     "the end."),
    (("'float' object cannot be interpreted as an integer", "must be int, not float"),
     "a size computed with `/`, which gives a float: a shape needs integers, so use integer "
     "division `//`."),
    (SCALAR_FUNCTION_ERRORS,
     "a function that takes one number (math.log, math.exp, float(...)) given a whole "
     "sequence: use NumPy's, which works element by element (np.log, np.exp)."),
    (("not aligned", "matmul: input operand", "incompatible shapes", "matrix size-incompatible",
      "dimensions must be equal", "operands could not be broadcast"),
     "two arrays whose axes do not match in a product or an element-wise operation: check "
     "which axes you transpose (`.T` reverses every axis of an array with leading axes; "
     "np.swapaxes(k, -1, -2) swaps the last two only), and use keepdims=True on a sum or "
     "maximum that must broadcast back."),
    (("cannot reshape", "reshape", "input to reshape"),
     "a reshape to sizes that do not multiply to the array's size: read every size from the "
     "input's shape (or the arguments), never a fixed number."),
    (("out of bounds for array of dimension", "axis", "invalid reduction dimension"),
     "an axis the input does not have: count axes from the end (-1, -2) so that any number of "
     "leading axes works."),
    (("'list' object has no attribute", "'tuple' object has no attribute",
      "'float' object has no attribute", "'int' object has no attribute",
      "list indices must be"),
     "an array method used on a Python list or scalar: turn the inputs into arrays first "
     "(np.asarray)."),
    (("nonetype",), "a value that is None: a function (or an in-place method such as "
                    "list.sort()) that returns nothing."),
    (("unsupported operand", "can't multiply sequence", "can only concatenate"),
     "arithmetic on Python lists or tuples: turn them into arrays first (np.asarray)."),
]


def _learner_line(error: BaseException) -> str:
    """`` at line L of your code: `source` `` for the deepest traceback frame outside the
    libraries, or an empty string."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if "site-packages" not in f.filename
            and os.sep + "eanet_course" + os.sep not in f.filename
            and not f.filename.startswith("<frozen")]
    if not mine:
        return ""
    frame = mine[-1]
    code = (frame.line or "").strip()
    return f" at line {frame.lineno} of {frame.name}" + (f": `{code}`" if code else "")


def explain_error(error: BaseException) -> str:
    """A 'Likely mistake:' line for an error raised by the learner's code."""
    text = f"{type(error).__name__}: {error}".lower()
    for needles, cause in ERROR_CAUSES:
        if any(needle in text for needle in needles):
            return f"Likely mistake: {cause}"
    return ("Likely mistake: your code fails on these inputs, which the contract allows (look "
            "at the line above, and try your function on them yourself).")


def _guarded(fn: Callable, args: tuple, what: str, doing: str = "your function"):
    """``fn(*args)`` under the time limit, every way of failing turned into feedback."""
    seconds = _limit_s[-1] if _limit_s else TIME_LIMIT_S
    try:
        with np.errstate(all="ignore"):  # overflow and 0/0 are reported as NaN feedback
            return _run_limited(fn, args, seconds)
    except NotImplementedError:
        raise Stub() from None
    except _TimeUp:
        raise Mistake(f"Called with {what}, {doing} was still running after {seconds:g} s, the "
                      "time limit of one call (the checker's inputs are small: a correct answer "
                      "takes well under a second).\nLikely mistake: a loop that never ends, or "
                      "work hidden in the result's conversion to an array.") from None
    except Refused as e:
        raise Mistake(f"Called with {what}, {e}") from None
    except SystemExit as e:
        raise Mistake(f"Called with {what}, your function called sys.exit({e.code!r}) (or "
                      "exit()/quit()).\nLikely mistake: ending the program; a function returns "
                      "its result.") from None
    except (Stub, Mistake):
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 -- any learner error becomes feedback
        raise Mistake(f"Called with {what}, {doing} raised {type(e).__name__}: "
                      f"{str(e)[:400]}{_learner_line(e)}.\n{explain_error(e)}") from None


def call(fn: Callable, *args, what: str):
    """``fn(*args)`` under the time limit, with the learner's exceptions, ``sys.exit`` and
    endless loops turned into feedback; an array or list argument changed in place is feedback
    too (the checker's inputs are the learner's to read, not to overwrite)."""
    snapshots = [_snapshot(a) for a in args]
    result = _guarded(fn, args, what)
    changed = [i for i, (a, s) in enumerate(zip(args, snapshots))
               if s is not None and not _unchanged(a, s)]
    if changed:
        name = _parameter_names(fn, len(args))[changed[0]]
        raise Mistake(f"Called with {what}, your function changed its input {name} in place: "
                      "the caller's array is not the same after the call.\nLikely mistake: an "
                      "in-place operation on an input (`x -= m`, `x /= s`, `x[...] = ...`, "
                      "`np.exp(x, out=x)`, `list.sort()`). Compute into a new array (`x = x - m`) "
                      "and leave the inputs as they were.")
    return result


def convert(fn: Callable, value, what: str, label: str):
    """``fn(value)`` (a conversion of the learner's result) under the time limit: work hidden in
    ``__array__``, ``__eq__`` or ``__float__`` counts as the learner's."""
    return _guarded(fn, (value,), what, doing=f"converting your {label}")


def _float_array(value) -> np.ndarray | None:
    """``value`` as a plain float64 ndarray, or None when it is not an array of numbers."""
    if hasattr(value, "numpy") and callable(value.numpy):  # tf / torch tensors, variables
        value = value.numpy()
    elif isinstance(value, (list, tuple)):
        value = [v.numpy() if hasattr(v, "numpy") and callable(v.numpy) else v for v in value]
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        if isinstance(value, (list, tuple)):
            return None
        raise
    if array.dtype == object or np.iscomplexobj(array) or array.dtype.kind in "SUVM":
        return None
    return np.array(array, dtype=np.float64)  # a plain ndarray, whatever came back


def to_array(value, label: str, what: str) -> np.ndarray:
    """``value`` (NumPy, a tensor, a list...) as a plain float64 array, or feedback on what came
    back. The conversion runs under the time limit."""
    if value is None:
        raise Mistake(f"Called with {what}, your function returned None instead of {label}.\n"
                      "Likely mistake: the `return` is missing (or it returns the result of an "
                      "in-place method, which is None).")
    if type(value).__name__ == "KerasTensor":
        raise Mistake(f"Called with {what}, your function returned a symbolic KerasTensor "
                      f"({label}).\nLikely mistake: this exercise takes and returns arrays; "
                      "compute on the inputs you are given, without keras.Input or layers.")
    kind = type(value).__name__
    array = convert(_float_array, value, what, label)
    if array is not None:
        return array
    if isinstance(value, (tuple, list)) and value and all(
            hasattr(v, "shape") or isinstance(v, (list, tuple)) for v in value):
        likely = (f"a {kind} of arrays of different shapes: stack them into one array "
                  "(np.stack), or return one array.")
    elif isinstance(value, str):
        likely = "a text where an array belongs."
    else:
        likely = f"a {kind} where an array of numbers belongs."
    raise Mistake(f"Called with {what}, {label} should be an array of numbers but your "
                  f"function returned {kind}: {_short(value)}\nLikely mistake: {likely}")


def _short(value) -> str:
    try:
        return " ".join(repr(value).split())[:80]
    except Exception:  # noqa: BLE001 -- a learner's __repr__ may fail
        return f"<{type(value).__name__}>"


def pair(value, names: tuple[str, str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays of a returned pair, or feedback naming what is missing."""
    kind = type(value).__name__
    if isinstance(value, (tuple, list)):
        items = convert(lambda v: list(tuple.__iter__(v) if isinstance(v, tuple)
                                       else list.__iter__(v)), value, what, "pair")
    else:
        items = None
    if items is None or len(items) != 2:
        if items is None:
            likely = (f"only one result is returned; return both, `return {names[0]}, "
                      f"{names[1]}`." if hasattr(value, "shape") else
                      f"return both, first {names[0]}, then {names[1]}.")
        else:
            likely = (f"a {kind} of {len(items)} items; return exactly two, first {names[0]}, "
                      f"then {names[1]}.")
        raise Mistake(f"Called with {what}, expected a pair ({names[0]}, {names[1]}) but your "
                      f"function returned {kind}: {_short(value)}\nLikely mistake: {likely}")
    return to_array(items[0], names[0], what), to_array(items[1], names[1], what)


def ordered(got: tuple[np.ndarray, np.ndarray], expected: tuple[np.ndarray, np.ndarray],
            names: tuple[str, str], what: str, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Feedback when a returned pair holds the right two results in the wrong order."""
    if close(got[0], expected[1], rtol, atol) and close(got[1], expected[0], rtol, atol):
        raise Mistake(f"Called with {what}, your pair holds the right {names[1]} first and the "
                      f"right {names[0]} second.\nLikely mistake: the pair in the wrong order; "
                      f"return ({names[0]}, {names[1]}).")


def preview(a: np.ndarray) -> str:
    return np.array2string(a.reshape(-1)[:6], precision=4, suppress_small=True)


def close(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return (got.shape == expected.shape
            and bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=False)))


def compare(got: np.ndarray, expected: np.ndarray, label: str, what: str,
            mistakes: dict[str, np.ndarray] | None = None, rtol: float = RTOL,
            atol: float = ATOL, not_finite: str | None = None,
            axes: tuple[str, ...] | None = None) -> None:
    """Raise feedback unless ``got`` matches ``expected``; name a known mistake it matches, or
    else say how it relates to the right answer (:func:`diagnose`).

    ``not_finite`` explains NaN or inf in ``got`` on this input (default: the generic advice);
    ``axes`` names the axes of ``expected`` (``("B", "N", "S")``) for the feedback.
    """
    if close(got, expected, rtol, atol):
        _seen.append(expected)
        return
    for explanation, wrong in (mistakes or {}).items():
        if close(got, wrong, rtol, atol):
            raise Mistake(f"Called with {what}, your {label} is a classic wrong answer.\n"
                          f"Likely mistake: {explanation}")
    lines = [f"Called with {what}:",
             f"  expected {label} of shape {expected.shape}, starting {preview(expected)}",
             f"  got      {label} of shape {got.shape}, starting {preview(got)}"]
    if got.shape != expected.shape:
        lines.append(f"The shapes differ: {got.shape} instead of {expected.shape}.")
    elif not np.all(np.isfinite(got)):
        bad = np.argwhere(~np.isfinite(got))
        lines.append(f"{len(bad)} of {got.size} values are NaN or inf (the first at index "
                     f"{tuple(int(i) for i in bad[0])}).")
        lines.append("Likely mistake: " + (not_finite or (
            "an exponential that overflows for large inputs (subtract the largest value along "
            "the same axis first), or a division by a sum that can be 0.")))
        raise Mistake("\n".join(lines))
    else:
        lines.append(f"The largest difference is {np.max(np.abs(got - expected)):.3g}.")
    lines.append("Likely mistake: " + diagnose(got, expected, axes, rtol, atol))
    raise Mistake("\n".join(lines))


# ----------------------------------------------------------------------------------------------
# How a wrong result relates to the right one: the general diagnoses behind "Likely mistake".


def _axis(i: int, ndim: int, axes: tuple[str, ...] | None) -> str:
    name = f" ({axes[i]})" if axes and len(axes) == ndim else ""
    return f"axis {i - ndim}{name}"


def _indices(index: list[int], n: int) -> str:
    words = []
    for i in index[:4]:
        words.append("the last" if i == n - 1 else "the first" if i == 0 else f"index {i}")
    more = f" and {len(index) - 4} more" if len(index) > 4 else ""
    return ", ".join(words) + more


def _order_along(got: np.ndarray, expected: np.ndarray, a: int, rtol: float,
                 atol: float) -> list[int] | None:
    """The permutation of ``expected``'s entries along axis ``a`` that gives ``got``, or None."""
    n = got.shape[a]
    g = np.moveaxis(got, a, 0).reshape(n, -1)
    e = np.moveaxis(expected, a, 0).reshape(n, -1)
    order = [int(np.argmin(np.abs(e - row).max(axis=1))) for row in g]
    if sorted(order) != list(range(n)) or not np.allclose(g, e[order], rtol=rtol, atol=atol):
        return None
    return order


def _factor_per_index(got: np.ndarray, expected: np.ndarray, nonzero: np.ndarray,
                      a: int) -> np.ndarray:
    """The median of ``got / expected`` over every axis but ``a`` (kept, length 1 elsewhere),
    over the entries where ``expected`` is not 0."""
    with np.errstate(all="ignore"):
        full = np.where(nonzero, got / np.where(nonzero, expected, 1), np.nan)
    return np.nanmedian(full, axis=tuple(i for i in range(got.ndim) if i != a), keepdims=True)


def diagnose(got: np.ndarray, expected: np.ndarray, axes: tuple[str, ...] | None = None,
             rtol: float = RTOL, atol: float = ATOL) -> str:
    """What differs between ``got`` and ``expected``, and where, in words: axes reordered or
    squeezed, entries dropped or reordered along an axis, a constant factor or shift, or the
    axis and indices where the values differ."""
    nd = expected.ndim
    if got.shape != expected.shape:
        return _diagnose_shape(got, expected, axes, rtol, atol)
    if any(close(got, earlier, rtol, atol) for earlier in _seen):
        return ("your result is the right answer for an earlier call with the same shape: "
                "results stored (cached by shape, or computed once) instead of computed from "
                "each call's inputs.")
    scale = float(np.max(np.abs(expected))) if expected.size else 0.0
    if np.all(np.isfinite(got)) and np.allclose(got, expected, rtol=3e-3, atol=3e-3 * scale):
        return ("your values are close but agree only to about 3 significant digits: a "
                "low-precision dtype (float16 or bfloat16) somewhere; compute in float32 or "
                "float64.")
    # Same shape: a reorder of axes of equal length, a flip, a reorder along one axis.
    if nd <= 6:
        for perm in itertools.permutations(range(nd)):
            if perm != tuple(range(nd)) and expected.transpose(perm).shape == got.shape and \
                    close(got, expected.transpose(perm), rtol, atol):
                moved = [i for i in range(nd) if perm[i] != i]
                return ("the right values with axes swapped: your "
                        + " and ".join(_axis(i, nd, axes) for i in moved)
                        + " are exchanged (a transpose missing, extra, or with the wrong axis "
                          "order).")
    for a in range(nd):
        if got.shape[a] > 1 and close(got, np.flip(expected, a), rtol, atol):
            return f"the right values in reverse order along {_axis(a, nd, axes)}."
    for a in range(nd):
        if got.shape[a] > 1:
            order = _order_along(got, expected, a, rtol, atol)
            if order is not None and order != list(range(len(order))):
                return (f"the right entries in the wrong order along {_axis(a, nd, axes)}: "
                        f"yours come in the order {order[:8]}{'...' if len(order) > 8 else ''}.")
    nonzero = np.abs(expected) > 1e-9
    if np.any(nonzero):
        ratio = got[nonzero] / expected[nonzero]
        r = float(np.median(ratio))
        if np.allclose(ratio, r, rtol=1e-3) and np.allclose(got[~nonzero], 0, atol=atol):
            return (f"your values are the right ones times {r:.4g}: a scale factor is off (a "
                    "division or multiplication missing, extra or by the wrong number).")
    shift = float(np.median(got - expected))
    if abs(shift) > atol and np.allclose(got, expected + shift, rtol=rtol, atol=atol):
        return (f"your values are the right ones plus {shift:.4g}: a shift (a mean or an offset) "
                "is missing, extra, or computed from the wrong data.")
    if np.all(got == np.round(got)) and not np.allclose(expected, np.round(expected)):
        return ("every value of yours is a whole number where the right ones are fractions: an "
                "integer cast (astype(int) or uint8) or an integer division.")
    if np.allclose(np.sort(got, axis=None), np.sort(expected, axis=None), rtol=rtol, atol=atol):
        return ("your values are the right ones, but at other positions: the order in which "
                "they are laid out (which entry goes where) is wrong.")
    bad = ~np.isclose(got, expected, rtol=rtol, atol=atol)
    where, few = [], False
    for a in range(nd):
        rows = np.flatnonzero(bad.any(axis=tuple(i for i in range(nd) if i != a)))
        if 0 < rows.size < got.shape[a]:
            where.append(f"only at {_indices(rows.tolist(), got.shape[a])} along "
                         f"{_axis(a, nd, axes)}")
            few = few or 2 * rows.size <= got.shape[a]
    if not few and np.any(nonzero) and nd > 1:
        for a in range(nd):
            if got.shape[a] > 1:
                per = _factor_per_index(got, expected, nonzero, a)
                if np.all(np.isfinite(per)) and np.allclose(
                        got, expected * per, rtol=rtol * 10, atol=atol * 10):
                    return (f"your values are the right ones up to one factor per index of "
                            f"{_axis(a, nd, axes)}: a normalization (a division by a sum or a "
                            "standard deviation) along the wrong axis, missing, or extra.")
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    place = ("; the differences lie " + " and ".join(where)) if where else (
        "; they are spread over every index of every axis")
    return (f"{int(bad.sum())} of {got.size} values differ, the first at index {first} (expected "
            f"{expected[first]:.5g}, got {got[first]:.5g}){place}. Compare that part of your "
            "computation with the contract.")


def _diagnose_shape(got, expected, axes, rtol, atol) -> str:
    nd = expected.ndim
    if got.size == expected.size:
        if got.squeeze().shape == expected.squeeze().shape and close(
                got.reshape(expected.shape), expected, rtol, atol):
            if got.ndim < nd:
                lost = [i for i in range(nd) if expected.shape[i] == 1]
                where = _axis(lost[0], nd, axes) if lost else "an axis"
                return (f"{where}, of length 1 here, is missing from your result: a squeeze "
                        "(np.squeeze, [0], a reshape) drops it. Keep every axis of the "
                        "contract, even of length 1.")
            return (f"your result has an extra axis of length 1 (shape {got.shape}): keepdims, "
                    "[None] or a reshape adds it; return the contract's shape.")
        if got.ndim == nd and nd <= 6:
            for perm in itertools.permutations(range(nd)):
                if expected.transpose(perm).shape == got.shape and close(
                        got, expected.transpose(perm), rtol, atol):
                    return ("the right values with the axes in another order: yours are "
                            "(" + ", ".join((axes[p] if axes and len(axes) == nd else str(p))
                                            for p in perm)
                            + ") where the contract wants ("
                            + ", ".join(axes if axes and len(axes) == nd
                                        else map(str, range(nd)))
                            + "): a transpose is missing or has the wrong axis order.")
        if close(got.reshape(expected.shape), expected, rtol, atol):
            return (f"the right values in the right order, shaped {got.shape}: reshape to "
                    f"{expected.shape}.")
    if got.ndim == nd:
        differ = [i for i in range(nd) if got.shape[i] != expected.shape[i]]
        if len(differ) == 1:
            a = differ[0]
            n, m = expected.shape[a], got.shape[a]
            name = _axis(a, nd, axes)
            if m < n:
                for part, words in ((np.take(expected, range(m), axis=a), "last"),
                                    (np.take(expected, range(n - m, n), axis=a), "first")):
                    if close(got, part, rtol, atol):
                        return (f"the {words} {n - m} entr{'y' if n - m == 1 else 'ies'} along "
                                f"{name} are missing: a range or slice that stops early (an "
                                "off-by-one?).")
                if m == 1:
                    return (f"{name} has length 1 where {n} is expected: it was reduced (a sum, "
                            "mean or maximum over it) instead of kept.")
            if m > n:
                for start in range(m - n + 1):
                    if close(np.take(got, range(start, start + n), axis=a), expected, rtol,
                             atol):
                        return (f"{name} has {m - n} entr{'y' if m - n == 1 else 'ies'} too "
                                "many: a range or slice that goes too far.")
            return (f"{name} has length {m} where the contract gives {n}; every other axis is "
                    "right. Check which size you read or compute for that axis.")
        return (" and ".join(_axis(i, nd, axes) for i in differ) + f" have lengths "
                f"{[got.shape[i] for i in differ]} where the contract gives "
                f"{[expected.shape[i] for i in differ]}.")
    return (f"your result has {got.ndim} axes, the contract's {nd}: "
            f"{got.shape} instead of {expected.shape}.")


def fresh_rng() -> np.random.Generator:
    """An unseeded generator: a case no learner can have seen before (defeats cached or
    hard-coded results)."""
    return np.random.default_rng()


# -- more diagnoses, from how a wrong result relates to the right one: checkers call
# compare_more (or compare_story with their own account) where they would call compare.

def relate(got: np.ndarray, expected: np.ndarray, axes: tuple[str, ...] | None = None,
           rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """A diagnosis :func:`diagnose` does not give, or None: only the first entry along an axis
    kept; the logarithm or exponential of the right values; a factor equal to an axis length
    (a mean for a sum); a factor per index within a percent of 1 (an epsilon); entries in
    blocks whose order, or whose order inside, is reversed."""
    nd = expected.ndim
    if not np.all(np.isfinite(got)):
        return None
    if got.ndim == nd and got.shape != expected.shape:
        differ = [i for i in range(nd) if got.shape[i] != expected.shape[i]]
        if len(differ) == 1 and got.shape[differ[0]] == 1 and expected.shape[differ[0]] > 1 \
                and close(got, np.take(expected, [0], axis=differ[0]), rtol, atol):
            return (f"only the first entry along {_axis(differ[0], nd, axes)} is kept: a [0] "
                    "(or a loop that returns after its first pass) where every entry of that "
                    "axis must be computed.")
        return None
    if got.shape != expected.shape:
        return None
    for a in range(nd):
        first = np.take(got, [0], axis=a)
        if got.shape[a] > 1 and close(first, np.take(expected, [0], axis=a), rtol, atol) \
                and close(got, np.broadcast_to(first, got.shape), rtol, atol):
            return (f"only the first entry along {_axis(a, nd, axes)} is right, and yours "
                    "repeats it for every other index: the result for index 0 computed once "
                    "and copied (or broadcast) instead of one result per index.")
    with np.errstate(all="ignore"):
        if np.all(expected > 0) and close(got, np.log(expected), rtol, atol):
            return ("your values are the logarithms of the right ones: a log-domain result "
                    "(log_softmax, or a logsumexp subtracted) with the final exponential "
                    "missing.")
        if close(got, np.exp(expected), rtol, atol):
            return "your values are the exponentials of the right ones: an extra np.exp."
    nonzero = np.abs(expected) > 1e-9
    if np.any(nonzero) and np.allclose(got[~nonzero], 0, atol=atol):
        ratio = got[nonzero] / expected[nonzero]
        r = float(np.median(ratio))
        if np.allclose(ratio, r, rtol=1e-3) and abs(r - 1) > 1e-3:
            for a in range(nd):
                n = expected.shape[a]
                if n > 1 and (abs(r - n) <= 1e-3 * n or abs(r - 1 / n) <= 1e-3 / n):
                    return (f"your values are the right ones times {r:.4g}, "
                            f"{'the' if r > 1 else '1 over the'} length {n} of "
                            f"{_axis(a, nd, axes)}: a scale factor off by that axis' length "
                            "(a mean where a sum belongs, or a sum where a mean belongs, or a "
                            "division by the count).")
        if nd > 1:
            for a in range(nd):
                per = _factor_per_index(got, expected, nonzero, a)
                if np.all(np.isfinite(per)) and np.all(np.abs(per - 1) < 2e-2) and \
                        np.any(np.abs(per - 1) > 1e-4) and np.allclose(
                            got, expected * per, rtol=1e-5, atol=atol):
                    return (f"your values are the right ones times a factor per index of "
                            f"{_axis(a, nd, axes)} that is within 2% of 1 (from "
                            f"{float(per.min()):.5g} to {float(per.max()):.5g}): a small "
                            "constant, an epsilon, added to a sum in a denominator (or to the "
                            "values). Divide by the plain sum: add no epsilon the contract does not ask for.")
    for a in range(nd):
        n = got.shape[a]
        if n < 4:
            continue
        order = _order_along(got, expected, a, rtol, atol)
        if order is None or order == list(range(n)):
            continue
        for k in range(2, n // 2 + 1):
            if n % k:
                continue
            blocks = np.array(order).reshape(n // k, k)
            starts = blocks[:, 0] // k
            inside_kept = all(list(row) == list(range(row[0], row[0] + k)) for row in blocks)
            if inside_kept and list(starts) == list(range(n // k))[::-1]:
                return (f"the right blocks of {k} entries along {_axis(a, nd, axes)}, but the "
                        "blocks come in reverse order (a loop that runs backwards, or a [::-1] "
                        "on the list of blocks).")
            if all(list(row) == list(range(i * k + k - 1, i * k - 1, -1))
                   for i, row in enumerate(blocks)):
                return (f"along {_axis(a, nd, axes)}, the entries inside each group of {k} come "
                        "in reverse order (a [..., ::-1] on the axis of that group, e.g. the "
                        "channels), while the groups themselves are in place.")
    return None


def compare_more(got: np.ndarray, expected: np.ndarray, label: str, what: str,
                 mistakes: dict[str, np.ndarray] | None = None, rtol: float = RTOL,
                 atol: float = ATOL, not_finite: str | None = None,
                 axes: tuple[str, ...] | None = None) -> None:
    """:func:`compare`, with :func:`relate`'s diagnosis in the "Likely mistake" line where it
    finds one and no known mistake of the exercise matches (:func:`compare_story`)."""
    compare_story(got, expected, label, what, mistakes,
                  lambda: relate(got, expected, axes, rtol, atol), accounts=None, rtol=rtol,
                  atol=atol, not_finite=not_finite, axes=axes)


# -- bank-course: generic helpers for the course group's checkers (exercises 00, 08, 09, 10).

#: Words of the errors that a size fixed in the code raises on inputs of other sizes.
SIZE_ERRORS = ("reshape", "broadcast", "index", "out of bounds", "shape", "size", "dimension",
               "not aligned", "incompatible")

#: The openings of :func:`diagnose`'s accounts that say only how the values differ (a factor, a
#: shift, where), not which step went wrong: a checker's own story may do better.
GENERIC_ACCOUNTS = ("your values are the right ones times", "your values are the right ones plus",
                    "your values are the right ones up to one factor",
                    "values differ, the first at index", "have lengths",
                    "where the contract gives", "axes, the contract's")


def relikely(mistake: Mistake, likely: str) -> Mistake:
    """``mistake`` with its "Likely mistake:" line (and what follows) replaced by ``likely``."""
    text = str(mistake)
    cut = text.find("\nLikely mistake: ")
    return Mistake((text if cut < 0 else text[:cut]) + "\nLikely mistake: " + likely)


def call_sized(fn: Callable, *args, what: str, ran_on: dict[tuple, str]):
    """:func:`call`, with a better "Likely mistake" for a size fixed in the code: the function
    raises on inputs of new shapes after it ran on others. ``ran_on`` maps the shapes of the
    array arguments it ran on to their description; the call adds its own."""
    shapes = tuple(np.shape(a) for a in args if isinstance(a, (np.ndarray, list, tuple)))
    try:
        result = call(fn, *args, what=what)
    except Mistake as mistake:
        head = str(mistake).split("\n")[0]
        if " raised " not in head:
            raise
        if ran_on and shapes not in ran_on and any(word in head.lower() for word in SIZE_ERRORS):
            raise relikely(mistake, f"your function ran on {list(ran_on.values())[-1]} but "
                                    "fails on these inputs, of other shapes: a size fixed in "
                                    "the code (a number of channels, patches, images or units "
                                    "from the notebook?). Read every size from the inputs' "
                                    "shapes or the arguments.") from None
        raise
    ran_on.setdefault(shapes, what)
    return result


def compare_story(got: np.ndarray, expected: np.ndarray, label: str, what: str,
                  mistakes: dict[str, np.ndarray] | None, story: Callable[[], str | None],
                  accounts: tuple[str, ...] | None = GENERIC_ACCOUNTS, **options) -> None:
    """:func:`compare`; where no known mistake fits and :func:`diagnose` can only say how the
    values differ (one of ``accounts``; ``None``: whatever it says), ``story()`` (the checker's
    own account of how ``got`` came about, or None) gives the "Likely mistake" instead."""
    try:
        compare(got, expected, label, what, mistakes, **options)
    except Mistake as mistake:
        text = str(mistake)
        likely = text[text.find("\nLikely mistake: "):]
        if "a classic wrong answer" in text.split("\n")[0] or (accounts is not None and not any(
                account in likely for account in accounts)):
            raise
        told = story()
        if told is None:
            raise
        raise relikely(mistake, told) from None


def rounded(got: np.ndarray, expected: np.ndarray) -> str | None:
    """How ``got`` is ``expected`` rounded (to a whole number, by int() or round(), or to a few
    decimals), in words; None when it is not."""
    if got.shape != expected.shape or not np.all(np.isfinite(got)) or np.allclose(
            expected, np.round(expected)):
        return None
    if np.array_equal(got, np.trunc(expected)) or np.array_equal(got, np.round(expected)):
        return ("your values are the right ones rounded to whole numbers (int(), round() or an "
                "integer cast): return them unrounded.")
    for digits in range(1, 6):
        if np.allclose(got, np.round(expected, digits), rtol=0, atol=1e-12):
            return (f"your values are the right ones rounded to {digits} decimal"
                    f"{'s' if digits > 1 else ''}: return them unrounded (round only when you "
                    "print).")
    return None


def extra_results(result, shape: tuple[int, ...], label: str, what: str) -> None:
    """Feedback when ``result`` is a tuple or list of several arrays, one of them of the
    contract's ``shape``: the learner returned ``label`` together with something else."""
    if not isinstance(result, (tuple, list)) or not 2 <= len(result) <= 4 or not all(
            hasattr(item, "shape") for item in result):
        return
    shapes = [tuple(item.shape) for item in result]
    if shapes.count(tuple(shape)) == 1 and len(set(shapes)) > 1:
        index = shapes.index(tuple(shape))
        raise Mistake(f"Called with {what}, your function returned a {type(result).__name__} of "
                      f"{len(result)} arrays, of shapes {shapes}.\nLikely mistake: {label} is "
                      f"returned together with other results (item {index} has the contract's "
                      f"shape {tuple(shape)}): return {label} alone.")
