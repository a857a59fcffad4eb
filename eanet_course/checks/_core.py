"""The machinery every checker shares: a safe, time-limited call and feedback that teaches.

A checker is a function ``body(fn) -> str`` wrapped by :func:`checker`. The wrapper makes it safe
for a classroom: it never raises (an exception, ``sys.exit``, an endless loop, a stub, a wrong
type or shape, NaN all become feedback), it judges in float32 whatever dtype policy the learner
set, and it restores that policy afterwards. A failure names the likely mistake and points to the
next hint level (:func:`eanet_course.checks.hint`), never to the answer.
"""

from __future__ import annotations

import ctypes
import html
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

NOT_IMPLEMENTED = "not implemented yet"
RTOL, ATOL = 1e-4, 1e-5
#: Seconds one call of the learner's function may take before the checker stops it.
TIME_LIMIT_S = 20.0

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
        return (f'<div style="border-left: 6px solid {colour}; padding: 0.4em 0.8em; '
                f'margin: 0.3em 0"><pre style="margin: 0; white-space: pre-wrap">'
                f"{html.escape(self.message)}</pre></div>")


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
                                          f"judged: {type(e).__name__}: {e}\n"
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


def call(fn: Callable, *args, what: str):
    """``fn(*args)`` on copies of the arrays, under the time limit, with the learner's
    exceptions, ``sys.exit`` and endless loops turned into feedback."""
    args = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)  # in-place edits
    seconds = _limit_s[-1] if _limit_s else TIME_LIMIT_S
    try:
        with np.errstate(all="ignore"):  # overflow and 0/0 are reported as NaN feedback
            return _run_limited(fn, args, seconds)
    except NotImplementedError:
        raise Stub() from None
    except _TimeUp:
        raise Mistake(f"Called with {what}, your function was still running after "
                      f"{seconds:g} s, the time limit of one call (the checker's inputs are "
                      "small: a correct answer takes well under a second). Is there a loop "
                      "that never ends?") from None
    except Refused as e:
        raise Mistake(f"Called with {what}, {e}") from None
    except SystemExit as e:
        raise Mistake(f"Called with {what}, your function called sys.exit({e.code!r}) (or "
                      "exit()/quit()). A function returns its result; it never ends the "
                      "program.") from None
    except (Stub, Mistake):
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 -- any learner error becomes feedback
        raise Mistake(f"Called with {what}, your function raised "
                      f"{type(e).__name__}: {e}") from None


def to_array(value, label: str, what: str) -> np.ndarray:
    """``value`` (NumPy, a tensor, a list...) as a float64 array, or feedback on what came back."""
    if value is None:
        raise Mistake(f"Called with {what}, your function returned None instead of {label}: "
                      "is the `return` missing?")
    if type(value).__name__ == "KerasTensor":
        raise Mistake(f"Called with {what}, your function returned a symbolic KerasTensor "
                      f"({label}): this exercise takes and returns arrays. Compute on the "
                      "inputs you are given.")
    try:
        if hasattr(value, "numpy") and callable(value.numpy):  # tf / torch tensors, variables
            value = value.numpy()
        elif isinstance(value, (list, tuple)):
            value = [v.numpy() if hasattr(v, "numpy") and callable(v.numpy) else v
                     for v in value]
        array = np.asarray(value)
        if array.dtype == object or np.iscomplexobj(array):
            raise TypeError
        return array.astype(np.float64)
    except (TypeError, ValueError):
        raise Mistake(f"Called with {what}, {label} should be an array of numbers but your "
                      f"function returned {type(value).__name__}: {value!r:.80}") from None


def pair(value, names: tuple[str, str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays of a returned pair, or feedback naming what is missing."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Mistake(f"Called with {what}, expected a pair ({names[0]}, {names[1]}) but your "
                      f"function returned {type(value).__name__}: {value!r:.80}\n"
                      f"Return both: first {names[0]}, then {names[1]}.")
    return to_array(value[0], names[0], what), to_array(value[1], names[1], what)


def preview(a: np.ndarray) -> str:
    return np.array2string(a.reshape(-1)[:6], precision=4, suppress_small=True)


def close(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> bool:
    return (got.shape == expected.shape
            and bool(np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=False)))


def compare(got: np.ndarray, expected: np.ndarray, label: str, what: str,
            mistakes: dict[str, np.ndarray] | None = None, rtol: float = RTOL,
            atol: float = ATOL, not_finite: str | None = None) -> None:
    """Raise feedback unless ``got`` matches ``expected``; name a known mistake it matches.

    ``not_finite`` explains NaN or inf in ``got`` on this input (default: the generic advice).
    """
    if close(got, expected, rtol, atol):
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
        if got.size == expected.size and sorted(got.shape) == sorted(expected.shape):
            lines.append("Same sizes in another order: an axis is misplaced.")
    elif not np.all(np.isfinite(got)):
        lines.append("Likely mistake: " + (not_finite or (
            "your result contains NaN or inf. An exponential overflows for large inputs "
            "unless the largest value along the same axis is subtracted first, and a sum "
            "that can be 0 must never be a divisor.")))
    else:
        lines.append(f"The largest difference is {np.max(np.abs(got - expected)):.3g}.")
    raise Mistake("\n".join(lines))


def fresh_rng() -> np.random.Generator:
    """An unseeded generator: a case no learner can have seen before (defeats cached or
    hard-coded results)."""
    return np.random.default_rng()
