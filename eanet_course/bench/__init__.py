"""Benchmarks a learner can rerun: ``python -m eanet_course bench {attention,train}``.

* :mod:`eanet_course.bench.attention` -- time and peak memory of external attention,
  self-attention and ``keras.layers.MultiHeadAttention`` as the number of patches N grows,
  with the log-log slopes that test the linear-complexity claim.
* :mod:`eanet_course.bench.training` -- the cost of training the course's models.
"""
