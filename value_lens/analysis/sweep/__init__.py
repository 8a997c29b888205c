"""Held-out layer sweeps with their position controls (a package: prepare -> score -> tabulate).

* :mod:`~value_lens.analysis.sweep.config`: :class:`SweepConfig`, :class:`ClusterCI`;
* :mod:`~value_lens.analysis.sweep.passes` and :mod:`~value_lens.analysis.sweep.tokens`: the
  forward passes and the per-token projections they keep;
* :mod:`~value_lens.analysis.sweep.splits`: training sets and each split's weights;
* :mod:`~value_lens.analysis.sweep.design`: which tokens sit around which cut;
* :mod:`~value_lens.analysis.sweep.score` and :mod:`~value_lens.analysis.sweep.layer`: one
  split, one layer;
* :mod:`~value_lens.analysis.sweep.table`: the per-layer rows and intervals;
* :mod:`~value_lens.analysis.sweep.explicit`: methods refitted per split by their fitter;
* :mod:`~value_lens.analysis.sweep.run`: :func:`layer_sweep`, :func:`sweep_each_method`;
* :mod:`~value_lens.analysis.sweep.result`: :class:`SweepResult`.
"""

from value_lens.analysis.sweep.config import SWEEP_METHODS, ClusterCI, SweepConfig
from value_lens.analysis.sweep.result import SweepResult, cosine_matrix
from value_lens.analysis.sweep.run import layer_sweep, sweep_each_method

__all__ = [
    "SWEEP_METHODS",
    "ClusterCI",
    "SweepConfig",
    "SweepResult",
    "cosine_matrix",
    "layer_sweep",
    "sweep_each_method",
]
