"""Shared test set-up: the offline ``ci`` profile, quiet TensorFlow, artefacts in a temp folder.

Set before TensorFlow is imported, and inherited by the notebook kernels that nbval starts.
"""

import os
import tempfile

os.environ.setdefault("EANET_PROFILE", "ci")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# A home of its own for each process that runs tests: under pytest-xdist the workers inherit
# the controller's environment, and two workers must not train into one run folder (the second
# would find it busy). A home the caller set is kept.
if os.environ.get("EANET_HOME", "") == os.environ.get("EANET_TEST_HOME", ""):
    os.environ["EANET_HOME"] = os.environ["EANET_TEST_HOME"] = tempfile.mkdtemp(
        prefix="eanet-home-")
