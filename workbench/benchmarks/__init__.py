"""Scientific benchmarks: a dataset, a metric and a presentation protocol, with an identifier,
a version and a citation; each returns :class:`~workbench.scores.Score` records and
contributes a panel to reports.

>>> import workbench.benchmarks as b
>>> b.available()                                  # every name (templates for real-file variants)
>>> bench = b.get("sim-macaque.IT.shared-time-ridge", n_stimuli=100, cache_dir="cache")
>>> bench.score({"name": "BL", "zoo": "bl", "train": False})

One module per family registers its benchmarks: :mod:`.macaque` (temporal encoding),
:mod:`.fmri` (blur de-noising), :mod:`.human` (RT vs uncertainty), :mod:`.replication`
(the seed papers). Other packages add benchmarks through the ``workbench.benchmarks``
entry-point group (:mod:`.registry`).
"""

from .base import Benchmark, Panel, Section, VariantBenchmark
from .registry import available, classes, demo_names, get, lookup, register
# importing a family registers it; this order is the order of available() and of the demo
from . import macaque  # noqa: E402,I001
from . import fmri  # noqa: E402
from . import human  # noqa: E402
from . import replication  # noqa: E402

__all__ = ["Benchmark", "Panel", "Section", "available", "classes", "demo_names", "fmri", "get", "human",
           "lookup", "macaque", "register", "replication", "VariantBenchmark"]
