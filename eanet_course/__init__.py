"""eanet_course: the helper package of the EANet course (external attention in Keras 3).

Modules, one idea each (import what you need; nothing heavy happens at import time):

- ``config``     -- ``EANetConfig`` and the ``ci`` / ``laptop`` / ``paper`` profiles.
- ``reference``  -- the maths in NumPy: patches, softmax, double normalization, attention.
- ``layers``     -- Keras layers: ``PatchExtract``, ``PatchEmbedding``, ``ExternalAttention``,
  ``SelfAttention``, ``TransformerBlock``.
- ``models``     -- ``build_eanet``, ``build_vit``, ``attention_model``, ``compile_model``.
- ``data``       -- CIFAR-100 and scikit-learn's digits, ``tf.data`` pipelines.
- ``training``   -- ``train`` with TensorBoard, CSV logs, checkpoints and resuming.
- ``viz`` / ``widgets`` -- one-line plots and interactive explorers.
- ``checks`` / ``exercises`` -- exercise checkers and the exercise generator.
- ``bench``      -- the attention-scaling and training-throughput benchmarks.

Importing the package first quiets TensorFlow's C++ start-up log (see ``eanet_course._quiet``;
a ``TF_CPP_MIN_LOG_LEVEL`` you set yourself wins). Command line: ``eanet-course --help``.
"""

from eanet_course import _quiet

_quiet.install()

__version__ = "0.1.0"
