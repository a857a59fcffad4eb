"""``python -m eanet_course grade ASSIGNMENT [--course DIR]`` (registered by the CLI)."""

from __future__ import annotations

import argparse


def _grade(args: argparse.Namespace) -> int:
    try:
        from eanet_course.grading.autograde import grade
    except ImportError as error:
        raise ValueError(f"grading needs nbgrader ({error}): install the instructor extra, "
                         "pip install -e '.[instructor]' (make instructor).") from error
    results = grade(args.assignment, args.course)
    failed = [r.student for r in results if r.score is None]
    print(f"{len(results) - len(failed)} of {len(results)} submissions of {args.assignment} "
          f"graded into {args.course}/gradebook.db"
          + (f"; not graded: {', '.join(failed)}." if failed else
             f". Next: cd {args.course} && nbgrader export."))
    return 1 if failed else 0


def add_grade(commands) -> None:
    """Add the ``grade`` subcommand to the CLI's subparsers."""
    grade = commands.add_parser(
        "grade", help="autograde every submission of an assignment, each in a sandbox",
        description="Run nbgrader's autograde for each submission in DIR/submitted/, one "
                    "submission at a time, inside a sandbox (bubblewrap where installed): no "
                    "network, a private /tmp, nothing of the course visible, the limits of "
                    "DIR/sandbox.toml. Checker cells are scored by a re-check in fresh "
                    "processes. The gradebook is left ready for `nbgrader export`.")
    grade.add_argument("assignment", help="the assignment's name, e.g. 01_patches")
    grade.add_argument("--course", default="instructor", metavar="DIR",
                       help="the nbgrader course directory (default: instructor)")
    grade.set_defaults(handler=_grade)
