"""Benchmarks a learner can rerun: ``python -m eanet_course bench {attention,train,limits}``.

* :mod:`eanet_course.bench.attention` -- time and peak memory of external attention,
  self-attention and ``keras.layers.MultiHeadAttention`` as the number of patches N grows,
  with the log-log slopes that test the linear-complexity claim.
* :mod:`eanet_course.bench.training` -- one training step of the course against the Keras
  example's, and against the machine's matmul rate (FLOPs counted by :mod:`eanet_course.bench.flops`).
* :mod:`eanet_course.bench.limits` -- what external attention can learn across patches, against
  self-attention, on the digit-tile tasks of :mod:`eanet_course.tasks`.

The course ships the full runs of all three as records (:mod:`eanet_course.results`); ``--save``
keeps a learner's own run beside them, and the notebooks show both, each labelled.
``notebooks/MEASURED.md`` says how every figure of the course is measured.
"""
