"""Grading a class that a student cannot fool or break.

- :mod:`~eanet_course.grading.fresh`: each checker cell's answer judged again in fresh
  processes, from the submission's source: the checker never runs where the learner's code ran
  (:func:`~eanet_course.grading.fresh.recheck`);
- :mod:`~eanet_course.grading.sandbox`: the sandbox a submission's code runs in (bubblewrap) and
  its limits (``instructor/sandbox.toml``);
- :mod:`~eanet_course.grading.autograde` (needs nbgrader, the ``[instructor]`` extra): nbgrader's
  autograde with both, and ``python -m eanet_course grade ASSIGNMENT``.

What the sandbox guarantees and what it does not: "For instructors" in the README.
"""

from eanet_course.grading.fresh import OBJECT_CHECKERS, Verdict, program, recheck
from eanet_course.grading.sandbox import LIMITS_FILE, Limits, Sandbox, readonly_package

__all__ = ["LIMITS_FILE", "OBJECT_CHECKERS", "Limits", "Sandbox", "Verdict", "program",
           "readonly_package", "recheck"]
