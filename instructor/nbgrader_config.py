"""nbgrader's settings for the eanet-course course directory (this folder).

Run nbgrader from this folder, with the course's environment on the PATH; `source/` is
generated from `../solutions/` by `python -m eanet_course exercises build` (edit the
solutions, not `source/`). See "For instructors" in the README.
"""

import os

c = get_config()  # noqa: F821 -- provided by Jupyter's config loader
here = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "eanet-course"
# Everything nbgrader writes stays in this folder: the gradebook, the
# release/, submitted/, autograded/ and feedback/ folders, and the exchange that
# `release_assignment` and `collect` use (on a shared JupyterHub, point Exchange.root at the
# hub's exchange instead).
c.CourseDirectory.root = here
c.CourseDirectory.db_url = f"sqlite:///{os.path.join(here, 'gradebook.db')}"
c.Exchange.root = os.path.join(here, "exchange")
c.Exchange.cache = os.path.join(here, "exchange", ".cache")

# Each autograded notebook runs its kernel in a sandbox (bubblewrap: no network, a private
# /tmp, nothing of the course visible), and each checker cell is scored by a re-check of the
# answer in fresh processes, not by what the kernel printed. The limits, including each cell's
# time (an answer that loops forever costs its cell's points, and grading goes on with the next
# cell), are in sandbox.toml, next to this file. `python -m eanet_course grade ASSIGNMENT` adds
# a wall-time and a process limit per submission.
from eanet_course.grading.autograde import configure  # noqa: E402

configure(c, here)
# After a cell's limit nbgrader interrupts the kernel. A kernel busy in TensorFlow can take
# longer than nbclient's default 4 s to answer, and the whole submission then fails to grade;
# with 30 s it is graded, the slow cell counting as an error.
c.ExecutePreprocessor.iopub_timeout = 30

# Autograding runs each notebook top to bottom: the ci profile (the offline digits, a small
# model) keeps the exercises' scaffolds to seconds. Export EANET_PROFILE first to grade
# under another profile.
os.environ.setdefault("EANET_PROFILE", "ci")
# nbgrader gives 0 points to a test cell that writes anything to stderr, a passing one included:
# keep TensorFlow's log lines and Python's warnings out of the graded kernels.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("PYTHONWARNINGS", "ignore")
