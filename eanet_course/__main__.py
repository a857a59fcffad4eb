"""``python -m eanet_course``: see :mod:`eanet_course.cli`."""

import sys

from eanet_course.cli import main

if __name__ == "__main__":
    sys.exit(main())
