"""Shared test set-up: the offline ``ci`` profile, quiet TensorFlow, artefacts in a temp folder.

Set before TensorFlow is imported, and inherited by the notebook kernels that nbval starts.
"""

import os
import tempfile

os.environ.setdefault("EANET_PROFILE", "ci")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("EANET_HOME", tempfile.mkdtemp(prefix="eanet-home-"))
